"""Apply filter rules to rewritten records: keep a rewrite only when every rule lets it pass.

The rules themselves live in rewrite_data_selection.py as plain functions users edit. A rule
takes a `Pair` and returns None (no objection), a reason string (reject: keep the original),
`reject(reason, marks)` (a reason plus the words of the rewrite it is about, which the report
highlights), or ACCEPT (accept now, skip the remaining rules).

Most rules look at one record. What needs the whole run is computed before any rule runs and
handed to each record's Pair: `p.twins` are the ids of the other records whose rewrite is the
same text (once normalised) while their original is not.

Below the machinery are the text helpers the rules use: code, final numbers, refusals, our own
prompt's wording, and endings cut mid-sentence. New facts are found by realign.facts.
"""

import hashlib
import inspect
import re
import string
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from realign.constant import DEFAULT_TASK, TASK_DESCRIPTIONS, TASK_FORMATS
from realign.errors import DataError, first_n
from realign.records import category, question

ACCEPT = "accept"
MAX_TWINS = 5  # ids of identical rewrites a Pair carries (the count is exact)


@dataclass
class Pair:
    """One record as the rules see it."""
    id: object
    question: str
    original: str
    rewrite: str
    category: str
    length: Callable[[str], int]
    evidence: tuple = ()   # the retrieved passages the rewriter saw, if any
    twins: tuple = ()      # up to MAX_TWINS ids of other records with this rewrite and another original
    n_twins: int = 0       # how many such records there are


class Reason(str):
    """A rejection reason that also names the words of the rewrite it is about."""
    marks = ()


def reject(reason, marks=()):
    """A reason string carrying `marks`: the report highlights them in the rewrite."""
    out = Reason(reason)
    out.marks = tuple(marks)
    return out


# ---------------------------------------------------------------- helpers for rules

_FENCE = re.compile(r"```")
_WHOLE_FENCE = re.compile(r"\A\s*```[ \t]*([\w+-]*)[^\n]*\n(.*?)\n?[ \t]*```\s*\Z", re.S)
_PROSE_TAGS = ("", "text", "txt", "plain", "plaintext", "markdown", "md")
_DEF_RETURN = re.compile(r"\bdef\s+\w+\s*\(.*?\breturn\b", re.S)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")
_FINAL_MARK = re.compile(r"(?:final answer|the answer is|answer\s*:|####|\\boxed\{)", re.I)


def has_code(text):
    """A fenced block, or a Python function with a return."""
    return bool(_FENCE.search(text) or _DEF_RETURN.search(text))


_FENCED_BLOCK = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.S | re.M)
_CODE_TOKEN = re.compile(r"\w+|[^\w\s]")
_COMMENT = re.compile(r"(?:^|(?<=\s))(?:#|//|--)[^\n]*|/\*.*?\*/|<!--.*?-->", re.S)


def code_blocks(text):
    """The contents of the ``` blocks of `text`."""
    return _FENCED_BLOCK.findall(text)


def code_from(text, source, share=0.75):
    """Is every ``` block of `text` made (share of its tokens, at least; comments left out) of
    tokens that `source` has? Then the rewrite fenced code the original already gave inline or
    unfenced: moved, not added."""
    blocks = code_blocks(text) or ([text] if has_code(text) else [])
    if not blocks:
        return False
    have = set(_CODE_TOKEN.findall(source))
    for block in blocks:
        tokens = _CODE_TOKEN.findall(_COMMENT.sub("", block))
        if tokens and sum(t in have for t in tokens) < share * len(tokens):
            return False
    return True


def unwrap_prose_fence(text):
    """The inside of a reply wrapped whole in one ``` fence (untagged, or tagged text/markdown)
    when what is inside is not code; otherwise `text` unchanged. Some rewriters fence their
    whole answer; that wrapping is not code."""
    m = _WHOLE_FENCE.match(text)
    if m and "```" not in m.group(2) and m.group(1).lower() in _PROSE_TAGS and not has_code(m.group(2)):
        return m.group(2)
    return text


def _to_number(token):
    token = token.replace(",", "")
    try:
        if "/" in token:
            num, den = token.split("/")
            return float(num) / float(den)
        return float(token)
    except (ValueError, ZeroDivisionError):
        return None


def final_number(text):
    """The final numeric answer of a solution: the first number after the last answer marker
    ('Final answer', 'The answer is', 'Answer:', '####', '\\boxed{'), else the last number."""
    marks = list(_FINAL_MARK.finditer(text))
    if marks:
        m = _NUMBER.search(text, marks[-1].end())
        if m:
            return _to_number(m.group())
    numbers = _NUMBER.findall(text)
    return _to_number(numbers[-1]) if numbers else None


