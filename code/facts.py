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
from bisect import bisect_left

from realign.textchecks import mask_code, numbers

# ---------------------------------------------------------------- tokens

_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>()\[\]{}\"'`|]+", re.I)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_WORD = re.compile(r"[^\W\d_][\w'’-]*")
_CAPITALISED = re.compile(r"(?<![\w'’-])[A-ZÀ-ÖØ-ÞĀ-ſΑ-ΩА-Я][\w'’-]*")

# Numbers that number a list or a step rather than state anything.
_LIST_NUMBER = re.compile(r"^[ \t>#*_]*(?:[-*+•][ \t]+)?(?:\*\*|__)?\(?(\d{1,2})(?:[.):]|[ \t]*[-–—])", re.M)
_STEP_WORD = re.compile(r"(?:\b(?:step|stage|phase|part|option|tip|method|way|section|point|item|rule|example|"
                        r"question|idea|reason|day|week|round|level|chapter|lesson|task|exercise|no\.)[ \t]*#?|#)$",
                        re.I)

_ROW_NUMBER = re.compile(r"^[ \t]*\|[ \t]*(\d{1,2})[ \t]*\|", re.M)  # a table's row-number column
_ITEM = re.compile(r"^[ \t]*(?:[-*+•]|\d{1,3}[.)])[ \t]+\S")

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

SCAN_CHARS = 1 << 16  # sources longer than this are searched for a piece through an index


class Sources:
    """Everything the question, the original and the evidence state, in comparable form. Each
    index is built once, in one pass over the texts, so that looking a fact up costs the same
    whatever their length."""

    def __init__(self, texts, arithmetic=False):
        self.text = "\n".join(t for t in texts if t)
        self.lower = self.text.lower()
        self.arithmetic = arithmetic
        self._words = self._sorted = self._numbers = self._written = self._pieces = None
        self._known = {}  # word -> has_word's answer

    @property
    def words(self):
        if self._words is None:
            words = set(_WORD.findall(self.lower.replace("’", "'")))
            for w in [w for w in words if "-" in w or "'" in w]:  # and the parts of "well-known", "o'clock"
                words.update(p for p in re.split(r"[-']", w) if p)
            self._words = words
        return self._words

    def _index_numbers(self):
        values, written = [], set()
        for n in numbers(self.text):
            values.extend(n.values)
            written.add(n.written)
        known = {_key(v) for v in values}
        if self.arithmetic:
            base = list(dict.fromkeys(values))[:40]
            for a in base:
                for b in base:
                    known.update((_key(a + b), _key(abs(a - b)), _key(a * b)))
                    if b:
                        known.add(_key(a / b))
        known.update((0.0, 1.0))  # "a", "an", "one", "8:00": a 0 or a 1 is never news
        self._numbers, self._written = known, written

    @property
    def numbers(self):
        """The values the sources state (and, for arithmetic, their sums, differences, products
        and quotients), rounded by _key."""
        if self._numbers is None:
            self._index_numbers()
        return self._numbers

    def has_number(self, n):
        """Do the sources state the Number `n`: written the same way, or any value it may mean?"""
        if self._written is None:
            self._index_numbers()
        return n.written in self._written or any(_key(v) in self._numbers for v in n.values)

    def _prefixed(self, prefix, min_len):
        """Is there a source word of at least min_len characters starting with `prefix`?"""
        if self._sorted is None:
            self._sorted = sorted(self.words)
        i = bisect_left(self._sorted, prefix)
        while i < len(self._sorted) and self._sorted[i].startswith(prefix):
            if len(self._sorted[i]) >= min_len:
                return True
            i += 1
        return False

    def has_word(self, word):
        w = word.lower().replace("’", "'")
        known = self._known.get(w)
        if known is None:
            known = self._known[w] = self._has_word(w)
        return known

    def _has_word(self, w):
        for suffix in ("'s", "'"):
            if w.endswith(suffix) and len(w) > len(suffix) + 1:
                w = w[: -len(suffix)]
        if w in self.words:
            return True
        # another form of a word the sources use (Japan / Japanese, Norway / Norwegian): a source
        # word of 5 letters or more that starts w, or that starts with w less its last letter
        if len(w) >= 5 and (any(w[:i] in self.words for i in range(5, len(w))) or self._prefixed(w[:-1], 5)):
            return True
        parts = [p for p in re.split(r"[-']", w) if p]
        if len(parts) > 1 and all(p in self.words for p in parts):
            return True
        for suffix in ("es", "s"):  # plurals: "the Smiths"
            if w.endswith(suffix) and w[: -len(suffix)] in self.words:
                return True
        return self.mentions(w)  # inside a longer token

    def mentions(self, piece):
        """Does the sources' lower-case text contain `piece` (a string without whitespace)? A
        long text is searched through an index of its tokens, so that many lookups cost about
        what one pass over it does."""
        if len(self.lower) <= SCAN_CHARS:
            return piece in self.lower
        if self._pieces is None:
            # every 4-character piece of every distinct token -> those tokens; shorter pieces as a set
            grams, short = {}, set()
            for token in set(self.lower.split()):
                for i in range(len(token)):
                    short.update((token[i:i + 2], token[i:i + 3]))
                    if i + 4 <= len(token):
                        grams.setdefault(token[i:i + 4], []).append(token)
            self._pieces = grams, short
        grams, short = self._pieces
        if len(piece) < 4:
            return piece in short
        rarest = min((grams.get(piece[i:i + 4], ()) for i in range(len(piece) - 3)), key=len)
        return any(piece in token for token in rarest)


