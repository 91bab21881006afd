"""Benchmark: the filter step's speed with its default rules, beside a plain json load + dump.

    python bench/filter_speed.py [--records 100000] [--workers 1,2] [--rules open_platypus]

Builds N records from the hand-written texts in bench/data (filter_faithful/unfaithful and
the semantic eval set: real answers of 20-300 words, faithful and unfaithful rewrites), 75 %
of them rewritten, the rest passed through, each record's texts made unique by a short tail so
that no two records share a rewrite. Then runs, as real subprocesses on the same files:

- the reference: python loading both input files with json and dumping the records back;
- rewrite_data_selection.py with the preset's rules (the checker included when it is in the
  preset), once per --workers value.

Prints seconds, records/s and peak RSS for each. Goal (issue 21): >= 300 records/s for the
default filter, checker included, on the 2-core project machine (100k records in <= 5.5 min).
"""

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "bench", "data")
REFERENCE = ("import json, sys\n"
             "a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))\n"
             "json.dump(b, open(sys.argv[3], 'w'), ensure_ascii=False)\n")


def pool():
    """(question, original, rewrite, category) from every hand-written set we have."""
    out = []
    for name in ("filter_faithful.jsonl", "filter_unfaithful.jsonl"):
        for line in open(os.path.join(DATA, name), encoding="utf-8"):
            it = json.loads(line)
            out.append((it["question"], it["original"], it["rewrite"], "open_qa"))
    for name in ("semantic_eval_dev.jsonl", "semantic_eval_test.jsonl"):
        path = os.path.join(DATA, name)
        if os.path.exists(path):
            for line in open(path, encoding="utf-8"):
                it = json.loads(line)
                out += [(it["question"], it["original"], it[k], it["category"]) for k in ("faithful", "unfaithful")]
    return out


def make_files(folder, n, seed=0):
    rng = random.Random(seed)
    texts = pool()
    originals, merged = [], []
    for i in range(n):
        q, a, r, cat = rng.choice(texts)
        tail = f" (ref {i})"
        rec = {"id": i, "items": [{"from": "human", "value": q + tail, "category": cat},
                                  {"from": "gpt", "value": a + tail}]}
        originals.append(rec)
        rewritten = rng.random() < 0.75
        merged.append({"id": i, "items": [rec["items"][0], {"from": "gpt", "value": (r + tail) if rewritten else a + tail,
                                                             **({} if rewritten else {"kept_original": "format does not fit"})}]})
    paths = os.path.join(folder, "orig.json"), os.path.join(folder, "merged.json")
    for path, recs in zip(paths, (originals, merged)):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(recs, f, ensure_ascii=False)
    return paths


def timed(cmd):
    """(seconds, peak RSS in MB) of one subprocess."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    secs = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return secs, max(rss, before) / 1024, proc.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--workers", default="1,2", help="comma-separated --workers values to time")
    ap.add_argument("--rules", default="open_platypus")
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        orig, merged = make_files(tmp, args.records)
        rows = [("json load + dump (ref)",) + timed([py, "-c", REFERENCE, orig, merged, os.path.join(tmp, "ref.json")])[:2]]
        for w in args.workers.split(","):
            secs, rss, out = timed([py, "rewrite_data_selection.py", "--input_original_data_path", orig,
                                    "--input_rewrite_data_path", merged, "--output_path", os.path.join(tmp, "f.json"),
                                    "--rules", args.rules, "--workers", w, "--quiet"])
            rows.append((f"filter --workers {w}", secs, rss))
            summary = out.strip().splitlines()[-1] if out.strip() else ""
    print(f"filter speed: {args.records:,} records, --rules {args.rules}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'run':<26} {'seconds':>8} {'records/s':>10} {'peak RSS MB':>12}")
    for name, secs, rss in rows:
        print(f"{name:<26} {secs:>8.1f} {args.records / secs:>10.0f} {rss:>12.0f}")
    print(f"last run: {summary}")
    print("goal: >= 300 records/s for the default filter, checker included (100k in <= 5.5 min)")


if __name__ == "__main__":
    main()