def answer_numbers(text):
    """The numbers where a solution states its answer: after the last answer marker to the end
    of that line, on the closing line, and final_number(text)."""
    out = []
    marks = list(_FINAL_MARK.finditer(text))
    if marks:
        end = text.find("\n", marks[-1].end())
        line = text[marks[-1].end(): end if end >= 0 else len(text)]
        out = [v for v in map(_to_number, _NUMBER.findall(line)) if v is not None]
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if lines:  # the closing line, where a worked answer states its result
        out += [v for v in map(_to_number, _NUMBER.findall(lines[-1])) if v is not None]
    last = final_number(text)
    return out + ([last] if last is not None else [])


_REFUSAL = re.compile(r"""
      \bi(?:'m|’m|\s+am)\s+(?:very\s+|so\s+)?sorry,?\s+(?:but\s+)?(?:i|that|this)\b
    | \bi\s+(?:can(?:'|’)?t|cannot|can\s+not|am\s+(?:unable|not\s+able)\s+to|won(?:'|’)t\s+be\s+able\s+to|
            will\s+not\s+be\s+able\s+to|must\s+decline\s+to)\s+(?:help|assist|provide|fulfil+|comply|answer|
            complete|do\s+that|support|create|generate|write|share|give|respond|engage)
    | \bas\s+an?\s+(?:ai|artificial\s+intelligence|language\s+model|large\s+language\s+model)\b
    | \bi\s+(?:must|have\s+to)\s+(?:respectfully\s+)?(?:decline|refuse)
    | \bi\s+apologi[sz]e,?\s+(?:but|for\s+any\s+confusion)
    | \b(?:unfortunately|sorry),?\s+(?:but\s+)?i\s+(?:can(?:no|'|’)?t|cannot|am\s+unable|don(?:'|’)t\s+have)
    | \bi(?:'m|’m|\s+am)\s+afraid\s+(?:that\s+)?i\s+(?:can(?:no|'|’)?t|cannot|am\s+unable|won(?:'|’)t)
    | \bi\s+(?:do\s+not|don(?:'|’)t)\s+(?:feel\s+comfortable|have\s+(?:access|the\s+ability))
    | \bi(?:'m|’m|\s+am)\s+not\s+(?:allowed|permitted|comfortable)\b
    | \bit\s+(?:is|would\s+be)\s+(?:not\s+appropriate|inappropriate)\s+for\s+me\b
    """, re.I | re.X)


_REFUSAL_HINTS = ("sorry", "can't", "can’t", "cannot", "can not", "unable", "not able", "won't", "won’t",
                  "will not", "decline", "refuse", "apologi", "as a", "as an", "afraid", "comfortable",
                  "have access", "the ability", "allowed", "permitted", "appropriate")


def refusal_phrase(text):
    """The first phrase of `text` that declines or apologises ("I'm sorry, but I", "I cannot
    help", "As an AI"), or None."""
    lower = text.lower()
    if not any(k in lower for k in _REFUSAL_HINTS):
        return None
    m = _REFUSAL.search(text)
    return " ".join(m.group().split()) if m else None


# Our prompt's wording: what a rewrite that echoes the prompt back contains.
ECHO_WORDS = 7  # a run of this many words of the prompt's fixed text is an echo (a heading taken
# from a layout line is shorter)
# n-grams are keyed on a first word that is not one of these (any echo long enough has one):
# it lets the check skip most positions of a text.
_COMMON = frozenset("""the a an and or of to in on for with by at as is are be it its this that these those
what which who how when where if then than not no do does your you their them they there such each every
one any all""".split())
_PLACEHOLDER = re.compile(r"\{[a-z_]*\}")
_WORDS = re.compile(r"\w+")


@dataclass(frozen=True)
class PromptWording:
    """Our rewrite prompt's wording, as prompt_echo looks for it."""
    grams: frozenset      # ECHO_WORDS-word runs of its fixed text (first word not in _COMMON)
    firsts: frozenset     # the first words of those runs
    phrases: tuple        # labels and names found anywhere: "[original answer]", "revised response:"
    line_labels: object   # regex: one-word labels where a line starts ("Reasoning:")
    fixed: str            # all its fixed text, lower case, words joined by spaces


