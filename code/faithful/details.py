"""Sure word checks for a detail lost, a comparison turned round or a conclusion changed, where the
clause checks of align.py see too little (most of the clause stays, so its missing share is small).
Each finding flags a record alone (score 1.0):

- "dropped" (direction "lost"), the first of:
  - a field the rewrite keeps ("Location: ...") with two or more of its value's words gone ("the
    north entrance of Riverside Park, next to the playground" -> "Riverside Park");
  - a part named by its whole ("the north entrance of Riverside Park") blurred into the whole;
  - an item of an enumeration ("flour, sugar, poppy seeds and butter") or a short line of a
    bulleted list whose words the rewrite lacks, where it keeps the other items;
  - the second of two things joined by "and"/"or" ("blackout curtains or an eye mask") gone while
    the rest of its sentence stays;
  - an amount, a time or a frequency blurred: gone from the rewrite, whose sentence saying the rest
    uses a vague word the original does not ("for about a week" -> "for a while", "twice a year"
    -> "regularly");
- "contradiction" (direction "unsupported"): a comparison or preference turned round ("a late
  workout helps more than a walk" where the original says the walk helps more than a late workout;
  "dish soap rather than salt" where it says "salt, not dish soap");
- "conclusion" (direction "unsupported"): the original recommends one thing ("I'd go with the
  refurbished business laptop") and the rewrite's recommendation names another thing of the
  original and nothing of the one recommended ("Recommendation: the Chromebook").

A word counts as present when its stem (or its first five letters) is anywhere in the rewrite, so a
restructured or reordered rewrite passes; a word of the question is not counted as lost, except in
a field (an extraction's question holds the text). The checks were kept only where they flagged no
faithful rewrite of the dev sets; on the 626 faithful rewrites of our training items they flag 3
(bench/README.md, "faithfulness checker").
"""

import re
from collections import Counter

from realign.faithful.align import rarity
from realign.textchecks import CARDINAL_WORDS, numbers
from realign.faithful.text import STOP, claims, stem, words

# a field of an extraction ("Date: Saturday 12 April. Location: ...", "**Location:** ..."): its label and value
_FIELD = re.compile(r"(?:^|(?<=[.;\n])\s*)[-*•]?\s*\**([A-Z][A-Za-z ]{1,30}?)\**\s*:\s*\**\s*([^\n.;]+)", re.M)
ITEM_WORDS = 4   # words of an enumeration's item, at most
# words of a clause, not of a listed thing ("parking is scarce", "so it is faster"): no item holds one
_CLAUSE_WORDS = frozenset("""is are was were be been being has have had so but which that it its they we you he she
can will would should could may might must does did do than""".split())
# an enumeration: three or more short items, "a, b, c and d" / "a, b or c"
_W = r"[A-Za-z][A-Za-z'\-]*"
def _enumeration(item_words):
    return re.compile(rf"(?<![A-Za-z'\-])((?:{_W}\s){{0,2}}{_W}(?:,\s*{_W}(?:\s{_W}){{0,{item_words - 1}}}){{1,8}},?\s+"
                      rf"(?:and|or)\s+{_W}(?:\s{_W}){{0,{item_words - 1}}})(?=[.,;:!?)\n]|$)")


# items of two words, then of up to ITEM_WORDS (a longer match may swallow a shorter list and fail)
_ENUMS = (_enumeration(2), _enumeration(ITEM_WORDS))
_RECOMMEND = re.compile(r"(?:\bI'?d (?:go with|recommend|choose|pick|suggest)|\bI would (?:go with|recommend|choose|"
                        r"pick|suggest)|\bI recommend|\bmy (?:pick|recommendation|choice) is|\bthe better (?:choice|"
                        r"option|pick|bet|value) is|\bthe best (?:choice|option|pick|bet) is|\bgo with)\s+(.{3,80}?)"
                        r"(?=[:.;!?]|,|\s+(?:because|since|as|for|over|rather|instead)\b|$)", re.I | re.M)
