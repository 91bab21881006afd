"""Check the hand-written semantic faithfulness eval set (bench/data/semantic_eval_{dev,test}.jsonl).

Validates shape, not quality: every record has the fields of bench/data/SEMANTIC_EVAL.md, ids are unique
across both splits, categories are task names from code/constant.py, flaw kinds are the five known ones and
are spread evenly in each split, and no rewrite is identical to the other or to the original.
Prints a table of counts per flaw kind and split. Exit 1 on any problem.

Usage: python bench/semantic_eval_check.py
"""
import ast
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
SPLITS = {"dev": "semantic_eval_dev.jsonl", "test": "semantic_eval_test.jsonl"}
FLAWS = ("lost_fact", "contradiction", "added_claim", "changed_conclusion", "restates_request")
REQUIRED = ("id", "category", "question", "original", "faithful", "unfaithful", "flaw", "flaw_note", "source")
OPTIONAL = ("system",)


def task_names():
    """The 46 task names, read from code/constant.py without importing the package."""
    tree = ast.parse((ROOT / "code" / "constant.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "TASKS" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise SystemExit("code/constant.py: no TASKS tuple found")


def check():
    tasks, problems, seen, counts = task_names(), [], set(), {}
    for split, name in SPLITS.items():
        counts[split] = Counter()
        for n, line in enumerate((DATA / name).read_text(encoding="utf-8").splitlines(), 1):
            where = f"{name}:{n}"
            rec = json.loads(line)
            missing = [k for k in REQUIRED if not isinstance(rec.get(k), str) or not rec[k].strip()]
            extra = set(rec) - set(REQUIRED) - set(OPTIONAL)
            if missing or extra:
                problems.append(f"{where}: missing/empty {missing}, unknown {sorted(extra)}")
                continue
            if rec["id"] in seen:
                problems.append(f"{where}: duplicate id {rec['id']}")
            seen.add(rec["id"])
            if rec["category"] not in tasks:
                problems.append(f"{where}: unknown category {rec['category']!r}")
            if rec["flaw"] not in FLAWS:
                problems.append(f"{where}: unknown flaw {rec['flaw']!r}")
            texts = {rec["original"].strip(), rec["faithful"].strip(), rec["unfaithful"].strip()}
            if len(texts) < 3:
                problems.append(f"{where}: original, faithful and unfaithful must all differ")
            counts[split][rec["flaw"]] += 1
    for split, c in counts.items():
        if len(set(c[f] for f in FLAWS)) != 1:
            problems.append(f"{split}: flaw kinds not evenly spread: {dict(c)}")
    print(f"{'flaw':<20}" + "".join(f"{s:>6}" for s in SPLITS) + f"{'all':>6}")
    for f in FLAWS:
        row = [counts[s][f] for s in SPLITS]
        print(f"{f:<20}" + "".join(f"{x:>6}" for x in row) + f"{sum(row):>6}")
    print(f"{'total':<20}" + "".join(f"{sum(counts[s].values()):>6}" for s in SPLITS) + f"{len(seen):>6}")
    for p in problems:
        print("problem:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(check())
