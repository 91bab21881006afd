"""Benchmark: the faithfulness checker (realign.faithful) — quality by flaw kind, and speed.

    python bench/faithful_quality.py [--rules open_platypus] [--sets own,dev,faithful] [--speed]

Sets (each prints rejected / records by kind, with the checker alone and with the whole preset):
- own:      our held-out perturbation set: realign.faithful.pairs.heldout_records(), made from the
            source items that training never sees (one in five, by id): each item's faithful
            rewrite and one rewrite per flaw kind (added_claim, contradiction, lost_fact,
            changed_conclusion, restates_request). Precision and recall of "unfaithful" by kind.
- dev, test: bench/data/semantic_eval_dev.jsonl / semantic_eval_test.jsonl, written by a separate
            writer (thresholds are tuned on dev only; test is measured once).
- extra:    bench/data/semantic_eval_extra.jsonl, a second dev set of contradictions and lost facts
            (same shape; written before the rules it checks, see bench/README.md).
- faithful: bench/data/filter_faithful.jsonl, faithful restructurings: every rejection is false.
--speed: load time, pairs/s and records/s of the checker, and records/s of the whole preset through
`select`, on the records of the sets read (repeated to at least 300 records).
Tasks come from the record's "category" when it has one, else the embedded classifier.
"""

import argparse
import json
import os
import sys
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from filter_quality import as_joined, classify, load_rules, read_jsonl  # noqa: E402

from realign.faithful import Checker  # noqa: E402
from realign.faithful import checker as checker_module  # noqa: E402
from realign.faithful.pairs import heldout_records, parse_sources  # noqa: E402
from realign.lengths import approx_tokens  # noqa: E402
from realign.selection import select  # noqa: E402

DATA = os.path.join(ROOT, "bench", "data")


def semantic_set(path):
    """Records of a semantic eval file: {"question","original","rewrite","kind"} (kind "faithful"
    for a faithful rewrite). A line holds a faithful and an unfaithful rewrite ("faithful",
    "unfaithful", "flaw"), or one rewrite ("rewrite" + "kind"/"flaw")."""
    out = []
    for row in read_jsonl(path):
        base = {k: row[k] for k in ("question", "original") if k in row}
        base.update({k: row[k] for k in ("evidence", "category") if row.get(k)})
        if "unfaithful" in row:   # the eval-semantic writer's shape
            out.append({**base, "rewrite": row["faithful"], "kind": "faithful"})
            out.append({**base, "rewrite": row["unfaithful"], "kind": row.get("flaw") or "unfaithful"})
        elif "rewrite" in row:
            kind = row.get("flaw") or row.get("kind") or ("faithful" if row.get("faithful") else "unfaithful")
            out.append({**base, "rewrite": row["rewrite"], "kind": kind or "faithful"})
        else:
            out.append({**base, "rewrite": row["faithful_rewrite"], "kind": "faithful"})
            out.append({**base, "rewrite": row["unfaithful_rewrite"], "kind": row.get("flaw") or row.get("kind")})
    return out


def load_set(name):
    if name == "own":
        return heldout_records(parse_sources())
    if name in ("dev", "test", "extra"):
        path = os.path.join(DATA, f"semantic_eval_{name}.jsonl")
        return semantic_set(path) if os.path.exists(path) else None
    if name == "faithful":
        return [{**it, "kind": "faithful"} for it in read_jsonl(os.path.join(DATA, "filter_faithful.jsonl"))]
    raise SystemExit(f"unknown set {name}")


