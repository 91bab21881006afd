"""Benchmark: how well the filter rules tell faithful rewrites from unfaithful ones.

    python bench/filter_quality.py [--rules alpaca] [--show tune]

Reads two hand-written sets (ours, written for this by someone other than the rules' author):

    bench/data/filter_faithful.jsonl    {"question", "original", "rewrite", "evidence"?, "kind"}
                                        restructurings that keep every fact (lists, headings,
                                        tables, code): every rejection is a false one
    bench/data/filter_unfaithful.jsonl  {"question", "original", "rewrite", "planted", ...}
                                        rewrites with a planted fault (new fact, refusal,
                                        prompt echo, truncation, ...): every acceptance is a miss

Each set is split by line: even lines (0, 2, …) were the only ones looked at while tuning the
rules ("tune"); odd lines were not ("report"), and are the honest numbers. Each line is judged
as one record of a run, through the same `select` the filter step uses, with the records of the
whole set as the run (so same_rewrite_many_records sees them all). Each question gets its task
from the embedded classifier, as classify.py would give it (math tasks let new_facts accept
arithmetic steps). The reference beside each
number is the same preset without the faithfulness rules of issue 12; --reference FILE takes the
preset of another rewrite_data_selection.py instead, e.g. the one before issue 12:

    git show main:rewrite_data_selection.py > /tmp/old_rules.py   # (a commit before the change)
    python bench/filter_quality.py --reference /tmp/old_rules.py

--show tune prints the tune split's false rejections and misses, to work on the rules; it
refuses to print the report split.
"""

import argparse
import importlib.util
import json
import os
from collections import Counter

from realign.lengths import approx_tokens
from realign.selection import select

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "bench", "data")
NEW_RULES = {"empty_original", "refusal_added", "prompt_echo", "same_rewrite_many_records", "truncated",
             "new_facts", "numbers_kept"}  # what issue 12 added; no_leftover_label and final_answer_kept were in some presets


def load_rules(path=os.path.join(ROOT, "rewrite_data_selection.py")):
    spec = importlib.util.spec_from_file_location("rules_" + str(abs(hash(path))), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.RULESETS


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def classify(items):
    """Each item's task, from the embedded classifier (what classify.py puts on a record)."""
    from realign.classifier.backends import classify_embedded

    labels = classify_embedded([it["question"] for it in items], progress=False)[0]
    return [it.get("category") or label for it, label in zip(items, labels)]


def as_joined(items, tasks):
    """[(original_record, rewritten_record)] for `select`, one per item, ids = line numbers."""
    joined = []
    for i, (it, task) in enumerate(zip(items, tasks)):
        human = {"from": "human", "value": it["question"], "category": task}
        if it.get("evidence"):
            human["evidence"] = list(it["evidence"])
        orig = {"id": i, "items": [human, {"from": "gpt", "value": it["original"]}]}
        joined.append((orig, {"id": i, "items": [human, {"from": "gpt", "value": it["rewrite"]}]}))
    return joined


def verdicts(items, tasks, rules):
    """{line: (rejected?, rule, reason)} for every item; an unchanged rewrite counts as accepted."""
    _, _, decisions = select(as_joined(items, tasks), rules, approx_tokens)
    out = {i: (False, None, None) for i in range(len(items))}
    for d in decisions:
        out[d["id"]] = (not d["accepted"], d["rule"], d["reason"])
    return out


def rate(n, total):
    return f"{100 * n / total:5.1f}%" if total else "    -"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rules", default="alpaca", help="preset of rewrite_data_selection.py (default: alpaca)")
    ap.add_argument("--faithful", default=os.path.join(DATA, "filter_faithful.jsonl"))
    ap.add_argument("--unfaithful", default=os.path.join(DATA, "filter_unfaithful.jsonl"))
    ap.add_argument("--reference", metavar="FILE",
                    help="a rewrite_data_selection.py whose preset is the reference (default: ours without "
                         "the faithfulness rules)")
    ap.add_argument("--show", choices=["tune"], help="print the tune split's false rejections and misses")
    args = ap.parse_args()

    rulesets = load_rules()
    rules = rulesets[args.rules]
    if args.reference:
        reference = load_rules(os.path.abspath(args.reference))[args.rules]
        ref_name = f"--rules {args.rules} of {args.reference}"
    else:
        reference = [r for r in rules if r.__name__ not in NEW_RULES]
        ref_name = f"the same preset without {', '.join(sorted(NEW_RULES))}"
    sets = {"faithful": read_jsonl(args.faithful), "unfaithful": read_jsonl(args.unfaithful)}
    tasks = {name: classify(items) for name, items in sets.items()}
    results = {name: (verdicts(items, tasks[name], rules), verdicts(items, tasks[name], reference))
               for name, items in sets.items()}

    print(f"filter quality, --rules {args.rules}; reference (ref): {ref_name}")
    print(f"{'set':<11} {'split':<7} {'records':>7} {'rejected':>9} {'rate':>7} {'ref rejected':>13} {'ref rate':>9}")
    for name, items in sets.items():
        ours, ref = results[name]
        for split, parity in (("tune", 0), ("report", 1)):
            lines = [i for i in range(len(items)) if i % 2 == parity]
            n = sum(ours[i][0] for i in lines)
            m = sum(ref[i][0] for i in lines)
            print(f"{name:<11} {split:<7} {len(lines):>7} {n:>9} {rate(n, len(lines)):>7} {m:>13} {rate(m, len(lines)):>9}")
    print("faithful: every rejection is false (goal <= 5 %); unfaithful: every rejection is a catch")

    print("\nreport split, per kind: rejected / records (reference in brackets)")
    for name, field in (("faithful", "kind"), ("unfaithful", "planted")):
        items = sets[name]
        ours, ref = results[name]
        kinds = Counter()
        caught, caught_ref = Counter(), Counter()
        for i in range(1, len(items), 2):
            kind = items[i].get(field, "?")
            kinds[kind] += 1
            caught[kind] += ours[i][0]
            caught_ref[kind] += ref[i][0]
        for kind in sorted(kinds):
            print(f"  {name:<11} {kind:<28} {caught[kind]:>3} / {kinds[kind]:<3} ({caught_ref[kind]})")

    print("\nreport split, rejections per rule")
    for name in sets:
        ours, _ = results[name]
        by_rule = Counter(ours[i][1] for i in range(1, len(sets[name]), 2) if ours[i][0])
        print(f"  {name:<11} " + (", ".join(f"{r} {n}" for r, n in by_rule.most_common()) or "none"))

    if args.show == "tune":
        for name, items in sets.items():
            ours, _ = results[name]
            wrong = [i for i in range(0, len(items), 2) if ours[i][0] == (name == "faithful")]
            print(f"\n=== tune split, {name}: {'false rejections' if name == 'faithful' else 'misses'} ({len(wrong)})")
            for i in wrong:
                it = items[i]
                print(f"--- line {i} [{it.get('kind') or it.get('planted')}, {tasks[name][i]}] {ours[i][1]}: {ours[i][2]}")
                print("ORIGINAL:", it["original"][:600])
                print("REWRITE:", it["rewrite"][:900])


if __name__ == "__main__":
    main()
