"""Benchmark: merge + filter on synthetic records (default 100k) — time and peak memory, per file type.

    python bench/merge_filter.py [--records 100000] [--shards 8] [--formats jsonl,parquet]

Builds N shard outputs (rewrites for 70 %, pass-through 20 %, failures 10 %) and the input file
in each of --formats, then runs parallel_data_merge.py and rewrite_data_selection.py as real
subprocesses, the input, merged and final files all of that type, and prints a table: seconds,
records/s and peak RSS of each step, and each type's total against the first type's (the
reference, measured in the same run). Goals: both steps ≤ 10 s total for 100k records; Parquet
≤ 2x JSONL. For the first type the filter also runs with --rules none (not in the totals): the
difference is what the rules cost.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

from realign.records import write_records
from realign.shards import failures_path, shard_bounds, shard_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CATS = ["open_qa", "math_puzzles", "default", "how_to_generation", "explain_code", "planning"]


def make_data(folder, n, shards):
    rng = random.Random(0)
    records = []
    for i in range(n):
        cat = CATS[i % len(CATS)]
        answer = " ".join(rng.choice(["alpha", "beta", "gamma", "42", "delta,"]) for _ in range(60))
        records.append({"id": f"id-{i}", "items": [
            {"from": "human", "value": f"Question number {i}: please explain {cat}.", "category": cat},
            {"from": "gpt", "value": answer}]})
    out_dir = os.path.join(folder, "out")
    os.makedirs(out_dir)
    for s in range(shards):
        lo, hi = shard_bounds(n, s, shards)
        with open(shard_path(out_dir, s, shards), "w") as out, open(failures_path(out_dir, s, shards), "w") as fail:
            for rec in records[lo:hi]:
                roll = rng.random()
                if roll < 0.1:
                    fail.write(json.dumps({"id": rec["id"], "reason": "HTTP 500 after 5 retries"}) + "\n")
                    continue
                if roll < 0.8 and rec["items"][0]["category"] != "default":
                    rew = "**Answer.**\n\n" + rec["items"][1]["value"] + "\n\nIn short: 42."
                    rec = {**rec, "items": [rec["items"][0], {**rec["items"][1], "revised_response": rew,
                                                              "revised_response_list": [rew]}]}
                out.write(json.dumps(rec) + "\n")
    return records, out_dir


def timed(cmd):
    """(seconds, peak RSS in MB) of one subprocess."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit(f"{cmd[1]} failed with status {status}")
    return time.perf_counter() - t, usage.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--formats", default="jsonl,parquet", help="file types to compare, the first is the reference")
    args = ap.parse_args()
    py, rows = sys.executable, []
    with tempfile.TemporaryDirectory() as tmp:
        records, out_dir = make_data(tmp, args.records, args.shards)
        inputs = {}
        for ext in args.formats.split(","):
            inputs[ext] = os.path.join(tmp, f"input.{ext}")
            write_records(inputs[ext], records)
        del records
        for ext, inp in inputs.items():
            merged, final = os.path.join(tmp, f"merged.{ext}"), os.path.join(tmp, f"final.{ext}")
            secs, rss = timed([py, os.path.join(ROOT, "parallel_data_merge.py"), "--input_data_path", inp,
                               "--output_directory", out_dir, "--final_output_path", merged])
            rows.append((ext, "merge", secs, rss))
            secs, rss = timed([py, os.path.join(ROOT, "rewrite_data_selection.py"), "--input_original_data_path", inp,
                               "--input_rewrite_data_path", merged, "--output_path", final])
            rows.append((ext, "filter", secs, rss))
            if ext == next(iter(inputs)):  # what the rules cost: the same step with none (read, join, write)
                secs, rss = timed([py, os.path.join(ROOT, "rewrite_data_selection.py"), "--input_original_data_path",
                                   inp, "--input_rewrite_data_path", merged, "--output_path", final, "--rules", "none"])
                rows.append((ext, "no rules", secs, rss))
    print(f"{'file':<8} {'step':<8} {'records':>8} {'seconds':>8} {'records/s':>10} {'peak RSS MB':>12}")
    totals = {}
    for ext, name, secs, rss in rows:
        if name != "no rules":
            totals[ext] = totals.get(ext, 0) + secs
        print(f"{ext:<8} {name:<8} {args.records:>8} {secs:>8.2f} {args.records / secs:>10.0f} {rss:>12.0f}")
    ref = next(iter(totals))
    for ext, total in totals.items():
        print(f"{ext:<8} {'total':<8} {args.records:>8} {total:>8.2f} {args.records / total:>10.0f}   "
              f"{total / totals[ref]:.2f}x {ref}")


if __name__ == "__main__":
    main()
