"""Apply filter rules to rewritten records: keep a rewrite only when every rule lets it pass.

The rules themselves live in rewrite_data_selection.py as plain functions users edit. A rule
takes a `Pair` and returns None (no objection), a reason string (reject: keep the original),
`reject(reason, marks)` (a reason plus the words of the rewrite it is about, which the report
highlights), or ACCEPT (accept now, skip the remaining rules).

Most rules look at one record. What needs the whole run is computed before any rule runs and
handed to each record's Pair: `p.twins` are the ids of the other records whose rewrite is the
same text (once normalised) while their original is not.

The text checks the rules use (refusals, our prompt echoed, code, numbers, endings cut off)
live in realign.textchecks, shared with reformat's reply reader; new facts are found by
realign.facts.
"""

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Callable

from realign.constant import DEFAULT_TASK
from realign.errors import DataError, first_n
from realign.merge import CHANGED
from realign.records import category, input_hash, question
from realign.textchecks import normalized

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


def join_by_id(originals, rewrites, original_path, rewrite_path, changed_input="refuse"):
    """Pair each rewritten record with its original; ids must match one to one.

    A rewritten record that carries an input hash (parallel_data_merge.py writes one) must have
    been made from the original as it is now (records.input_hash): otherwise its answer is
    of an older input, e.g. an original corrected by hand since. `changed_input`: "refuse"
    (DataError naming them) or "keep_original" (the original is paired with itself, reason
    merge.CHANGED, so it ships unchanged)."""
    by_id = {rec["id"]: rec for rec in originals}
    unknown = [rec["id"] for rec in rewrites if rec["id"] not in by_id]
    if unknown:
        raise DataError(f"{rewrite_path}: {len(unknown)} ids are not in {original_path} ({first_n(unknown)})")
    seen = {rec["id"] for rec in rewrites}
    lost = [rid for rid in by_id if rid not in seen]
    if lost:
        raise DataError(f"{rewrite_path}: {len(lost)} ids of {original_path} are missing ({first_n(lost)})")
    changed = [rec["id"] for rec in rewrites if question(rec) != question(by_id[rec["id"]])]
    if changed and changed_input == "refuse":
        raise DataError(f"{rewrite_path}: {len(changed)} ids have a different question than in {original_path} "
                        f"({first_n(changed)}); files of two different datasets?")
    stale = set(changed) | {rec["id"] for rec in rewrites if rec["items"][1].get("input_hash") not in
                            (None, input_hash(by_id[rec["id"]]))}
    if stale and changed_input == "refuse":
        ids = [rec["id"] for rec in rewrites if rec["id"] in stale]
        raise DataError(f"{rewrite_path}: {len(ids)} records changed in {original_path} since reformat.py worked on "
                        f"them ({first_n(ids)}): their question, answer, system prompt, category or evidence is not "
                        f"what their answer here was made from; rerun reformat.py and parallel_data_merge.py on "
                        f"{original_path} (they redo only those), or pass --changed_input keep_original to keep "
                        f"their originals")
    return [(by_id[rec["id"]], _unchanged(by_id[rec["id"]]) if rec["id"] in stale else rec) for rec in rewrites]


def _unchanged(original):
    """`original` as its own rewrite, saying why (a record whose input changed since reformat)."""
    items = original["items"]
    return {**original, "items": [items[0], {**items[1], "kept_original": CHANGED}, *items[2:]]}


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