@lru_cache(maxsize=1)
def prompt_wording():
    """Everything we put in a rewrite prompt: every text constant of realign.prompts (system
    prompt, template, added rules) and the task descriptions and layouts of constant.py, with
    the {placeholders} taken out."""
    from realign import prompts  # the rewrite prompt lives there; imported late, it imports us nowhere

    own = [v for k, v in vars(prompts).items()  # the rewrite prompt's texts, not the classifier's
           if k.isupper() and isinstance(v, str) and len(v) > 12 and "CLS" not in k and "CLASSIFIER" not in k]
    grams, labels, pieces = set(), set(), []
    for text in own + list(TASK_DESCRIPTIONS.values()) + list(TASK_FORMATS.values()):
        for piece in _PLACEHOLDER.split(text):
            words = _WORDS.findall(piece.lower())
            pieces.append(" ".join(words))
            grams.update(tuple(words[i:i + ECHO_WORDS]) for i in range(len(words) - ECHO_WORDS + 1)
                         if words[i] not in _COMMON)
    for text in own:
        # how the prompt names the answers: "original answer", "rewritten answer"
        labels.update(m.group().lower() for m in re.finditer(r"\b(?:original|rewritten|revised) (?:answer|response)\b",
                                                             text, re.I))
        # labels starting a line: "Revised response:", "Kind of request:", "Reasoning:"
        labels.update(m.group(1).lower() + ":" for m in re.finditer(r"^([A-Z][a-z]+(?: [a-z]+){0,3}):", text, re.M))
    # section labels such as "[Original answer]", also where the message builder adds them
    built = "\n".join(own) + inspect.getsource(prompts.build_rewrite_messages)
    labels.update(m.group().lower() for m in re.finditer(r"\[[A-Z][a-z]+(?: [a-z]+){0,2}\]", built))
    phrases = tuple(sorted((x for x in labels if " " in x or x.startswith("[")), key=lambda x: (-len(x), x)))
    single = sorted(x for x in labels if x not in phrases)
    line_labels = re.compile(r"^[ \t*#_>]*(" + "|".join(map(re.escape, single)) + ")", re.M) if single else None
    return PromptWording(frozenset(grams), frozenset(g[0] for g in grams), phrases, line_labels, "\n".join(pieces))


def prompt_echo_phrase(text, exclude=""):
    """The first piece of our prompt's wording found in `text` and not in `exclude` (the
    question and original: a dataset about prompts may quote them), or None."""
    w = prompt_wording()
    lower, excluded = text.lower(), exclude.lower()
    for phrase in w.phrases:
        if phrase in lower and phrase not in excluded:
            return phrase
    m = w.line_labels.search(lower) if w.line_labels else None
    if m and m.group(1) not in excluded:
        return m.group(1)  # a one-word label ("Reasoning:") where a line starts
    words = _WORDS.findall(lower)
    if 3 <= len(words) < ECHO_WORDS and " ".join(words) in w.fixed and " ".join(words) not in excluded:
        return " ".join(words)  # a short reply made only of prompt words
    hits = [i for i in range(len(words) - ECHO_WORDS + 1)
            if words[i] in w.firsts and tuple(words[i:i + ECHO_WORDS]) in w.grams]
    if hits:
        excluded_words = " ".join(_WORDS.findall(excluded))
        for i in hits:
            phrase = " ".join(words[i:i + ECHO_WORDS])
            if phrase not in excluded_words:
                return phrase
    return None


_FENCE_LINE = re.compile(r"^[ \t]*```", re.M)
_DANGLING = frozenset("""the a an and or but nor of that which whose who is are was were be been being its their
his her my your our this these those than because if when while such very from into onto across between
among including like also then whether""".split())


def open_code_block(text):
    """Does `text` end inside a ``` block (an odd number of fence lines)?"""
    return len(_FENCE_LINE.findall(text)) % 2 == 1


def ends_mid_sentence(text):
    """Does `text` stop where no sentence, list item or line can end: after a comma, colon or
    open bracket, on a word like 'the' or 'and', with bold or a bracket left open, or on a long
    line without a full stop right after a line that had one?"""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return False
    last = lines[-1]
    if last.startswith(("```", "|", "#")) or open_code_block(text):
        return False
    if last[-1] in ",:([{-–—/&" or last.count("**") % 2 == 1 or last.count("(") > last.count(")"):
        return True
    words = re.findall(r"[A-Za-z']+", last)
    if not last[-1].isalnum() or not words:
        return False
    if words[-1].lower() in _DANGLING:
        return True
    # a long line with no full stop after one that had it: the text was cut
    return len(last.split()) >= 8 and len(lines) > 1 and lines[-2][-1:] in ".!?"


_PUNCTUATION = str.maketrans({c: " " for c in string.punctuation + "“”‘’–—…"})


def normalized(text):
    """`text` compared loosely: case, punctuation, markdown and whitespace do not count."""
    return " ".join(text.translate(_PUNCTUATION).casefold().split())


