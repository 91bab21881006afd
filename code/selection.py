"""Apply filter rules to rewritten records: keep a rewrite only when every rule lets it pass.

The rules themselves live in rewrite_data_selection.py as plain functions users edit. A rule
takes a `Pair` and returns None (no objection), a reason string (reject: keep the original),
or ACCEPT (accept now, skip the remaining rules).
"""

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Callable

from realign.constant import DEFAULT_TASK
from realign.errors import DataError, first_n
from realign.records import category, question

ACCEPT = "accept"


@dataclass
class Pair:
    """One record as the rules see it."""
    id: object
    question: str
    original: str
    rewrite: str
    category: str
    length: Callable[[str], int]


# ---------------------------------------------------------------- helpers for rules

_FENCE = re.compile(r"```")
_DEF_RETURN = re.compile(r"\bdef\s+\w+\s*\(.*?\breturn\b", re.S)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")
_FINAL_MARK = re.compile(r"(?:final answer|the answer is|answer\s*:|####|\\boxed\{)", re.I)


def has_code(text):
    """A fenced block, or a Python function with a return."""
    return bool(_FENCE.search(text) or _DEF_RETURN.search(text))


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


# ---------------------------------------------------------------- applying rules

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


def select(joined, rules, length):
    """Apply rules to every record; returns (output_records, stats, decisions)."""
    out = []
    stats = {"total": 0, "rewritten": 0, "accepted": 0, "rejected": 0, "not_rewritten": 0,
             "rejected_by_rule": Counter(), "per_category": defaultdict(Counter)}
    decisions = []
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
        pair = Pair(new["id"], new["items"][0]["value"], original, rewrite, cat, length)
        accepted, rule, reason = judge(pair, rules)
        decisions.append({"id": new["id"], "category": cat, "accepted": accepted, "rule": rule, "reason": reason})
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
