"""Precise meaning checks by word alignment: each clause of one text read against its best clause
of the other, no model.

    from realign.faithful.align import Side, findings
    found = findings(question, original, rewrite, evidence)   # [Finding], most certain first

What they catch (each a Finding with its kind, the direction, the clause and a score):
- "contradiction": a rewrite clause that says what its source clause says with one polarity
  flipped: a negation added or taken away ("don't run until" -> "run"), a word swapped for its
  opposite ("smaller" -> "larger", "easy" -> "hard"; antonyms.py), two words of the clause swapped
  ("use for ... use since" -> "use since ... use for"). A negation and an antonym together cancel
  ("not easy" -> "hard" is a paraphrase).
- "verdict": the rewrite's verdict (yes/no, true/false/partly true, positive/negative/mixed, the
  option recommended) is not the original's.
- "added": a rewrite clause whose content words the sources mostly lack, weighted by how rare a
  word is (a paraphrase swaps in common words: "need", "step", "feel"; an added claim brings its
  own: "bacteria", "audiobook", "damp patches").
- "lost": an original clause whose content words the rewrite mostly lacks (a step, a warning, a
  condition, a detail dropped).

Rarity comes from the word-piece vocabulary of the sentence encoder the classifier ships
(BERT's vocabulary is ordered by corpus frequency): no new data file.
"""

import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from realign.faithful.antonyms import HAND, OPPOSITE
from realign.textchecks import CARDINAL_WORDS
from realign.faithful.text import STOP, claims, stem, words

NEGATORS = frozenset("not no never without nor none neither nothing nobody nowhere cannot".split())
# words that carry a negation in their meaning: a paraphrase may trade "not" for one of them
NEGATIVE_MEANING = frozenset("""avoid unable fail fails failed lack lacks instead rather refuse prevent stop skip free
except unless hardly barely rarely seldom little few only too against unlikely impossible neither away
off absent missing lose lost less fewer decline declining unfortunately sorry miss avoided forget forgot
non unlike apart stopped stops broke broken false wrong incorrect untrue neglect ignore""".split())
# words a rewrite uses to lay out or to lead in; they say nothing to check
LAYOUT = frozenset(stem(w) for w in """short summary overview step steps tip tips note notes answer conclusion
explanation example examples key point points detail details introduction option options final result results
bottom line quick version here following below above follow these main takeaway takeaways why how what
solution working method approach background context recap reminder important list verdict reasoning
recommendation recommended subject label labels category reason reasons overall general generally whatever
either way things thing basically simply really also about first second third next finally then""".split())
GENERIC_RANK = 2600   # vocabulary ranks under this are everyday words: a paraphrase adds them freely
RARE_RANK = 7000      # ranks from this on (and words the vocabulary splits) weigh 1
_CLAUSE_SPLIT = re.compile(r"\s*(;|:\s|\s[–—-]\s|,\s*(?=(?:and|but|so|which|while|because|though|although|whereas|"
                           r"since|yet|or|whereby|meaning|making|so that)\b))\s*")
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)?|[,;:]|[.!?](?=\s|$)")   # a full stop ends a negation's reach


@dataclass
class Finding:
    """One flaw found: `kind` (contradiction, verdict, added, lost), `direction` ("unsupported":
    a rewrite clause; "lost": an original clause), the `sentence` it is in, a `score` (higher is
    surer) and a short `detail` ("'smaller' became 'larger'")."""
    kind: str
    direction: str
    sentence: str
    score: float
    detail: str
    clause: str = ""
    window: list = None
    facts: tuple = ()     # (score, new words, rarity-weighted content words, content words) of the clause
    missing: tuple = ()   # the clause's words the other side lacks


@lru_cache(maxsize=1)
def _vocab():
    from realign.classifier.model import DEFAULT_MODEL_DIR
    with open(os.path.join(DEFAULT_MODEL_DIR, "tokenizer.json"), encoding="utf-8") as f:
        return json.load(f)["model"]["vocab"]