_REC_LINE = re.compile(r"^\W*(?:recommendation|my pick|my recommendation|best choice|best pick|pick|verdict|"
                       r"bottom line|choose|go with)\W*?:\s*(.{2,80}?)(?=[:.;!?]|\s+(?:because|since|for|over)\b|$)",
                       re.I | re.M)
RARE = 0.3   # rarity (align.rarity) of a word, at least, for a lost item or a turned-round comparison to count
_VAGUE = frozenset("""other some many more most certain such all any various several few different plus minus times
divided multiplied equals""".split())


class _Present:
    """The stems of a text, with a look-up that also accepts a stem's first five letters."""

    def __init__(self, *texts):
        self.texts, self.stems = texts, None   # read on first use: most records need no look-up

    def has(self, w):
        if self.stems is None:
            self.stems = {stem(w) for t in self.texts for w in words(t)}
            self.prefixes = {s[:5] for s in self.stems if len(s) >= 5}
        st = stem(w)
        return st in self.stems or (len(st) >= 5 and st[:5] in self.prefixes)


def _content(text):
    return [w for w in words(text) if w not in STOP and w.isalpha() and len(w) > 2]


def _fields(text):
    if ":" not in text:
        return {}
    return {" ".join(words(m.group(1))): m.group(2).strip() for m in _FIELD.finditer(text)
            if len(words(m.group(1))) <= 4}


def dropped_field(original, rewrite, have, asked):
    """A field the rewrite keeps with two or more of its value's words gone from the rewrite."""
    theirs = _fields(original)
    mine = _fields(rewrite) if theirs else {}
    for label, value in theirs.items():
        if label not in mine:
            continue
        gone = [w for w in _content(value) if not have.has(w) and w not in _VAGUE]   # (the question often holds the text)
        if len(gone) >= 2:
            return f"the {label!r} field lost: {', '.join(gone)}", f"{label}: {value}"
    return None


def dropped_item(original, have, asked):
    """An item of an enumeration in the original ("salt" of "flour, sugar, salt and butter")
    whose content words are all missing from the rewrite."""
    for line in original.split("\n"):
        if ", " not in line or not (" and " in line or " or " in line):
            continue
        for long, m in ((long, m) for long, enum in enumerate(_ENUMS) for m in enum.finditer(line)):
            items = re.split(r",\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+", m.group(1))
            items = [i.strip() for i in items if i.strip()]
            if len(items) < 3 or any(not _content(i) or any(w in CARDINAL_WORDS for w in words(i)) or (long and (
                    any(w in _CLAUSE_WORDS for w in words(i)) or words(i)[0].endswith("ed")))
                                     for i in items[1:]):   # (longer items: "parking is scarce" is a clause,
                continue                                    # "mashed and mixed with lime" a process, not things)
            kept = [i for i in items if any(have.has(w) for w in _content(i))]
            if len(kept) < len(items) - 1:
                continue   # the rewrite does not give this list: another finding's business
            for item in items[1:]:
                ws = _content(item)
                if ws and not any(have.has(w) or asked.has(w) for w in ws) and max(map(rarity, ws)) >= RARE:
                    return f"the item {item!r} of {m.group(1).strip()!r} lost", m.group(1).strip()
    return None


_OF_NAME = re.compile(r"\b((?:[a-z][a-z'-]+\s+){1,3})of\s+((?:the\s+)?[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)*)")


def dropped_qualifier(original, have):
    """A place or a part named by its whole ("the north entrance of Riverside Park") that the
    rewrite blurs into the whole alone ("Riverside Park"): the name is kept, none of the words
    before "of" is, and one of them is not an everyday word."""
    for m in _OF_NAME.finditer(original) if " of " in original else ():
        mods = [w for w in _content(m.group(1)) if w not in _VAGUE and w not in CARDINAL_WORDS and w != "percent"]
        name = [w for w in words(m.group(2)) if w not in STOP]
        if (mods and name and all(have.has(w) for w in name) and not any(have.has(w) for w in mods)
                and max(map(rarity, mods)) >= RARE):
            return f"{m.group(0)!r} became {m.group(2)!r}", m.group(0)
    return None


