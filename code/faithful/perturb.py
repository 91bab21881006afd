"""Rule-made edits of a sentence, for the checker's training pairs and held-out set (FactCC's idea).

Each function takes a sentence and a random.Random and returns the edited sentence, or None when
the rule does not apply. Meaning flaws: negate, swap_antonym, swap_order, change_number,
change_quantifier, flip_verdict. Faithful restructurings: lead_in, split_sentence, as_list,
drop_filler. blur() takes a detail out (a list item, a phrase of time or amount) for the "lost
fact" kind.
"""

import re

_AUX = r"(is|are|was|were|can|could|should|will|would|must|may|might|does|do|did|has|have|had)"

# Pairs of words whose swap flips a statement. Ours; plain words only.
ANTONYMS = """more less|increase decrease|increases decreases|before after|first last|hot cold|warm cool|
warmer cooler|fast slow|faster slower|quickly slowly|high low|higher lower|above below|long short|longer shorter|
large small|larger smaller|big small|bigger smaller|early late|earlier later|easy hard|easier harder|
cheap expensive|cheaper dearer|safe dangerous|always never|often rarely|usually rarely|inside outside|
open closed|full empty|light dark|lighter darker|strong weak|stronger weaker|better worse|best worst|
most least|add remove|top bottom|front back|thick thin|raise lower|up down|start stop|allow prevent|
helps hurts|help harm|gain lose|include exclude|accept reject|common rare|useful useless|true false|
new old|fresh stale|heavy light|loud quiet|bright dim|clean dirty|positive negative|left right|
same different|simple complicated|permanent temporary|optional required|minimum maximum|harmless harmful|
healthy unhealthy|rise fall|rises falls|push pull|buy sell|wider narrower|wide narrow|deep shallow|
tighten loosen|forward backward|under over|hotter colder|sooner later|gently firmly|soft hard|softer harder|
lowest highest|smallest largest|cheapest most expensive|seldom frequently|everyone nobody|all none|
win lose|success failure|succeed fail|agree disagree|like dislike|cool heat|wet dry|sweet bitter|
sour sweet|quick slow|young old|near far|inner outer|upper lower|lighter heavier|rich poor|
strengthens weakens|improves worsens|reduces raises|slows speeds|absorb release|absorbs releases|
attract repel|expands shrinks|thicker thinner|faster slower|dense loose|denser lighter|internal external|
north south|east west|morning evening|day night|summer winter|spring autumn|daily weekly|weekly monthly|
sink float|sinks floats|lose gain|loses gains|enter leave|arrive depart|import export|maximum minimum|
cause prevent|causes prevents|more fewer|fewer more|kills feeds|easier harder|worse better|lower raise""".split("|")
_PAIRS = {}
for _pair in ANTONYMS:
    _a, _b = _pair.split(None, 1)
    _PAIRS.setdefault(_a.strip(), _b.strip())
    _PAIRS.setdefault(_b.strip(), _a.strip())
_ANTONYM = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _PAIRS), key=len, reverse=True)) + r")\b", re.I)

NUMBER_WORDS = ("one two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty "
                "fifty sixty hundred").split()
_NUMWORD = re.compile(r"\b(" + "|".join(NUMBER_WORDS) + r")\b", re.I)
_DIGITS = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?![\w.]?\d)")
_QUANT = {"all": "some", "every": "some", "most": "a few", "many": "few", "always": "sometimes",
          "usually": "occasionally", "must": "may", "should": "could", "only": "also", "never": "sometimes",
          "some": "all", "few": "many", "sometimes": "always", "mostly": "rarely", "everything": "little",
          "generally": "rarely", "often": "seldom", "any": "no", "both": "neither", "each": "no",
          "half": "a quarter", "twice": "three times", "double": "triple", "quarter": "half"}
_QUANT_RE = re.compile(r"\b(" + "|".join(_QUANT) + r")\b", re.I)
_VERDICTS = [(r"^(Yes)\b", "No"), (r"^(No)\b", "Yes"), (r"\b(is worth it)\b", "is not worth it"),
             (r"\b(is not worth it)\b", "is worth it"), (r"\b(recommend)\b", "advise against"),
             (r"\b(safe to)\b", "unsafe to"), (r"\b(is fine)\b", "is a bad idea"), (r"\b(better)\b", "worse"),
             (r"\b(wins)\b", "loses"), (r"\b(correct)\b", "incorrect"), (r"\b(makes sense)\b", "makes no sense"),
             (r"\b(generally, no)\b", "generally, yes"), (r"\b(usually not)\b", "usually yes"),
             (r"\b(it depends)\b", "it never depends")]