@lru_cache(maxsize=100_000)
def rarity(word):
    """0 for an everyday word, up to 1 for a rare one (from the vocabulary rank; see the module
    docstring). A word the vocabulary splits into pieces weighs 1; non-Latin scripts weigh 0.5."""
    if not word.isascii():
        return 0.5
    vocab = _vocab()
    forms = [word]
    for suffix in ("s", "es", "ed", "d", "ing", "ly", "er", "est"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            forms.append(word[:-len(suffix)])
    ranks = [vocab[f] for f in forms if f in vocab]
    if not ranks:
        return 1.0
    rank = min(ranks)
    if rank < GENERIC_RANK:
        return 0.0
    return min(1.0, (rank - GENERIC_RANK) / (RARE_RANK - GENERIC_RANK) * 0.8 + 0.2)


# set phrases read as the one word they mean, so an antonym pair can see them
_PHRASES = {"for good": "permanently", "for ever": "forever", "at once": "immediately", "no longer": "not"}
_PHRASE = re.compile(r"\b(" + "|".join(_PHRASES) + r")\b")


def _phrase(m):
    return _PHRASES[m.group(1)]


_ANSWER_WORD = re.compile(r"^\W*(?:no|yes)\b\s*[–—,.:;!-]+\s*", re.I)


class Clause:
    """A clause: its text, its words, its content words (stems), its sentence, and whether it is a
    lead-in ("Steps", "What you need", "其他用法": the words before a colon), which says nothing."""
    __slots__ = ("text", "sentence", "words", "stems", "content", "tokens", "head")

    def __init__(self, text, sentence, head=False):
        self.text, self.sentence, self.head = text, sentence, head
        text = _ANSWER_WORD.sub("", text)   # a bare "No –" or "Yes," answers; it negates nothing
        self.words = words(text)
        self.content = [w for w in self.words if w not in STOP or w in NEGATORS]
        self.stems = {stem(w) for w in self.content}
        self.tokens = [t for t in _TOKEN.findall(_PHRASE.sub(_phrase, text.replace("’", "'").lower()))]


_HEAD = re.compile(r"^([^:：.!?]{1,40}?)\s*[:：]\s+(?=\S)|^([^:：]{1,12})[:：](?=\S)")


def split_clauses(sentence):
    """The lead-in of a sentence (its words before a colon, when there are at most five; None when
    it has none) and its clauses: cut at ";", ": ", a dash, and a comma before "and", "but", "which",
    "so", ...; a piece with fewer than two content words joins the one before it."""
    head = None
    for _ in range(2):   # a heading and an item's own label: "How to apologise: Choose the right channel: talk ..."
        m = _HEAD.match(sentence)
        if not (m and len(words(m.group(1) or m.group(2))) <= 5):
            break
        head = (head + ": " if head else "") + (m.group(1) or m.group(2))
        sentence = sentence[m.end():]
    return head, _clauses(sentence)


def _clauses(sentence):
    parts = _CLAUSE_SPLIT.split(sentence)   # piece, delimiter, piece, ...
    out, lead = [], ""
    for k in range(0, len(parts), 2):
        piece = lead + parts[k]
        lead = ""
        if not piece.strip():
            continue
        if len([w for w in words(piece) if w not in STOP]) < 2:
            after = parts[k + 1] if k + 1 < len(parts) else ""
            if after.strip() == ":" and k + 2 < len(parts):   # "Avoid: copying your CV" is one clause
                lead = piece + ": "
                continue
            if out:
                out[-1] = out[-1] + ", " + piece
                continue
        out.append(piece)
    return out or [sentence]


@lru_cache(maxsize=4096)
def read_sentence(s):
    """The clauses of sentence `s` (its lead-in first, as a head clause, when it has one) and the
    sentence as one Clause without its lead-in. Cached: a record reads its texts from several
    sides, and a run sees the same sentences again; the Clauses are not changed after this."""
    head, pieces = split_clauses(s)
    clauses = [Clause(head, s, head=True)] if head else []
    negative_head = head and (NEGATORS | NEGATIVE_MEANING) & set(words(head)) and not _VERDICT_LINE.match(head)
    for piece in pieces:
        c = Clause(piece, s)
        if negative_head:   # "Avoid: copying your CV" (a "Verdict: False" line is read by verdict_changed)
            c.tokens = [t.lower() for t in _TOKEN.findall(head)] + c.tokens
        clauses.append(c)
    return tuple(clauses), Clause(s[len(head) + 1:].strip() if head else s, s)


@lru_cache(maxsize=50_000)
def _opposite_stems(w):
    return frozenset(stem(o) for o in OPPOSITE.get(w, ()))


class Side:
    """One side of a record (say question + original + evidence), read for alignment: its
    sentences, its clauses, and all its stems."""

    def __init__(self, texts, code=False):
        self.sentences = [c for t in texts if t for c in claims(t, code=code)]
        self.clauses, self.whole = [], []
        for s in self.sentences:
            clauses, whole = read_sentence(s)
            self.clauses.extend(clauses)
            self.whole.append(whole)
        self.all_stems = set().union(*(c.stems for c in self.clauses)) if self.clauses else set()
        self.prefixes = {s[:5] for s in self.all_stems if len(s) >= 5}
        self.all_words = set().union(*(c.words for c in self.clauses)) if self.clauses else set()

    def aligned(self, clause, k=3):
        """The k clauses here sharing the most content words with `clause`."""
        overlap = [len(clause.stems & c.stems) for c in self.clauses]
        return [self.clauses[i] for i in sorted((i for i in range(len(overlap)) if overlap[i] >= 2),
                                                key=lambda i: -overlap[i])[:k]]

    def window(self, clause, k=3):
        """The k sentences here sharing the most content words with `clause`, best first."""
        overlap = [len(clause.stems & c.stems) for c in self.whole]
        top = sorted((i for i in range(len(self.whole)) if overlap[i]), key=lambda i: (-overlap[i], i))[:k]
        return [self.whole[i].sentence for i in top] or [c.sentence for c in self.whole[:k]]

    def has(self, st):
        return st in self.all_stems or (len(st) >= 5 and st[:5] in self.prefixes)

    def best(self, clause, whole=False):
        """The clause (or with whole=True the sentence) here sharing the most content with
        `clause`, the share of `clause`'s stems it holds (0.0 when none; a word whose opposite it
        holds counts as held) and how many it holds."""
        best, share, held = None, 0.0, 0
        if not clause.stems:
            return None, 0.0, 0
        opposite = set().union(*map(_opposite_stems, clause.words))
        for c in (self.whole if whole else self.clauses):
            common = len(clause.stems & c.stems) + len(opposite & c.stems)
            if not common:
                continue
            s = common / len(clause.stems) + 0.01 * common / max(1, len(c.stems))
            if s > share:
                best, share, held = c, s, common
        return best, min(share, 1.0), held


def _negations(ws):
    return sum(w in NEGATORS for w in ws)


_PUNCT = frozenset(",;:.!?")   # the punctuation tokens of _TOKEN; a negation's reach ends at one


def _negator(t):
    """Is token `t` a negation word ("not", "never", ...) or a contraction of one ("don't")?"""
    return t in NEGATORS or t.endswith("n't")


def _contrast(tokens, i):
    """Is token i the end of "rather than" or "instead of"? What follows is not done: a negation."""
    return i > 0 and ((tokens[i] == "than" and tokens[i - 1] == "rather") or
                      (tokens[i] == "of" and tokens[i - 1] == "instead"))


def _contrasts(tokens):
    return sum(_contrast(tokens, i) for i in range(1, len(tokens)))


_COUNTERFACTUAL = frozenset("would could might should".split())


def _negated(tokens, i, reach=4, counterfactual=False):
    """Is token i under a negation: a negator (or a word like "avoid", "instead"; with
    counterfactual=True also "would have": it did not happen) in the `reach` tokens before it,
    within its clause?"""
    for k in range(i - 1, max(-1, i - reach - 1), -1):
        t = tokens[k]
        if t in _PUNCT:
            break
        if _negator(t) or t in NEGATIVE_MEANING:
            return True
        if counterfactual and t == "have" and k > 0 and tokens[k - 1] in _COUNTERFACTUAL:
            return True   # "you would have earned": it did not happen
    return False


_AUXILIARY = frozenset("""would could should can will may might must need needs have has had be is are was were been
able get gets go make makes""".split())


def _scopes(tokens):
    """For each negation of `tokens` ("rather than" and "instead of" too), the content words right
    after it (its scope, up to 3); none for a double negative ("don't forget", "never fail to")."""
    out = []
    for i, t in enumerate(tokens):
        if _negator(t) or _contrast(tokens, i):
            scope = []
            for u in tokens[i + 1:]:
                if u in _PUNCT or len(scope) == 3:
                    break
                if u not in STOP and u not in NEGATORS and u not in _AUXILIARY:
                    scope.append(u)
            if scope and scope[0] not in NEGATIVE_MEANING and scope[0] not in ("hesitate", "doubt"):
                out.append(scope)
    return out


def _inflected(a, b):
    """Are `a` and `b` one word, or one word in two inflections ("tell"/"tells", "earn"/"earned",
    "make"/"making")? Not a derived word ("crack"/"crackers": "non-crackers" are people who don't)."""
    if a == b:
        return True
    if len(a) < len(b):
        a, b = b, a
    return any(a.endswith(suf) and a[:-len(suf)] in (b, b[:-1] if b.endswith("e") else b)
               for suf in ("s", "es", "ed", "d", "ing"))


# a comparison's lesser side ("works better than memorising lists", "beats one long session"):
# a negation's words said there are still not recommended
_LESSER = frozenset("than over beats beat versus vs unlike".split())


def _stands_unnegated(scope, tokens):
    """Do the words of a negation's `scope` stand in `tokens`, in order and close together (two of
    them, or the one; a word in another inflection counts), with no negation before them?"""
    need = min(2, len(scope))
    for i, t in enumerate(tokens):
        if not _inflected(t, scope[0]) and (len(scope) < 2 or not _inflected(t, scope[1])):
            continue
        got, k, j, last = 0, i, 0 if _inflected(t, scope[0]) else 1, i
        while k < len(tokens) and k <= i + 5 and j < len(scope):
            if _inflected(tokens[k], scope[j]):
                got, j, last = got + 1, j + 1, k
            k += 1
        after = tokens[k:k + 4]
        inside = tokens[i:last]   # a negation between the words governs them too ("knuckle-crackers with non-crackers found")
        if (got >= need and not _negated(tokens, i, counterfactual=True) and not NEGATIVE_MEANING.intersection(after)
                and not _LESSER.intersection(tokens[max(0, i - 4):i])
                and not any(_negator(t) or t == "non" for t in inside)):
            return True   # ("very high heat is off-limits" keeps the negation after the words)
    return False


def _synonym_in(w, words_):
    """Does `words_` hold another word with the same opposite as `w` ("large" for "big")? Read in
    the hand list only: WordNet's indirect pairs give far-fetched shared opposites ("early" and
    "late" are both opposite to "mid"; "much" and "larger" to "little")."""
    opp = HAND.get(w, set())
    return bool(opp) and any(u != w and HAND.get(u, set()) & opp for u in words_)


def english(clause):
    """Is the clause English (a sixth of its words or more are English function words)? The
    negation and antonym lists are English."""
    return bool(clause.words) and sum(w in STOP for w in clause.words) >= len(clause.words) / 6


def polarity_flip(r, s, share=1.0):
    """Does rewrite clause `r` flip the polarity of its source clause `s`? Returns a detail string
    or None. A word swapped for its opposite ("smaller" where the source says "larger") flips it,
    unless a negation governs one of the two ("not easy" -> "hard" is a paraphrase); a negation
    flips it when the words it governs in one clause stand in the other with no negation (nor a
    word like "avoid", "instead", "unable") before them."""
    if not english(r):
        return None
    rw, sw = set(r.words), set(s.words)
    whole = set(words(r.sentence))
    details = []
    for i, w in enumerate(r.tokens):
        opp = OPPOSITE.get(w)
        if not opp or w in sw or opp & whole or _synonym_in(w, sw):   # both words of a pair in the sentence:
            continue                                                 # a comparison
        for o in opp:
            if o in sw and o not in rw:
                j = s.tokens.index(o) if o in s.tokens else -1
                if _negated(r.tokens, i) == (j >= 0 and _negated(s.tokens, j)):   # both or neither: "too big" -> "too small"
                    details.append(f"{o!r} became {w!r}")
                break
    if details:
        return "; ".join(details)
    neg_r, neg_s = _negations(r.words) + _contrasts(r.tokens), _negations(s.words) + _contrasts(s.tokens)
    if neg_r != neg_s and share >= NEGATION_ALIGNED:
        more, fewer, label = (s.tokens, r.tokens, "a negation taken away") if neg_s > neg_r else (
            r.tokens, s.tokens, "a negation added")
        hit = [sc for sc in _scopes(more) if _stands_unnegated(sc, fewer)]
        if hit and not any(OPPOSITE.get(w, set()) & set(more) for w in fewer):
            return f"{label} ({' '.join(hit[0])!r})"
    return None


def _trigrams(tokens):
    return set(zip(tokens, tokens[1:], tokens[2:]))


def swapped(r, s):
    """Two words of source clause `s` trade places in rewrite clause `r` ("use for ... use since"
    -> "use since ... use for"; "from the pan to the plate" -> "from the plate to the pan"); a
    list put in another order (items beside "," "and" "or") is not a swap. A detail or None.

    Linear in the clause's length: one word of the pair stands where `r` leaves `s` (a trigram the
    source lacks), the other is a word that fits there in the source, and each trial swap is
    scored by the few trigrams it changes (a 1 MB one-line answer took over 20 minutes when every
    pair of words was tried and the whole clause re-read for each)."""
    rt, st = r.tokens, s.tokens
    grams = _trigrams(st)
    at = [k for k in range(len(rt) - 2) if (rt[k], rt[k + 1], rt[k + 2]) not in grams]
    new = {(rt[k], rt[k + 1], rt[k + 2]) for k in at}
    # one swap changes at most 6 trigrams, and it must leave at most one new: more is no single swap
    if not new or len(new) > 7 or len(at) > 24:
        return None
    count = Counter(zip(rt, rt[1:], rt[2:]))
    fits = {}   # the words that complete a source trigram with the two words before, around or after
    for a, b, c in grams:
        fits.setdefault((a, b, 0), set()).add(c)
        fits.setdefault((a, 1, c), set()).add(b)
        fits.setdefault((2, b, c), set()).add(a)
    shared = set(rt) & set(st)
    stops = ("for", "since", "before", "after", "from", "to", "than", "more", "less")
    where = {}   # word -> its positions that may take part in a swap
    for x, t in enumerate(rt):
        if t in shared and t not in _PUNCT and t not in ("and", "or", "the", "a") and (t not in STOP or t in stops):
            where.setdefault(t, []).append(x)
    listy = {",", "and", "or", "&"}
    last = len(rt) - 3
    pairs = set()   # (i, j): i inside a place where r leaves s, j holds a word that fits there
    for i in sorted({k + d for k in at for d in (0, 1, 2)}):
        if rt[i] not in where:
            continue
        fit = set()
        for key in ((rt[i - 2], rt[i - 1], 0) if i >= 2 else None, (rt[i - 1], 1, rt[i + 1]) if 1 <= i <= last + 1
                    else None, (2, rt[i + 1], rt[i + 2]) if i <= last else None):
            fit |= fits.get(key, set()) if key else set()
        for w in fit - {rt[i]}:
            pairs.update((min(i, j), max(i, j)) for j in where.get(w, ())[:200])
    for i, j in sorted(pairs):
        if j == i + 1 or all(any(rt[k] in listy for k in (x - 1, x + 1) if 0 <= k < len(rt)) for x in (i, j)):
            continue   # two neighbours ("water only" -> "only water": style), or two items of a list reordered
        tok = {i: rt[j], j: rt[i]}
        pos = sorted({k for c in (i, j) for k in range(c - 2, c + 1) if 0 <= k <= last})
        delta = Counter(tuple(tok.get(x, rt[x]) for x in (k, k + 1, k + 2)) for k in pos)
        delta.subtract((rt[k], rt[k + 1], rt[k + 2]) for k in pos)
        gained, out = 0, len(new)
        for g, d in delta.items():
            before = count[g]
            step = (before + d > 0) - (before > 0)   # +1: g appears, -1: g is gone, 0: no change
            if g in grams:
                gained += step
            else:
                out += step
        if gained >= 2 and out <= 1:   # the swap explains the difference
            return f"{rt[i]!r} and {rt[j]!r} trade places"
    return None


def _run(a, i, b, j, step, most=3):
    """How many tokens match going from a[i] and b[j] in direction `step` (at most `most`)."""
    n = 0
    while n < most and 0 <= i < len(a) and 0 <= j < len(b) and a[i] == b[j]:
        n, i, j = n + 1, i + step, j + step
    return n


def substituted(r, s, options, source_grams):
    """One option of the question ("Should I repair it or replace it?") put in the place of the
    other in a clause of the source, in the same context (a token or more matching on each side,
    three or more in all): "for a standard machine, replacing is the better value" -> "repairing is
    the better value". `options`: the stems of the question's words; `source_grams`: the source's
    trigrams (a rewrite that says what some source clause says is no substitution). A detail or None."""
    rt, st = r.tokens, s.tokens
    rset, sset = set(words(r.sentence)), set(words(s.sentence))
    for i, w in enumerate(rt):
        if w in sset or stem(w) not in options or not w.isalpha() or stem(w) in LAYOUT or rarity(w) < 0.3:
            continue
        if 0 < i < len(rt) - 1 and (rt[i - 1], w, rt[i + 1]) in source_grams:
            continue
        for j, v in enumerate(st):
            if v in rset or stem(v) not in options or stem(v)[:4] == stem(w)[:4] or rarity(v) < 0.3:
                continue
            left, right = _run(rt, i - 1, st, j - 1, -1), _run(rt, i + 1, st, j + 1, 1)
            context = rt[i - left:i] + rt[i + 1:i + 1 + right]
            if left and right and left + right >= 3 and sum(t not in STOP for t in context) >= 1:
                return f"{v!r} became {w!r}"
    return None


def novelty(clause, side, question_stems=frozenset()):
    """How much of `clause` the other `side` lacks: (the rarity-weighted count of its content words
    found nowhere there, those words, the rarity-weighted count of all its content words). A word
    of the question weighs half (for "lost": an original restating the request may lose it).
    Numbers, in digits or English words ("forty-five" for 45), are the number rules' to read."""
    new, seen, total = [], set(), 0.0
    for w in clause.content:
        st = stem(w)
        if st in seen or st in LAYOUT or w.isdigit() or st in NEGATORS or w in CARDINAL_WORDS:
            continue
        seen.add(st)
        weight = rarity(w) * (0.5 if st in question_stems else 1.0)
        total += weight
        if not side.has(st):
            new.append((w, weight))
    return sum(x for _, x in new), [w for w, _ in new], total


# ---------------------------------------------------------------- verdicts

_LABELS = [("not true", "false"), ("not correct", "false"), ("not false", "true"), ("partly true", "partly true"), ("partially true", "partly true"), ("half true", "partly true"),
           ("mostly true", "mostly true"), ("mostly false", "mostly false"), ("misleading", "misleading"),
           ("true", "true"), ("false", "false"), ("positive", "positive"), ("negative", "negative"),
           ("mixed", "mixed"), ("neutral", "neutral"), ("correct", "true"), ("incorrect", "false"),
           ("not really", "no"), ("yes", "yes"), ("no", "no")]
_LABEL_RE = re.compile(r"(?<!oh )\b(" + "|".join(re.escape(k) for k, _ in _LABELS) + r")\b", re.I)
_LABEL = dict(_LABELS)
_VERDICT_LINE = re.compile(r"^\W*(?:verdict|answer|final answer|label|sentiment|conclusion|bottom line|rating|"
                           r"classification|overall|in short|short answer|result)\b", re.I)


def verdict_labels(text, lines=None):
    """The verdict labels a text opens with, or states on a "Verdict:"/"Answer:"/... line."""
    out = []
    all_lines = [ln for ln in text.split("\n") if ln.strip()]
    if not all_lines:
        return out
    chosen = [all_lines[0]] + [ln for ln in all_lines[1:] if _VERDICT_LINE.match(ln.strip("*_# "))]
    for ln in chosen:
        head = ln.strip("*_#>-• ")
        head = re.split(r"(?<=[.!?;])\s", head)[0][:60]
        for m in _LABEL_RE.finditer(head):
            out.append(_LABEL[m.group(1).lower()])
    return out


# labels that say the same: a verdict changes when the rewrite's falls in another class
_CLASS = {"yes": "yes", "true": "yes", "mostly true": "yes", "no": "no", "false": "no", "mostly false": "no",
          "partly true": "partly", "misleading": "partly", "mixed": "mixed", "positive": "positive",
          "negative": "negative", "neutral": "neutral"}


def verdict_changed(original, rewrite):
    """A detail when the verdict the rewrite opens with (or states on a "Verdict:" line) is of
    another class than the original's, else None. Classes: yes/true, no/false, partly true/
    misleading, and the sentiment labels."""
    r = verdict_labels(rewrite)
    o = {_CLASS[x] for x in verdict_labels(original)}
    if not r or not o:
        return None
    for label in r:
        if _CLASS[label] not in o:
            return f"the verdict is {label!r}, the original's {' / '.join(sorted(o))!r}"
    return None


# ---------------------------------------------------------------- a record

ADDED_AT = 2.0      # rarity-weighted new words in one rewrite clause, at least, for "added"
LOST_AT = 2.0       # ... missing words of one original clause, for "lost"
PLAIN_AT = 4        # or this many content words, half the clause's or more, however common
ALIGNED = 0.6       # share of a rewrite clause's stems its source clause holds, for a flip or a swap
NEGATION_ALIGNED = 0.75   # ... for a negation added or taken away


_ARITHMETIC = re.compile(r"[=×÷+*/−^√]|\d\s*-\s*\d")
HEADING_WORDS = 5   # a line of at most this many words with no full stop is a heading: it states nothing


def heading(sentence):
    """Is `sentence` a heading ("Practical effect", "Setting up the equation")? It claims nothing
    to check, in either direction."""
    s = sentence.rstrip()
    return len(words(s)) <= HEADING_WORDS and s[-1:] not in ".!?。！？"


def plain(missing, clause):
    """Does a clause miss enough everyday words to be read anyway ("Write down what you learn,
    since you'll forget it": no rare word, but most of it is gone)?"""
    return len(missing) >= PLAIN_AT and len(missing) >= 0.5 * len(clause.stems)


def findings(question, original, rewrite, evidence=(), added_at=ADDED_AT, lost_at=LOST_AT, code=False,
             arithmetic=False):
    """Every Finding of one record (see the module docstring), surest first. code=True (the
    request or the original gives code) looks for no added clause: a rewrite explaining code in
    words cannot be checked against it word for word;
    arithmetic=True (a math task) leaves worked steps ("Multiply by consumption: 4.2 × 6.5") to the
    number rules. An "added" or "lost" Finding carries in .window the sentences of the other side
    that share the most words with its clause (the checker's encoder reads them)."""
    src = Side([question, original, *evidence], code=True)
    own = Side([rewrite])
    qstems = Side([question]).all_stems
    out = []
    detail = verdict_changed(original, rewrite)
    if detail:
        first = own.sentences[0] if own.sentences else rewrite[:80]
        out.append(Finding("verdict", "unsupported", first, 1.0, detail))
    for c in own.clauses:
        if c.head:
            continue
        best, share, held = src.best(c)
        if best is not None and share >= ALIGNED and held >= 2:
            core = c.stems - NEGATORS   # how closely the clause says its source's words, negations aside
            d = polarity_flip(c, best, len(core & best.stems) / len(core) if core else share)
            if d:
                out.append(Finding("contradiction", "unsupported", c.sentence, 1.0, d))
                continue
        if code or (arithmetic and _ARITHMETIC.search(c.sentence)) or heading(c.sentence):
            continue
        score, new, total = novelty(c, src)
        if score >= added_at:
            out.append(Finding("added", "unsupported", c.sentence, score, "new words: " + ", ".join(new), c.text,
                               src.window(c), (score, len(new), total, len(c.stems)), tuple(new)))
    # the options a question offers ("repair it or replace it?"): a rewrite must not trade them
    options = qstems if re.search(r"\bor\b", question) else set()
    grams = set().union(*(_trigrams(c.tokens) for c in src.clauses)) if options and src.clauses else set()
    for c in own.whole:
        best, share, held = src.best(c, whole=True)
        d = best is not None and held >= 2 and share >= ALIGNED and swapped(c, best)
        d = d or (options and next(filter(None, (substituted(c, s, options, grams) for s in src.aligned(c, 8))), None))
        if d:
            out.append(Finding("contradiction", "unsupported", c.sentence, 1.0, d))
    rsrc = Side([rewrite], code=True)
    osrc = Side([original])
    for c in osrc.clauses:
        if c.head or heading(c.sentence):
            continue
        score, gone, total = novelty(c, rsrc, qstems)
        if score >= lost_at or plain(gone, c):
            out.append(Finding("lost", "lost", c.sentence, score, "missing: " + ", ".join(gone), c.text,
                               rsrc.window(c), (score, len(gone), total, len(c.stems)), tuple(gone)))
    out.sort(key=lambda f: -f.score)
    return out