# ---------------------------------------------------------------- where capitals mean nothing

_LIST_MARKER = re.compile(r"^(?:[-*+•]|\d{1,3}[.)]|[a-zA-Z][.)]|\(\w{1,3}\))$")
_OPENERS = " \t*_\"'“‘([{>#`~"


def _initial(line, col, start=0, first=None):
    """Does the word at `col` of `line` stand where any word is capitalised (in the piece of the
    line that begins at `start`, whose text begins at `first`, after its leading whitespace)?
    Looks only at the few characters before `col`: a long line costs no more per word."""
    j = col
    while j > start and line[j - 1] in _OPENERS:
        j -= 1
    if j == start or line[j - 1] in _TERMINAL or line[j - 1] in "—–":
        return True
    if first is None:
        first = len(line) - len(line[start:].lstrip()) if start < len(line) else start
    # a list marker ("-", "2.", "(b)") is all the piece holds before the word
    return j - first <= 8 and bool(_LIST_MARKER.match(line[first:j].strip()))


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
                first = a + (b - a) - len(line[a:b].lstrip())  # where the piece's text starts
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
                        caps = [m for m in caps if _camel(m.group()) or not _initial(line, m.start(), a, first)]
                    out.extend((offset + m.start(), m.group()) for m in caps if not known(m.group()))
                    continue
                for m in caps:
                    w = m.group()
                    if (_camel(w) or not _initial(line, m.start(), a, first)) and not known(w):
                        out.append((offset + m.start(), w))
        offset += len(line) + 1
    return out


# ---------------------------------------------------------------- the check

def new_facts(text, sources, arithmetic=False, numbers_only=False, words=False):
    """The facts of `text` (numbers, URLs, e-mails, names; only numbers with numbers_only) that no
    text in `sources` states, as they are written in `text`, in order, each once. Numbers are
    read by realign.textchecks.numbers: any script's digits, glued to CJK text too, and with
    words=True cardinal number words from "two" up ("twelve", "twenty-five"; not "one", "half" or
    ordinals). A rewrite often counts what it lays out ("There are two approaches"), so words
    are for checking that an original's numbers survive, not for finding new ones."""
    src = sources if isinstance(sources, Sources) else Sources(sources, arithmetic)
    found = []  # (position, surface)
    body = mask_code(text)
    if "://" in body or "www." in body:
        for m in _URL.finditer(body) if not numbers_only else ():
            url = m.group().rstrip(".,;:!?)")
            bare = re.sub(r"^(?:https?://)?(?:www\.)?", "", url.lower()).rstrip("/")
            if not src.mentions(bare):
                found.append((m.start(), url))
        body = _mask(body, _URL)
    if "@" in body:
        for m in _EMAIL.finditer(body) if not numbers_only else ():
            if not src.mentions(m.group().lower()):
                found.append((m.start(), m.group()))
        body = _mask(body, _EMAIL)

    numbering = counts = None
    stated = {}  # number as written -> do the sources state it?
    for n in numbers(body, words=words):
        if n.word and (n.ordinal or n.value < 2 or n.value != int(n.value)):
            continue  # "first", "once", "half", "one": they number or divide more than they state
        key = n.surface.lower()
        if key not in stated:
            stated[key] = src.has_number(n)
        if stated[key]:
            continue
        if numbering is None:  # where lists number their items, and how long the lists are
            numbering = {m.start(1) for m in _LIST_NUMBER.finditer(body)}
            numbering.update(m.start(1) for m in _ROW_NUMBER.finditer(body))
            counts = _list_lengths(body)
        short = n.value < 100 if n.word else len(n.written) <= 2
        if n.at in numbering or short and _STEP_WORD.search(body, max(0, n.at - 16), n.at):
            continue  # "2." numbering an item, "Step 2", "Day two"
        if (n.word or n.plain and n.written.isdigit()) and n.value in counts:
            continue  # "3 tips" over a list of three
        found.append((n.start, n.surface))
    if not numbers_only:
        found.extend(_names(body, src.has_word))

    seen, out = set(), []
    for _, surface in sorted(found):
        if surface.lower() not in seen:
            seen.add(surface.lower())
            out.append(surface)
    return out