def _case(src, new):
    return new[:1].upper() + new[1:] if src[:1].isupper() else new


def negate(s, rng):
    """Add or take away a negation: "can" -> "cannot", "is not" -> "is", "Keep" -> "Don't keep"."""
    m = re.search(r"\b(not|never|no longer)\s+", s) or re.search(r"n't\b", s)
    if m and rng.random() < 0.5:
        if m.group(0) == "n't":
            out = s[:m.start()] + s[m.end():]
            return out.replace("wo ", "will ").replace("ca ", "can ").replace("Wo ", "Will ").replace("Ca ", "Can ")
        repl = "always " if m.group(1) == "never" else ""
        return s[:m.start()] + repl + s[m.end():]
    if re.match(r"(?:Do not|Don't|Never)\s", s):
        return re.sub(r"^(?:Do not|Don't|Never)\s+(\w)", lambda x: x.group(1).upper(), s)
    m = re.search(rf"\b{_AUX}\b(?! not)", s, re.I)
    if m:
        return s[:m.end()] + " not" + s[m.end():]
    m = re.match(r"([A-Z][a-z]+)\b", s)
    if m and m.group(1).lower() in IMPERATIVES:
        return "Don't " + s[0].lower() + s[1:]
    return None


IMPERATIVES = set("""add avoid ask bake bring buy check choose clean clear close cover cut do drink drive eat empty
fill find give go hang hold keep leave let look make move open pay pick place plan pour press pull push put read
remove rinse run save scrub set spend start stay stir stop store take tell try turn use wait walk wash wear write
rest trim pack learn speak practise practice listen focus""".split())


def swap_antonym(s, rng):
    hits = list(_ANTONYM.finditer(s))
    if not hits:
        return None
    m = rng.choice(hits)
    word = m.group(1)
    return s[:m.start()] + _case(word, _PAIRS[word.lower()]) + s[m.end():]


def swap_order(s, rng):
    """Swap the two sides of "A before/after/than B", "A then B", or two items of a list."""
    m = re.search(r"\b([\w' -]{3,40}?) (before|after|rather than|instead of|than|then) ([\w' -]{3,40}?)([.,;]|$)", s)
    if m and m.group(1).strip() != m.group(3).strip():
        return s[:m.start()] + f"{m.group(3)} {m.group(2)} {m.group(1)}" + s[m.end(3):]
    m = re.search(r"\b([\w'-]+(?: [\w'-]+)?), ([\w'-]+(?: [\w'-]+)?)(,? and|,? or) ([\w'-]+(?: [\w'-]+)?)", s)
    if m and "first" in s.lower():
        return s[:m.start()] + f"{m.group(4)}, {m.group(2)}{m.group(3)} {m.group(1)}" + s[m.end():]
    return None


def change_number(s, rng):
    """Another number, in digits or in words, where the sentence has one."""
    hits = [("w", m) for m in _NUMWORD.finditer(s)] + [("d", m) for m in _DIGITS.finditer(s)]
    if not hits:
        return None
    kind, m = rng.choice(hits)
    if kind == "w":
        old = m.group(1).lower()
        new = rng.choice([w for w in NUMBER_WORDS if w != old])
        return s[:m.start()] + _case(m.group(1), new) + s[m.end():]
    value = float(m.group(1))
    new = value + rng.choice([1, 2, 3, 5]) if value < 10 else value * rng.choice([0.5, 1.5, 2, 3])
    text = str(int(new)) if new == int(new) else f"{new:.1f}"
    return s[:m.start()] + text + s[m.end():]


def change_quantifier(s, rng):
    hits = list(_QUANT_RE.finditer(s))
    if not hits:
        return None
    m = rng.choice(hits)
    return s[:m.start()] + _case(m.group(1), _QUANT[m.group(1).lower()]) + s[m.end():]


