"""Apply filter rules to rewritten records: keep a rewrite only when every rule lets it pass.

The rules themselves live in rewrite_data_selection.py as plain functions users edit. A rule
takes a `Pair` and returns None (no objection), a reason string (reject: keep the original),
`reject(reason, marks)` (a reason plus the words of the rewrite it is about, which the report
highlights), or ACCEPT (accept now, skip the remaining rules). A rule marked @batched (one that
runs a model) gets the list of Pairs still undecided at its turn and returns their verdicts.

Most rules look at one record. What needs the whole run is computed before any rule runs and
handed to each record's Pair: `p.twins` are the ids of the other records whose rewrite is the
same text (once normalised) while their original is not.

The text checks the rules use (refusals, our prompt echoed, code, numbers, endings cut off)
live in realign.textchecks, shared with reformat's reply reader; new facts are found by
realign.facts.
"""

import gc
import hashlib
import multiprocessing
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Callable

from realign.bars import progress_bar
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
    """A rejection reason that also names the words of the rewrite (marks) and of the original
    (original_marks) it is about."""
    marks = ()
    original_marks = ()


def reject(reason, marks=(), original_marks=()):
    """A reason string carrying `marks`: the report highlights them in the rewrite, and
    `original_marks` in the original (a fact the rewrite lost)."""
    out = Reason(reason)
    out.marks = tuple(m for m in marks if m)
    out.original_marks = tuple(m for m in original_marks if m)
    return out


def kept_reason(merged_record):
    """Why a merged record holds its original answer, as parallel_data_merge.py wrote it in
    `items[1]["kept_original"]` ("failed: …", "format does not fit", "task not rewritten", …);
    IDENTICAL when reformat's rewrite is the original word for word; None when the merged file
    records no reason (written by a merge before kept_original was carried)."""
    gpt = merged_record["items"][1]
    why = gpt.get("kept_original")
    if isinstance(why, str) and why:
        return why
    if "input_hash" in gpt:  # a merge that writes every kept record's reason: this one was rewritten
        return IDENTICAL
    return None


IDENTICAL = "the rewrite is the original word for word"
NO_REASON = "no reason recorded"


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
        what = defaultdict(list)
        for rec in rewrites:
            if rec["id"] in stale:
                what[_what_changed(by_id[rec["id"]], rec)].append(rec["id"])
        said = "; ".join(f"{field}: {first_n(rids, 5)}" for field, rids in what.items())
        raise DataError(f"{rewrite_path}: {len(ids)} records changed in {original_path} since reformat.py worked on "
                        f"them ({said}): their answer here was made from an older input; rerun reformat.py and "
                        f"parallel_data_merge.py on {original_path} (they redo only those), or pass --changed_input "
                        f"keep_original to keep their originals")
    return [(by_id[rec["id"]], _unchanged(by_id[rec["id"]]) if rec["id"] in stale else rec) for rec in rewrites]


def _what_changed(original, merged):
    """Which of the input fields differ between an original and its merged record: the merged
    record holds the question, system prompt, category and evidence the rewrite was made from,
    so when none of those differs, the answer did."""
    a, b = original["items"][0], merged["items"][0]
    fields = [name for name, x, y in (("question", a["value"], b["value"]),
                                      ("system prompt", original.get("system"), merged.get("system")),
                                      ("category", a.get("category"), b.get("category")),
                                      ("evidence", a.get("evidence") or None, b.get("evidence") or None)) if x != y]
    return " and ".join(fields) or "answer"


def _unchanged(original):
    """`original` as its own rewrite, saying why (a record whose input changed since reformat)."""
    items = original["items"]
    return {**original, "items": [items[0], {**items[1], "kept_original": CHANGED}, *items[2:]]}


def batched(rule):
    """Mark `rule` as one that judges many records at once: it is called with the list of the
    Pairs still undecided when their turn comes (every rule before it has let them pass) and
    returns one verdict per Pair, in order. For rules that run a model, which is far faster over
    a batch than record by record. Call it on one Pair as rule([p])[0]. With several worker
    processes each calls it on its share of the records."""
    rule.batched = True
    return rule


