"""The checkable facts a text states: numbers, URLs, e-mail addresses and proper names.

    new_facts(rewrite, [question, original, *evidence], arithmetic=False) -> ["$50", "Springfield"]

lists, in order of appearance, the facts of `rewrite` that none of the sources states. It is
what the filter rule `new_facts` uses to catch a rewriter inventing a year, an amount or a
person. It is written to stay quiet on layout:

- numbers are compared by value (1,000 = 1000 = 1k; 50% = 50 percent = 0.5; "two million" =
  2,000,000 in a source); list or step numbering ("1.", "Step 2", "Day 3", a table's row
  numbers) and the length of a list ("3 tips" over three items) are not facts, nor are 0 and 1;
- a proper name is a capitalised word that is not where any word is capitalised: the start of
  a sentence, line, list item or table cell, a table's header row, a label before a colon. In a
  heading or cell written in Title Case the capitals say nothing, so its words count only when
  none of its longer words is known. A CamelCase word ("HydroPeak") is a name anywhere. Names
  are compared case-insensitively; a possessive, a plural or another form sharing the first
  five letters ("Japanese" for "Japan") counts as the word;
- text inside code (fenced blocks, `inline code`) is code, not claims, and is skipped;
- with arithmetic=True (math tasks) a number that is the sum, difference, product or quotient
  of two numbers of the sources counts as known: a worked solution shows its steps.
"""

import re

from realign.textchecks import mask_code

# ---------------------------------------------------------------- tokens

_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>()\[\]{}\"'`|]+", re.I)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_NUMBER = re.compile(r"""
    (?=[\d$€£¥₹])(?<![\w.,/])(?P<cur>[$€£¥₹]\s?)?
    (?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?![.,]?\d)
    (?P<suf>\s?(?:%|percent\b|per\s?cent\b|thousand\b|million\b|billion\b|trillion\b)|(?:k|K|M|bn|B)\b)?
    """, re.X)
_WORD = re.compile(r"[^\W\d_][\w'’-]*")
_CAPITALISED = re.compile(r"(?<![\w'’-])[A-ZÀ-ÖØ-ÞĀ-ſΑ-ΩА-Я][\w'’-]*")

# Numbers that number a list or a step rather than state anything.
_LIST_NUMBER = re.compile(r"^[ \t>#*_]*(?:[-*+•][ \t]+)?(?:\*\*|__)?\(?(\d{1,2})(?:[.):]|[ \t]*[-–—])", re.M)
_STEP_WORD = re.compile(r"(?:\b(?:step|stage|phase|part|option|tip|method|way|section|point|item|rule|example|"
                        r"question|idea|reason|day|week|round|level|chapter|lesson|task|exercise|no\.)[ \t]*#?|#)$",
                        re.I)

_ROW_NUMBER = re.compile(r"^[ \t]*\|[ \t]*(\d{1,2})[ \t]*\|", re.M)  # a table's row-number column
_ITEM = re.compile(r"^[ \t]*(?:[-*+•]|\d{1,3}[.)])[ \t]+\S")

_MULTIPLIER = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "b": 1e9, "bn": 1e9, "billion": 1e9,
               "trillion": 1e12}
_NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty".split())}
_NUMBER_WORDS.update({"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
                      "ninety": 90, "hundred": 100, "thousand": 1000, "million": 1e6, "billion": 1e9,
                      "dozen": 12, "half": 0.5, "twice": 2, "double": 2, "triple": 3, "once": 1,
                      "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
                      "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "quarter": 0.25})
_NUMBER_WORD = re.compile(r"\b(" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")(?:[\s-]+("
                          + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r"))?\b", re.I)

# Capitalised words that are layout, not names, wherever they stand.
LAYOUT_WORDS = frozenset("""
i i'm i've i'll i'd ok okay yes no true false note notes tip tips step steps example examples summary
answer answers conclusion introduction overview final explanation solution question questions reasoning
option options part key pros cons ingredients instructions method result results total verdict important
warning caution tldr faq q a subject dear hi hello best regards sincerely thanks thank bonus
mr mrs ms dr st jr sr vs etc
""".split())

_TERMINAL = ".!?:;|…"


def _mask(text, pattern):
    """`text` with every match of `pattern` blanked out (same length, so offsets still hold)."""
    return pattern.sub(lambda m: " " * len(m.group()), text)


def _value(m):
    """The numbers a _NUMBER match may mean: (bare value, scaled value or None, percent fraction or None)."""
    bare = float(m.group("num").replace(",", ""))
    suffix = (m.group("suf") or "").strip().lower()
    if suffix in ("%", "percent", "per cent", "percent"):
        return bare, None, bare / 100
    if suffix:
        return bare, bare * _MULTIPLIER[suffix], None
    return bare, None, None


def _list_lengths(text):
    """How many items each list of `text` has: 'Here are 3 tips' over a list of three states
    nothing new."""
    lengths, run = set(), 0
    for line in text.split("\n"):
        if _ITEM.match(line):
            run += 1
        elif line.strip() and not line.startswith((" ", "\t")):
            if run:
                lengths.add(run)
            run = 0
    if run:
        lengths.add(run)
    return lengths


def _key(x):
    return round(x, 6)


# ---------------------------------------------------------------- what the sources state

class Sources:
    """Everything the question, the original and the evidence state, in comparable form."""

    def __init__(self, texts, arithmetic=False):
        self.text = "\n".join(t for t in texts if t)
        self.lower = self.text.lower()
        self.arithmetic = arithmetic
        self._words = self._numbers = None

    @property
    def words(self):
        if self._words is None:
            words = set()
            for w in _WORD.findall(self.lower):
                w = w.replace("’", "'")
                words.add(w)
                words.update(p for p in re.split(r"[-']", w) if p)
            self._words = words
        return self._words

    @property
    def numbers(self):
        if self._numbers is None:
            values = []
            for m in _NUMBER.finditer(self.text):
                values.extend(v for v in _value(m) if v is not None)
            for m in _NUMBER_WORD.finditer(self.lower):
                a = _NUMBER_WORDS[m.group(1).lower()]
                values.append(a)
                if m.group(2):
                    b = _NUMBER_WORDS[m.group(2).lower()]
                    values += [b, a * b if b >= 100 else a + b]
            # "2 million", "1.5 billion": a digit number followed by a scale word
            for m in re.finditer(r"(\d+(?:\.\d+)?)\s+(thousand|million|billion|trillion)\b", self.lower):
                values.append(float(m.group(1)) * _MULTIPLIER[m.group(2)])
            known = {_key(v) for v in values}
            if self.arithmetic:
                base = list(dict.fromkeys(values))[:40]
                for a in base:
                    for b in base:
                        known.update((_key(a + b), _key(abs(a - b)), _key(a * b)))
                        if b:
                            known.add(_key(a / b))
            known.update((0.0, 1.0))  # "a", "an", "one", "8:00": a 0 or a 1 is never news
            self._numbers = known
        return self._numbers

    def has_number(self, m):
        num = m.group("num")
        if num in self.text and re.search(r"(?<![\w.,/])" + re.escape(num) + r"(?![.,]?\d)", self.text):
            return True  # written the same way
        bare, scaled, fraction = _value(m)
        return any(v is not None and _key(v) in self.numbers for v in (bare, scaled, fraction))

    def has_word(self, word):
        w = word.lower().replace("’", "'")
        for suffix in ("'s", "'"):
            if w.endswith(suffix) and len(w) > len(suffix) + 1:
                w = w[: -len(suffix)]
        if w in self.words or w in self.lower:
            return True
        if len(w) >= 5 and any(len(k) >= 5 and (w.startswith(k) or k.startswith(w[:-1])) for k in self.words):
            return True  # another form of a word the sources use: Japan / Japanese, Norway / Norwegian
        parts = [p for p in re.split(r"[-']", w) if p]
        if len(parts) > 1 and all(p in self.words for p in parts):
            return True
        for suffix in ("es", "s"):  # plurals: "the Smiths"
            if w.endswith(suffix) and w[: -len(suffix)] in self.words:
                return True
        return False


# ---------------------------------------------------------------- where capitals mean nothing

_LIST_MARKER = re.compile(r"^(?:[-*+•]|\d{1,3}[.)]|[a-zA-Z][.)]|\(\w{1,3}\))$")
_OPENERS = " \t*_\"'“‘([{>#`~"


def _initial(line, col, start=0):
    """Does the word at `col` of `line` stand where any word is capitalised (in the piece of the
    line that begins at `start`)?"""
    before = line[start:col].rstrip(_OPENERS)
    if not before or before[-1] in _TERMINAL or before[-1] in "—–":
        return True
    return bool(_LIST_MARKER.match(before.strip()))


_BOLD_LABEL = re.compile(r"^[ \t>#*_]*(?:[-*+•]|\d{1,3}[.)])?[ \t]*\*\*([^*\n]+)\*\*")
_COLON_LABEL = re.compile(r"^([^:.!?*]{1,60}):")
_BOLD_LINE = re.compile(r"\*\*[^*]+\*\*:?")


def _label_end(line):
    """Column where a leading label ends ('- **Best time to visit**:', '**Note:**', 'Cooking Time:'), else 0."""
    m = _BOLD_LABEL.match(line)
    if m and (m.group(1).rstrip().endswith(":") or line[m.end():].lstrip()[:1] in (":", ".", "—", "–", "-")):
        return m.end()
    m = _COLON_LABEL.match(line)
    if m and len(m.group(1).split()) <= 6:
        return m.end()
    return 0


def _header_rows(lines):
    """Indexes of the header rows of markdown tables (the line above a |---|---| line)."""
    return {i - 1 for i, line in enumerate(lines)
            if i and lines[i - 1].lstrip().startswith("|") and re.fullmatch(r"\|?[\s:|-]*-[\s:|-]*\|?", line.strip())}


def _segments(line):
    """(start, end, titled) pieces of a line: titled ones (a heading, a bold line, a table cell;
    "label": a leading label such as 'Best Time to Visit:') are where writers capitalise words
    for layout."""
    s = line.strip()
    if s.startswith("#") or s.startswith("**") and _BOLD_LINE.fullmatch(s):
        return [(0, len(line), True)]
    if s.startswith("|"):
        out, at = [], 0
        for cell in line.split("|"):
            out.append((at, at + len(cell), True))
            at += len(cell) + 1
        return out
    label = _label_end(line)
    return [(0, label, "label"), (label, len(line), False)] if label else [(0, len(line), False)]


def _camel(word):
    return re.search(r"[a-z][A-Z]", word) is not None


def _names(text, known):
    """(start, word) of each capitalised word that `known` does not know and that stands where
    only a name would be capitalised. In a titled piece written in Title Case every word is
    capitalised, so its words count as names only when none of its longer words is known; a
    leading label is layout. A CamelCase word ('HydroPeak') is a name wherever it stands."""
    out, offset = [], 0
    lines = text.split("\n")
    headers = _header_rows(lines) if "|" in text else ()
    for i, line in enumerate(lines):
        if i not in headers and _CAPITALISED.search(line):
            for a, b, titled in _segments(line):
                caps = [m for m in _CAPITALISED.finditer(line, a, b)
                        if len(m.group().lower().rstrip("'’s")) >= 2 and m.group().lower().rstrip("'’s") not in LAYOUT_WORDS
                        and m.group().lower() not in LAYOUT_WORDS]
                if not caps:
                    continue
                longer = [w for w in _WORD.findall(line[a:b]) if len(w) >= 4] if titled is True else ()
                if titled == "label" or longer and all(w[0].isupper() for w in longer):
                    if titled == "label" or any(w.lower() in LAYOUT_WORDS or known(w) for w in longer):
                        caps = [m for m in caps if _camel(m.group())]
                    else:
                        caps = [m for m in caps if _camel(m.group()) or not _initial(line[:b], m.start(), a)]
                    out.extend((offset + m.start(), m.group()) for m in caps if not known(m.group()))
                    continue
                for m in caps:
                    w = m.group()
                    if (_camel(w) or not _initial(line[:b], m.start(), a)) and not known(w):
                        out.append((offset + m.start(), w))
        offset += len(line) + 1
    return out


# ---------------------------------------------------------------- the check

def new_facts(text, sources, arithmetic=False, numbers_only=False):
    """The facts of `text` (numbers, URLs, e-mails, names; only numbers with numbers_only) that no
    text in `sources` states, as they are written in `text`, in order, each once."""
    src = sources if isinstance(sources, Sources) else Sources(sources, arithmetic)
    found = []  # (position, surface)
    body = mask_code(text)
    if "://" in body or "www." in body:
        for m in _URL.finditer(body) if not numbers_only else ():
            url = m.group().rstrip(".,;:!?)")
            bare = re.sub(r"^(?:https?://)?(?:www\.)?", "", url.lower()).rstrip("/")
            if bare not in src.lower:
                found.append((m.start(), url))
        body = _mask(body, _URL)
    if "@" in body:
        for m in _EMAIL.finditer(body) if not numbers_only else ():
            if m.group().lower() not in src.lower:
                found.append((m.start(), m.group()))
        body = _mask(body, _EMAIL)

    numbering = counts = None
    stated = {}  # number as written -> do the sources state it?
    for m in _NUMBER.finditer(body):
        key = m.group()
        if key not in stated:
            stated[key] = src.has_number(m)
        if stated[key]:
            continue
        if numbering is None:  # where lists number their items, and how long the lists are
            numbering = {n.start(1) for n in _LIST_NUMBER.finditer(body)}
            numbering.update(n.start(1) for n in _ROW_NUMBER.finditer(body))
            counts = _list_lengths(body)
        num, start = m.group("num"), m.start("num")
        if start in numbering or len(num) <= 2 and _STEP_WORD.search(body, max(0, start - 16), start):
            continue
        if not m.group("cur") and not m.group("suf") and num.isdigit() and int(num) in counts:
            continue
        found.append((m.start(), key.strip()))
    if not numbers_only:
        found.extend(_names(body, src.has_word))

    seen, out = set(), []
    for _, surface in sorted(found):
        if surface.lower() not in seen:
            seen.add(surface.lower())
            out.append(surface)
    return out