_LIST_LINE = re.compile(r"^[ \t>]*(?:[-*+•·▪][ \t]+|\(?\d{1,3}[.)][ \t]+)(.+)$")


def dropped_list_line(original, have, asked):
    """A short item of a bulleted or numbered list in the original (six words at most) whose
    content words are all missing from the rewrite, where the rewrite keeps the list's other
    items (claims() reads short items as one claim with their lead-in, so one lost item is a small
    share of it)."""
    blocks, block = [], []
    for line in original.split("\n"):
        m = _LIST_LINE.match(line)
        if m:
            block.append(re.sub(r"[*_`]", "", m.group(1)).strip())
        elif line.strip():
            blocks.append(block)
            block = []
    blocks.append(block)
    for block in blocks:
        items = [(i, _content(i)) for i in block if len(words(i)) <= 6]
        if len(items) < 3:
            continue
        gone = [i for i, ws in items if ws and not any(have.has(w) or asked.has(w) for w in ws)
                and max(map(rarity, ws)) >= RARE]
        if len(gone) == 1 and sum(any(have.has(w) for w in ws) for _, ws in items) >= len(items) - 1:
            return f"the list item {gone[0]!r} lost", gone[0]
    return None


def _key(text):
    return {stem(w) for w in _content(text) if w not in _VAGUE}


def changed_recommendation(original, rewrite):
    """The rewrite's recommendation names something of the original other than what the original
    recommends, and nothing of that."""
    o = [m.group(1) for m in _RECOMMEND.finditer(original)]
    r = [m.group(1) for m in _REC_LINE.finditer(rewrite)] + [m.group(1) for m in _RECOMMEND.finditer(rewrite)]
    if not o or not r:
        return None
    okey = set().union(*map(_key, o))
    ostems = {stem(w) for w in words(original)}
    for pick in r:
        rkey = _key(pick)
        other = (rkey & ostems) - okey
        if okey and rkey and not (rkey & okey) and other:
            return f"the original recommends {o[0].strip()!r}, the rewrite {pick.strip()!r}", pick
    return None


# indefinite amounts, times and frequencies: a fact blurred is a specific amount, time or frequency
# of the original ("for around a week", "twice a year", "by eight-fifteen") put as one of these
_VAGUE_PHRASES = re.compile(r"\b(" + "|".join(sorted("""for a while|a while|a little while|some time|sometime|
at some point|from time to time|now and then|every so often|occasionally|periodically|regularly|in good time|
early enough|ahead of time|in advance|a bit|a little|a number of|various|certain|several|a few|some|
briefly|shortly|soon|eventually|later|for some time|a period|a short time|a long time|a good while|
a couple of|over time|in time|sometimes|at times|often|usually|frequently|recently|a few times""".replace("\n", "").split("|"), key=len, reverse=True)) + r")\b", re.I)
_TIME_WORDS = frozenset("""second seconds minute minutes hour hours day days week weeks month months year years
night nights overnight daily weekly monthly yearly annually hourly fortnight decade decades""".split())


def _values(text):
    return {v for n in numbers(text) for v in n.values}