def _digest(text):
    return hashlib.blake2b(normalized(text).encode("utf-8"), digest_size=16).digest()


def find_twins(joined):
    """{id: [ids of other records with the same normalised rewrite and another original]}, for the
    records that have any. Holds 16 bytes per rewritten record, not the texts; originals are
    normalised only where two rewrites are the same."""
    by_rewrite = defaultdict(list)  # rewrite digest -> indexes into joined
    for i, (orig, new) in enumerate(joined):
        rewrite = new["items"][1]["value"]
        if rewrite != orig["items"][1]["value"]:
            by_rewrite[_digest(rewrite)].append(i)
    twins = {}
    for members in by_rewrite.values():
        if len(members) < 2:
            continue
        by_original = defaultdict(list)
        for i in members:
            by_original[_digest(joined[i][0]["items"][1]["value"])].append(joined[i][1]["id"])
        for key, ids in by_original.items():
            others = [rid for other, same in by_original.items() if other != key for rid in same]
            for rid in ids:
                if others:
                    twins[rid] = others
    return twins


def join_by_id(originals, rewrites, original_path, rewrite_path):
    """Pair each rewritten record with its original; ids must match one to one."""
    by_id = {rec["id"]: rec for rec in originals}
    unknown = [rec["id"] for rec in rewrites if rec["id"] not in by_id]
    if unknown:
        raise DataError(f"{rewrite_path}: {len(unknown)} ids are not in {original_path} ({first_n(unknown)})")
    seen = {rec["id"] for rec in rewrites}
    lost = [rid for rid in by_id if rid not in seen]
    if lost:
        raise DataError(f"{rewrite_path}: {len(lost)} ids of {original_path} are missing ({first_n(lost)})")
    changed = [rec["id"] for rec in rewrites if question(rec) != question(by_id[rec["id"]])]
    if changed:
        raise DataError(f"{rewrite_path}: {len(changed)} ids have a different question than in {original_path} "
                        f"({first_n(changed)}); files of two different datasets?")
    return [(by_id[rec["id"]], rec) for rec in rewrites]


def judge(pair, rules):
    """(accepted, rule_name_or_None, reason_or_None) for one rewritten pair."""
    for rule in rules:
        verdict = rule(pair)
        if verdict == ACCEPT:
            return True, rule.__name__, None
        if verdict:
            return False, rule.__name__, verdict
    return True, None, None


def _evidence(orig, new):
    passages = new["items"][0].get("evidence") or orig["items"][0].get("evidence") or ()
    return tuple(p for p in passages if isinstance(p, str))


def select(joined, rules, length):
    """Apply rules to every record; returns (output_records, stats, decisions)."""
    out = []
    stats = {"total": 0, "rewritten": 0, "accepted": 0, "rejected": 0, "not_rewritten": 0,
             "rejected_by_rule": Counter(), "per_category": defaultdict(Counter)}
    decisions = []
    twins = find_twins(joined) if rules else {}
    for orig, new in joined:
        stats["total"] += 1
        cat = category(new) or category(orig) or DEFAULT_TASK
        per_cat = stats["per_category"][cat]
        per_cat["total"] += 1
        original, rewrite = orig["items"][1]["value"], new["items"][1]["value"]
        if rewrite == original:
            stats["not_rewritten"] += 1
            per_cat["not_rewritten"] += 1
            out.append({**orig, "tag": "original"})
            continue
        stats["rewritten"] += 1
        same = twins.get(new["id"], ())
        pair = Pair(new["id"], new["items"][0]["value"], original, rewrite, cat, length,
                    evidence=_evidence(orig, new), twins=tuple(same[:MAX_TWINS]), n_twins=len(same))
        accepted, rule, reason = judge(pair, rules)
        decision = {"id": new["id"], "category": cat, "accepted": accepted, "rule": rule,
                    "reason": None if reason is None else str(reason)}
        if getattr(reason, "marks", ()):
            decision["marks"] = list(reason.marks)
        decisions.append(decision)
        if accepted:
            stats["accepted"] += 1
            per_cat["accepted"] += 1
            out.append({**new, "tag": "rewrite"})
        else:
            stats["rejected"] += 1
            per_cat["rejected"] += 1
            stats["rejected_by_rule"][rule] += 1
            out.append({**orig, "tag": "original"})
    return out, stats, decisions


def stats_as_json(stats):
    return {**{k: v for k, v in stats.items() if not isinstance(v, (Counter, defaultdict))},
            "rejected_by_rule": dict(stats["rejected_by_rule"].most_common()),
            "per_category": {c: dict(n) for c, n in sorted(stats["per_category"].items())}}