def whole_run(rule):
    """Mark a batched rule that must see every undecided record of the run in one call, in the
    main process (the LLM judge: one pool of requests, one journal). It and the rules after it
    run once the worker processes are done."""
    rule.batched = rule.whole_run = True
    return rule


def run_rules(pairs, indices, rules):
    """({index: (accepted, rule name, reason)} decided, [indices still undecided]): the rules in
    order over pairs[i] for i in `indices`, each over those no earlier rule decided (a batched
    rule over all of them at once). The first rule to object rejects; ACCEPT accepts at once."""
    decided, pending = {}, list(indices)
    for rule in rules:
        if not pending:
            break
        if getattr(rule, "batched", False):
            verdicts = rule([pairs[i] for i in pending])
            if len(verdicts) != len(pending):
                raise ValueError(f"batched rule {rule.__name__} returned {len(verdicts)} verdicts "
                                 f"for {len(pending)} records")
        else:
            verdicts = [rule(pairs[i]) for i in pending]
        still = []
        for i, verdict in zip(pending, verdicts):
            if verdict == ACCEPT:
                decided[i] = (True, rule.__name__, None)
            elif verdict:
                decided[i] = (False, rule.__name__, verdict)
            else:
                still.append(i)
        pending = still
    return decided, pending


CHUNK = 2000  # records a worker process takes at a time
_JOB = None   # (pairs, rules) of the run, inherited by forked workers


def _work(span):
    """In a worker: run_rules over pairs[lo:hi], reasons as plain tuples (picklable)."""
    pairs, rules = _JOB
    decided, pending = run_rules(pairs, range(*span), rules)
    return ({i: (ok, rule, None if why is None else (str(why), getattr(why, "marks", ()),
                                                       getattr(why, "original_marks", ())))
             for i, (ok, rule, why) in decided.items()}, pending)


def _pin(queue):
    """Worker start: run on one CPU of the parent's (so a model inside uses one thread)."""
    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {queue.get()})
        except (OSError, ValueError):
            pass


def _in_processes(pairs, rules, workers, chunk, progress):
    """run_rules over all pairs, spread over `workers` forked processes, `chunk` records at a time."""
    global _JOB
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(workers))
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    for k in range(workers):
        queue.put(cpus[k % len(cpus)])
    spans = [(lo, min(lo + chunk, len(pairs))) for lo in range(0, len(pairs), chunk)]
    decided, pending = {}, []
    _JOB = (pairs, rules)
    gc.freeze()  # the pairs stay shared with the workers: no collector pass copies their pages
    try:
        with ctx.Pool(workers, initializer=_pin, initargs=(queue,)) as pool:
            for done, left in pool.imap(_work, spans):
                for i, (ok, rule, why) in done.items():
                    decided[i] = (ok, rule, None if why is None else reject(*why))
                pending.extend(left)
                if progress is not None:
                    progress.update(len(done) + len(left))
    finally:
        _JOB = None
        gc.unfreeze()
    return decided, pending