def blurred(question, original, rewrite, have, asked):
    """A specific amount, time or frequency of the original ("for around a week", "twice a year",
    "by eight-fifteen") gone from the rewrite, whose sentence saying the rest of it uses a vague
    word that the original and the request do not ("for a while", "regularly", "in good time").
    A number counts as kept when its value is anywhere in the rewrite ("thirty per cent" = "30%").
    (detail, the original's sentence) or None. Linear in the texts: each rewrite sentence with a
    new vague word finds its original sentence through an index of their words."""
    low_r = rewrite.lower()
    new = _vague_in(rewrite) - _vague_in(original + "\n" + question)
    if not new:
        return None
    theirs, index = claims(original), {}
    for k, c in enumerate(theirs):
        for st in {stem(w) for w in _content(c)}:
            index.setdefault(st, []).append(k)
    kept = None
    for c in claims(rewrite):
        vague = next((m.group(1).lower() for m in _VAGUE_PHRASES.finditer(c) if m.group(1).lower() in new), None)
        if not vague:
            continue
        cs = {stem(w) for w in _content(c)} - {stem(w) for w in words(vague)}
        votes = Counter(k for st in cs for k in index.get(st, ())[:50])   # a word in 50 sentences aligns nothing
        if not votes:
            continue
        k, shared = votes.most_common(1)[0]
        if shared < 2 or shared < 0.5 * len(cs):
            continue   # the rewrite's sentence does not say what one of the original says
        if kept is None:
            kept = _values(rewrite) | _values(question) | ({2, 14} if "fortnight" in low_r else set())
        # (one and two are left out: "one" is also a pronoun, "two" is "both")
        gone = [n.surface for n in numbers(theirs[k]) if not set(n.values) & (kept | {1, 2})]
        gone += [w for w in re.findall(r"(?<![\w-])[a-z]+(?![\w-])", theirs[k].lower())   # not "seven-year-olds"
                 if w in _TIME_WORDS and not have.has(w) and not asked.has(w)
                 and not (w.startswith("week") and "fortnight" in low_r)]
        if gone:
            return f"{', '.join(gone)!r} blurred into {vague!r}", theirs[k]
    return None


def _vague_in(text):
    return {m.group(1).lower() for m in _VAGUE_PHRASES.finditer(text)}


_PAIR = re.compile(rf"(?<![A-Za-z'\-])({_W}(?:\s{_W}){{0,2}})\s+(and|or)\s+({_W}(?:\s{_W}){{0,3}})(?=[.,;:!?)\n]|$)")
PAIR_KEPT = 0.7   # share of the sentence's other content words in the rewrite, at least


def _thing(ws):
    """Do the words read as a thing ("an eye mask", "crop failures"), not a quality or an act
    ("steady", "expensive to collect", "click Done", "on your finances")? A word-level guess: an
    article first, or a plural last."""
    return bool(ws) and (ws[0] in ("a", "an") or (ws[-1].endswith("s") and not ws[-1].endswith("ss")
                                                   and ws[0] not in STOP and len(ws) <= 3))


def dropped_pair_item(original, have, asked):
    """The second of two things joined by "and"/"or" ("old photographs and maps") gone from the
    rewrite while it keeps the first and most of the sentence. (detail, sentence) or None."""
    for sentence in claims(original):
        if " and " not in sentence and " or " not in sentence:
            continue
        content = _content(sentence)
        for m in _PAIR.finditer(sentence):
            first, second = _content(m.group(1))[-1:], _content(m.group(3))
            if (not first or not second or any(w in _CLAUSE_WORDS or w in CARDINAL_WORDS for w in words(m.group(3)))
                    or not _thing(words(m.group(3)))):
                continue
            if not have.has(first[0]) or any(have.has(w) or asked.has(w) for w in second):
                continue
            if max(map(rarity, second)) < 0.5:
                continue
            rest = [w for w in content if w not in second]
            if rest and sum(have.has(w) for w in rest) >= PAIR_KEPT * len(rest):
                return f"{m.group(3)!r} of {m.group(0)!r} lost", sentence
    return None


def details(question, original, rewrite):
    """[(kind, direction, sentence, detail)] of one record: see the module docstring."""
    if not original or not rewrite:
        return []
    have, asked = _Present(rewrite), _Present(question)
    out = []
    for check in (lambda: dropped_field(original, rewrite, have, asked),
                  lambda: dropped_qualifier(original, have),
                  lambda: dropped_item(original, have, asked),
                  lambda: dropped_list_line(original, have, asked),
                  lambda: blurred(question, original, rewrite, have, asked),
                  lambda: dropped_pair_item(original, have, asked)):
        got = check()
        if got:
            out.append(("dropped", "lost", _sentence_of(original, got[1]), got[0]))
            break
    got = turned_round((question, original), rewrite)
    if got:
        out.append(("contradiction", "unsupported", got[1], got[0]))
    got = changed_recommendation(original, rewrite)
    if got:
        out.append(("conclusion", "unsupported", _sentence_of(rewrite, got[1]), got[0]))
    return out


