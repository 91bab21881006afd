"""How the faithfulness checker reads a text: claims, their content words, and the passage to judge
each claim against. The checker (checker.py) and the training-pair generator (pairs.py) both use
these functions, so the model is trained on exactly the inputs it sees at run time.

- claims(text) -> ["You need: flour, sugar, eggs", "Stir well."]: the statements of a text, one a
  sentence; markdown (headings, bullets, bold, table pipes, emoji) taken off, code blocks left out,
  and a short heading or lead-in joined with the short list items under it ("Fruits: apple, banana"),
  which say nothing alone.
- stems(text) -> ["coars", "grind", "not", ...]: its content words, lower case, cut to a crude stem;
  negations ("not", "never", "no", "without") and words like "before", "more", "only" count as
  content, since a flaw often lives in them.
- window(claim, source, k) -> the k claims of `source` that share the most (rarer) words with
  `claim`, in their order: the premise the model reads. SummaC's sentence-level idea, with a
  lexical pick so one short model input does.
"""

import heapq
import math
import re
from functools import lru_cache
from collections import defaultdict

_CODE_BLOCK = re.compile(r"```.*?(?:```|\Z)", re.S)
_INLINE_CODE = re.compile(r"`([^`\n]*)`")
_PREFIX = re.compile(r"^[ \t>]*(?:#{1,6}[ \t]+|[-*+•·▪–][ \t]+|\(?\d{1,3}[.)][ \t]+|\(?[a-zA-Z][.)][ \t]+(?=\S))?")
# a bold label before a dash ("**Choose the right channel** – talk in person") is a lead-in, as
# one before a colon is: it names the item, the words after it say what it claims
_BOLD_DASH = re.compile(r"\*\*([^*\n]{1,60}?)\*\*\s*[–—-]\s+")
_EMPHASIS = re.compile(r"\*\*|__|(?<!\w)[*_](?=\S)|(?<=\S)[*_](?!\w)")
_SYMBOLS = re.compile("[\U0001F000-\U0001FFFF\u2600-\u27BF\u2B00-\u2BFF\uFE0F\u200D]")
_ARROW = re.compile(r"\s*(?:→|⇒|->|=>)\s*")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"”')\]]*\s+(?=[\"“'(\[]?[A-Z0-9])|(?<=[。！？])\s*")
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
# a word: letters and digits of any script, an apostrophe inside ("don't"); in Chinese, Japanese
# and Korean each character is a word of its own (they write no spaces)
_WORD = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+(?:'[^\W_{_CJK}]+)?")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
SHORT_ITEM = 6    # list items of at most this many words are joined to the line above them
SHORT_HEAD = 8    # ... when that line has at most this many words and ends in ":" or no full stop

# Function words that carry no checkable content. Negations, order, quantity and modality words
# are deliberately NOT here: "should" -> "should not", "before" -> "after", "all" -> "some".
STOP = frozenset("""a an the and or but of to in on at for with by from as is are was were be been being am
it its it's this that these those there here i me my we us our you your yours they them their he him his
she her so then than which who whom whose what how when where why if also just very really quite too
do does did done doing has have had having get gets got into onto about up out over off own s t d ll
re ve m o y let lets let's one ones thing things way ways like such via per etc e g i.e eg ie""".split())
_NEGATION = {"not", "never", "no", "without", "nor", "none", "neither", "cannot"}
_NT = {"wo": "will", "ca": "can", "sha": "shall", "ai": "is"}


_PROSE = re.compile(r"[.!?]\s+[A-Z]")


def _clean(line):
    line = _BOLD_DASH.sub(r"\1: ", line, count=1)
    line = _INLINE_CODE.sub(r"\1", line)
    line = _SYMBOLS.sub("", line)
    line = _ARROW.sub(": ", line)
    line = _EMPHASIS.sub("", line)
    line = _PREFIX.sub("", line, count=1)
    return " ".join(line.split())


def _sentences(line):
    return [s.strip() for s in _SENTENCE_END.split(line) if s.strip()]


def _is_item(raw):
    return bool(re.match(r"^[ \t>]*(?:\*\*)?(?:[-*+•·▪][ \t]+|\(?\d{1,3}[.)][ \t]+)", raw))


def claims(text, code=False):
    """The statements of `text`, one string each, in order (see the module docstring). With
    code=True the lines of its ``` blocks come too, one claim each (a premise may need them: an
    original's inline command the rewrite moved into a block)."""
    return list(_claims(text, code))


@lru_cache(maxsize=256)   # the checker reads each text of a record from several sides
def _claims(text, code):
    text = text.replace("\r\n", "\n")
    lines_of_code = [ln.strip() for b in _CODE_BLOCK.findall(text) for ln in b.strip("`").split("\n")[1:]
                     if ln.strip() and ln.strip() != "```"] if code else []
    text = _CODE_BLOCK.sub("\n", text)
    out = []
    header = None
    pending = None  # [head text, [short items], took_long_items] while a lead-in collects its items
    for raw in text.split("\n"):
        if not raw.strip() or _TABLE_RULE.match(raw):
            continue
        if raw.strip().startswith("|") or (raw.count("|") >= 2 and not _PROSE.search(raw)):   # a table row:
            # its cells, header first (a sentence using "|" twice, "a | b", is no table)
            if pending is not None:
                out.extend(_join(pending))
                pending = None
            cells = [_clean(c) for c in raw.strip().strip("|").split("|")]
            if header is None:
                header = cells
                continue
            heads = header + [""] * (len(cells) - len(header))
            rest = [f"{heads[j]} {c}".strip() for j, c in enumerate(cells) if j and c not in ("", "-", "–", "—")]
            out.append(f"{cells[0]}: {'; '.join(rest)}." if rest and cells[0] else "; ".join(rest) + ".")
            continue
        header = None
        line = _clean(raw)
        if not line:
            continue
        if pending is not None and _is_item(raw):
            if len(words(line)) <= SHORT_ITEM:
                pending[1].append(line.rstrip(".;,。"))
            else:   # a long item under a lead-in: one claim of its own, the lead-in in front
                pending[2] = True
                out.extend(f"{pending[0]}: {s}" if i == 0 else s for i, s in enumerate(_sentences(line)))
            continue
        if pending is not None:
            out.extend(_join(pending))
            pending = None
        if len(words(line)) <= SHORT_HEAD and (line.endswith(":") or line[-1:] not in ".!?。！？"):
            pending = [line.rstrip(":").rstrip(), [], False]
            continue
        out.extend(_sentences(line))
    if pending is not None:
        out.extend(_join(pending))
    return tuple(c for c in out + lines_of_code if re.search(rf"[^\W\d_]{{2}}|[{_CJK}]", c))


def _join(pending):
    head, items, took_long = pending
    if items:
        return [f"{head}: {', '.join(items)}."]
    return [] if took_long else [head]


def words(text):
    """Lower-case words of `text`, with "n't" written out as "not"."""
    text = _THOUSANDS.sub("", text.lower().replace("’", "'"))
    found = _WORD.findall(text)
    if "'" not in text and "cannot" not in text:  # most texts: nothing to write out
        return found
    out = []
    for w in found:
        if w.endswith("n't"):
            base = w[:-3]
            out += [_NT.get(base, base), "not"]
        elif w == "cannot":
            out += ["can", "not"]
        elif "'" in w:
            out.append(w.split("'")[0])
        else:
            out.append(w)
    return out


@lru_cache(maxsize=200_000)
def stem(w):
    """A crude stem: enough that "grinds", "grinding" and "grind", or "bake", "baked" and "baking" meet."""
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    else:
        for suffix in ("ing", "edly", "ed", "ly", "s"):
            if w.endswith(suffix) and len(w) - len(suffix) >= 3 and not w.endswith("ss"):
                w = w[:-len(suffix)]
                break
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    return w[:7]


def content(ws):
    """The content words of a word list, stemmed (see the module docstring)."""
    return [stem(w) for w in ws if w not in STOP or w in _NEGATION]


def stems(text):
    """The content words of `text`, stemmed."""
    return content(words(text))


def bigrams(ws):
    """The adjacent pairs of a word list (a one-word list gives one pair with "")."""
    return set(zip(ws, ws[1:])) if len(ws) > 1 else {(w, "") for w in ws}


class Source:
    """The claims of one side of a record (say question + original + evidence), indexed for window():
    .claims, and for each claim its .words and set of .stems; .idf of each stem, .all_stems,
    .bigrams of all claims."""

    def __init__(self, texts=(), claim_list=None, code=False):
        self.claims = (list(claim_list) if claim_list is not None
                       else [c for t in texts if t for c in claims(t, code=code)])
        self.words = [words(c) for c in self.claims]
        self.stems = [set(content(ws)) for ws in self.words]
        self.index = defaultdict(list)
        for i, ss in enumerate(self.stems):
            for st in ss:
                self.index[st].append(i)
        n = len(self.claims) or 1
        self.idf = {st: math.log(1 + n / len(at)) for st, at in self.index.items()}
        self.all_stems = set(self.index)
        self.bigrams = set().union(*map(bigrams, self.words)) if self.claims else set()

    def window(self, claim_stems, k=3):
        """Indexes of the k claims sharing the most (idf-weighted) stems with `claim_stems`, in order."""
        score = defaultdict(float)
        for st in claim_stems:
            for i in self.index.get(st, ()):
                score[i] += self.idf[st]
        if not score:
            return list(range(min(k, len(self.claims))))
        return sorted(heapq.nlargest(k, score, key=lambda i: (score[i], i)))

    def premise(self, claim_stems, k=3):
        return " ".join(self.claims[i] for i in self.window(claim_stems, k))

    def covered(self, claim_stems, k=3):
        """Share of `claim_stems` found in the claim's window."""
        if not claim_stems:
            return 1.0
        have = set().union(*(self.stems[i] for i in self.window(claim_stems, k))) if self.claims else set()
        return len(claim_stems & have) / len(claim_stems)