def apply_rules(pairs, rules, workers=1, chunk=CHUNK, progress=None):
    """{index into pairs: (accepted, rule name or None, reason or None)} for every pair. The rules
    before the first whole_run rule run in `workers` processes (one when there are no more
    records than `chunk`), at most `chunk` records at a time; a pair no rule objects to is
    accepted."""
    split = next((k for k, r in enumerate(rules) if getattr(r, "whole_run", False)), len(rules))
    local, rest = rules[:split], rules[split:]
    if workers > 1 and len(pairs) > chunk and "fork" in multiprocessing.get_all_start_methods():
        share = -(-len(pairs) // (4 * workers))  # four chunks a worker at least, so that none idles long
        decided, pending = _in_processes(pairs, local, workers, max(min(chunk, share), 250), progress)
    else:
        decided, pending = run_rules(pairs, range(len(pairs)), local)
        if progress is not None:
            progress.update(len(pairs))
    more, pending = run_rules(pairs, sorted(pending), rest)
    decided.update(more)
    decided.update((i, (True, None, None)) for i in pending)
    return decided


def _evidence(orig, new):
    passages = new["items"][0].get("evidence") or orig["items"][0].get("evidence") or ()
    return tuple(p for p in passages if isinstance(p, str))


def make_pairs(joined, length, twins=None):
    """The Pair of every rewritten record of `joined`, with its index there."""
    twins = twins or {}
    out = []
    for at, (orig, new) in enumerate(joined):
        original, rewrite = orig["items"][1]["value"], new["items"][1]["value"]
        if rewrite == original:
            continue
        same = twins.get(new["id"], ())
        cat = category(new) or category(orig) or DEFAULT_TASK
        out.append((at, Pair(new["id"], new["items"][0]["value"], original, rewrite, cat, length,
                             evidence=_evidence(orig, new), twins=tuple(same[:MAX_TWINS]), n_twins=len(same))))
    return out


def select(joined, rules, length, workers=1, progress=False):
    """Apply rules to every record; returns (output_records, stats, decisions).

    stats: total; rewritten (rewrites the rules judged: the merged answer differs from the
    original), accepted, rejected; not_rewritten (records that kept their answer before any
    rule: `kept` counts them by kept_reason, IDENTICAL among them, so that merge's "rewritten"
    is accepted + rejected + kept[IDENTICAL]); rejected_by_rule; per_category."""
    indexed = make_pairs(joined, length, find_twins(joined) if rules else {})
    with progress_bar(len(indexed), "rewrite", desc="rules", enabled=progress) as bar:
        verdicts = apply_rules([pair for _, pair in indexed], rules, workers=workers, progress=bar)
    by_index = {at: verdicts[k] for k, (at, _) in enumerate(indexed)}
    out = []
    stats = {"total": 0, "rewritten": 0, "accepted": 0, "rejected": 0, "not_rewritten": 0, "kept": Counter(),
             "rejected_by_rule": Counter(), "per_category": defaultdict(Counter)}
    decisions = []
    for at, (orig, new) in enumerate(joined):
        stats["total"] += 1
        cat = category(new) or category(orig) or DEFAULT_TASK
        per_cat = stats["per_category"][cat]
        per_cat["total"] += 1
        if at not in by_index:
            stats["not_rewritten"] += 1
            stats["kept"][kept_reason(new) or NO_REASON] += 1
            per_cat["not_rewritten"] += 1
            out.append({**orig, "tag": "original"})
            continue
        stats["rewritten"] += 1
        accepted, rule, reason = by_index[at]
        decision = {"id": new["id"], "category": cat, "accepted": accepted, "rule": rule,
                    "reason": None if reason is None else str(reason)}
        if getattr(reason, "marks", ()):
            decision["marks"] = list(reason.marks)
        if getattr(reason, "original_marks", ()):
            decision["original_marks"] = list(reason.original_marks)
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


def kept_line(stats):
    """The not-rewritten records by reason, in words: '3 not rewritten (2 failed: …, 1 identical …)'."""
    kept = stats["kept"]
    if not kept:
        return f"{stats['not_rewritten']} not rewritten"
    failed = sum(n for why, n in kept.items() if why.startswith("failed"))
    parts = ([f"{failed} failed in reformat"] if failed else []) + [
        f"{n} {why}" for why, n in kept.most_common() if not why.startswith("failed")]
    return f"{stats['not_rewritten']} not rewritten ({', '.join(parts)})"


def stats_as_json(stats):
    return {**{k: v for k, v in stats.items() if not isinstance(v, (Counter, defaultdict))},
            "kept": dict(stats["kept"].most_common()),
            "rejected_by_rule": dict(stats["rejected_by_rule"].most_common()),
            "per_category": {c: dict(n) for c, n in sorted(stats["per_category"].items())}}