def _sentence_of(text, part):
    """The claim of `text` holding `part` (the first one sharing its words), else `part`."""
    want = set(words(part))
    best = max(claims(text), key=lambda c: len(want & set(words(c))), default=part)
    return best


# ---------------------------------------------------------------- a comparison or a preference turned round

_MARK = re.compile(r"\b(rather than|instead of|than|not)\b")
_PREFER = ("rather than", "instead of", "not")
_REACH_BEFORE, _REACH_AFTER = 10, 6
_NEAR = 300   # characters read on each side of a marker: the work stays linear in a one-line answer


def _sides(text, marks=None):
    """(marker, compared word, stems before, {stem: word} after, the claim) of each comparison ("X helps more than
    Y": "than", "more"), preference ("X rather than Y", "X instead of Y", "X, not Y") and, for a
    word compared with no "than" ("the steel pan lasts longer"), ("", word, before, {})."""
    out = []
    low_text = text.lower()
    if not (any(m in low_text for m in marks) if marks else _MARK.search(low_text)):
        return out
    for c in claims(text):
        low = c.lower().replace("’", "'")
        for m in _MARK.finditer(low):
            if marks and m.group(1) not in marks:
                continue
            before = [w for w in words(_clause_before(low[max(0, m.start() - _NEAR):m.start()])) if w not in STOP]
            after_text = re.split(r"[.;:!?]|,\s", low[m.end():m.end() + _NEAR], maxsplit=1)[0]
            after = [w for w in words(after_text) if w not in STOP and w != "not"][:_REACH_AFTER]
            comp = before[-1] if before and m.group(1) == "than" else ""
            out.append((m.group(1), comp, {stem(w) for w in before[-_REACH_BEFORE:] if w != comp and w != "not"},
                        {stem(w): w for w in after}, c))
    return out


def _compared(text, word):
    """(stems before, stems after "than") of each claim of `text` that uses the compared `word`."""
    out = []
    if word not in text.lower():
        return out
    for c in claims(text):
        low = c.lower().replace("’", "'")
        m = re.search(rf"\b{re.escape(word)}\b", low)
        if m:
            before = [w for w in words(_clause_before(low[max(0, m.start() - _NEAR):m.start()]))
                      if w not in STOP and w != "not"][-_REACH_BEFORE:]
            rest = re.match(r"\s+(?:\w+\s+)?than\b([^.;:!?]*)", low[m.end():m.end() + _NEAR])
            after = [w for w in words(re.split(r",\s", rest.group(1))[0]) if w not in STOP and w != "not"][
                :_REACH_AFTER] if rest else []
            out.append(({stem(w) for w in before}, {stem(w) for w in after}))
    return out


def _clause_before(text):
    """The words of `text` in the clause that ends it: after its last ";", ":", dash or "than"."""
    return re.split(r"[;:–—]|\s-\s|\bthan\b", text)[-1]


def turned_round(source, rewrite):   # source: the texts (question, original)
    """The rewrite says "A more than B" (or "A rather than B") where the source says "B more than A"
    ("B rather than A", "B, not A") and nowhere what the rewrite says: the thing the rewrite puts
    second is the source's first (a word of it not an everyday one), and none of it is the source's
    second. (detail, the rewrite's sentence) or None."""
    theirs_prefer = None
    for mark, comp, before, after, sentence in _sides(rewrite, ("than", "rather than", "instead of")):
        if mark == "not" or not after or not before:
            continue
        if mark == "than":
            if not comp:
                continue
            theirs = [x for t in source for x in _compared(t, comp)]
        else:
            if theirs_prefer is None:
                theirs_prefer = [(b, set(a)) for t in source for m, _, b, a, _ in _sides(t, _PREFER)]
            theirs = theirs_prefer
        second = set(after)
        if any(second & a for _, a in theirs):
            continue   # the source does say the rewrite's second thing comes second somewhere
        for b, a in theirs:
            if any(rarity(after[st]) >= RARE for st in second & b) and (before & b) - second and (before - b):
                return f"{' '.join(after.values())!r} comes first in the original", sentence
    return None