def flip_verdict(s, rng):
    for pattern, new in _VERDICTS:
        m = re.search(pattern, s, re.I)
        if m:
            return s[:m.start(1)] + _case(m.group(1), new) + s[m.end(1):]
    return None


FLAWS = {"negate": negate, "antonym": swap_antonym, "order": swap_order, "number": change_number,
         "quantifier": change_quantifier, "verdict": flip_verdict}

# ---------------------------------------------------------------- faithful restructurings

LEAD_INS = ["In short, ", "Put simply, ", "Note that ", "Keep in mind that ", "Basically, ", "The key point: ",
            "Importantly, ", "As a rule, ", "Remember: ", "To sum up, ", "Here's the thing: ", "Tip: "]


def lead_in(s, rng):
    if len(s) < 12:
        return None
    first = s[0].lower() + s[1:] if not re.match(r"[A-Z]{2}|I\b", s) else s
    return rng.choice(LEAD_INS) + first


def split_sentence(s, rng):
    """One sentence into two at "; ", ", and", ", but", ", so", ", which"."""
    m = re.search(r"(;|, and|, but|, so|, because|, while|, which)\s+", s)
    if not m or m.start() < 15 or len(s) - m.end() < 12:
        return None
    a, b = s[:m.start()].rstrip(",;") + ".", s[m.end():]
    joiner = {", but": "But ", ", so": "So ", ", because": "This is because ", ", while": "Meanwhile, ",
              ", which": "This "}.get(m.group(1), "")
    b = joiner + (b[0].lower() + b[1:] if joiner else b[0].upper() + b[1:])
    return a + " " + b


def as_list(s, rng):
    """A list in a sentence made a lead-in and items: "You need X, Y and Z." -> "You need: X, Y, Z"."""
    m = re.search(r"^(.{6,60}?)\b((?:[\w'-]+(?: [\w'-]+){0,3}, ){1,6}[\w'-]+(?: [\w'-]+){0,3},? (?:and|or) [\w' -]+)\.?$", s)
    if not m:
        return None
    items = re.split(r",\s*(?:and |or )?|\s+(?:and|or)\s+", m.group(2))
    return m.group(1).rstrip(" ,:") + ": " + ", ".join(i.strip() for i in items if i.strip()) + "."


def drop_filler(s, rng):
    """Drop an aside that carries no fact ("usually", "really", "in fact")."""
    out = re.sub(r"\b(?:really|actually|in fact|basically|simply|just|quite)\s+", "", s, count=1)
    return out if out != s else None


RESTRUCTURE = {"lead_in": lead_in, "split": split_sentence, "list": as_list, "filler": drop_filler}

# ---------------------------------------------------------------- blurring a detail away

_DETAIL = [r",? (?:for|in|after|within|until|about|around) (?:about |roughly |at least )?(?:\d+|[a-z]+)(?: to (?:\d+|[a-z]+))? "
           r"(?:seconds?|minutes?|hours?|days?|weeks?|months?|years?|degrees|percent)",
           r",? (?:every|each) (?:few |two |three |other )?(?:days?|weeks?|months?|hours?|night|morning|year)",
           r",? (?:especially|for example|such as|like|including) [^,.;]+",
           r",? (?:because|since|so that|which|where|when) [^.;]+",
           r" (?:carefully|gently|slowly|quickly|firmly|completely|fully|thoroughly|regularly)\b"]


def blur(s, rng):
    """Take a detail out of `s`: an item of a list, an amount of time, a reason or an example."""
    items = re.search(r"((?:[\w'-]+(?: [\w'-]+){0,3}, )+)([\w'-]+(?: [\w'-]+){0,3})(,? (?:and|or) )", s)
    options = []
    if items:
        options.append(s[:items.start(2)].rstrip(", ") + items.group(3).replace(",", "", 1) + s[items.end(3):])
        first = items.group(1).split(", ")
        if len(first) > 1:
            options.append(s.replace(first[0] + ", ", "", 1))
    for pattern in _DETAIL:
        m = re.search(pattern, s)
        if m and len(s) - (m.end() - m.start()) > 15:
            options.append(s[:m.start()] + s[m.end():])
    options = [o for o in options if o != s and len(o) > 10]
    return rng.choice(options) if options else None