def table(name, records, flagged_checker, flagged_rules):
    """Rejected / records by kind; for a flaw kind also its precision: of the records rejected,
    the share that hold the flaw, counting the faithful ones rejected at the faithful rate for as
    many faithful records as the kind has (the kinds have different sizes)."""
    kinds = Counter(r["kind"] for r in records)
    good = [i for i, r in enumerate(records) if r["kind"] == "faithful"]
    print(f"\n{name}: rejected / records by kind (checker alone | whole preset); precision of a kind: against "
          f"as many faithful records")
    for kind in sorted(kinds, key=lambda k: (k != "faithful", k)):
        idx = [i for i, r in enumerate(records) if r["kind"] == kind]
        cols = []
        for flags in (flagged_checker, flagged_rules):
            got = sum(flags[i] for i in idx)
            col = f"{got:>3} / {len(idx):<3} {100 * got / len(idx):5.1f}%"
            if kind != "faithful" and good:
                false = sum(flags[i] for i in good) / len(good) * len(idx)
                col += f"  P {100 * got / (got + false) if got + false else float('nan'):5.1f}%"
            cols.append(col)
        print(f"  {kind:<22} {cols[0]:<28}|  {cols[1]}")
    bad = [i for i, r in enumerate(records) if r["kind"] != "faithful"]
    good = [i for i, r in enumerate(records) if r["kind"] == "faithful"]
    for label, flags in (("checker", flagged_checker), ("preset", flagged_rules)):
        tp = sum(flags[i] for i in bad)
        fp = sum(flags[i] for i in good)
        prec = tp / (tp + fp) if tp + fp else float("nan")
        rec = tp / len(bad) if bad else float("nan")
        kept = 1 - fp / len(good) if good else float("nan")
        print(f"  {label:<8} precision {100 * prec:5.1f}%  recall {100 * rec:5.1f}%  faithful kept {100 * kept:5.1f}%")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rules", default="open_platypus", help="preset of rewrite_data_selection.py (default: the CLI's)")
    ap.add_argument("--sets", default="own,dev,faithful", help="comma-separated: own, dev, extra, test, faithful")
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--show", action="store_true", help="print each flagged or missed record of the sets (not test)")
    ap.add_argument("--threshold", action="append", default=[], metavar="NAME=VALUE",
                    help="override one of model/meta.json's thresholds (e.g. 'added cosine=0.5'), to try one")
    args = ap.parse_args()

    t = time.perf_counter()
    thresholds = {k: float(v) for k, v in (x.split("=", 1) for x in args.threshold)}
    checker = Checker(thresholds=thresholds)
    load_s = time.perf_counter() - t
    checker_module._SHARED["checker"] = checker   # the preset's meaning_kept uses this one
    rules = load_rules()[args.rules]
    everything = []
    for name in args.sets.split(","):
        records = load_set(name)
        if records is None:
            print(f"\n{name}: file not there yet, skipped")
            continue
        tasks = [r.get("category") for r in records]
        if not all(tasks):
            tasks = classify(records)
        verdicts = checker.score_many([(r["question"], r["original"], r["rewrite"], tuple(r.get("evidence") or ()))
                                       for r in records])
        _, _, decisions = select(as_joined(records, tasks), rules, approx_tokens)
        by_id = {d["id"]: d for d in decisions}
        flagged_rules = [bool(by_id.get(i)) and not by_id[i]["accepted"] for i in range(len(records))]
        table(name, records, [v.flagged for v in verdicts], flagged_rules)
        if args.show and name != "test":
            for r, v, d in zip(records, verdicts, [by_id.get(i) for i in range(len(records))]):
                wrong = v.flagged == (r["kind"] == "faithful")
                if wrong:
                    print(f"--- {r.get('id', '')} [{r['kind']}] {'FALSE REJECTION' if v.flagged else 'MISSED'} "
                          f"{v.kind} {v.direction} {v.score} {v.detail} {v.sentence!r}; "
                          f"preset: {d and d['rule']}")
                    print("Q:", r["question"][:200].replace("\n", " "))
                    print("ORIGINAL:", r["original"][:500])
                    print("REWRITE:", r["rewrite"][:700])
        everything += [(r, task) for r, task in zip(records, tasks)]

    if args.speed and everything:
        print(f"\nspeed (checker load {load_s:.2f} s)")
        recs = everything * max(1, -(-300 // len(everything)))
        rows = [(r["question"], r["original"], r["rewrite"], tuple(r.get("evidence") or ())) for r, _ in recs]
        t = time.perf_counter()
        verdicts = checker.score_many(rows)
        s = time.perf_counter() - t
        pairs = sum(v.pairs for v in verdicts)
        print(f"  checker.score_many: {len(rows)} records in {s:.2f} s = {len(rows) / s:.0f} records/s; "
              f"{pairs} model pairs ({pairs / len(rows):.1f} a record) = {pairs / s:.0f} pairs/s")
        joined = as_joined([r for r, _ in recs], [task for _, task in recs])
        t = time.perf_counter()
        select(joined, rules, approx_tokens)
        s = time.perf_counter() - t
        print(f"  whole --rules {args.rules} through select: {len(joined)} records in {s:.2f} s = "
              f"{len(joined) / s:.0f} records/s")
        reference = [r for r in rules if r.__name__ != "meaning_kept"]
        t = time.perf_counter()
        select(joined, reference, approx_tokens)
        s = time.perf_counter() - t
        print(f"  reference, the preset without meaning_kept: {len(joined) / s:.0f} records/s")


if __name__ == "__main__":
    main()
