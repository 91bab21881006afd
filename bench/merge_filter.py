"""Benchmark: merge + filter on synthetic records (default 100k) — time and peak memory.

    python bench/merge_filter.py [--records 100000] [--shards 8]

Builds an input file, N shard outputs (rewrites for 70 %, pass-through 20 %, failures 10 %),
then runs parallel_data_merge.py and rewrite_data_selection.py as real subprocesses and
prints a table: seconds, records/s and peak RSS of each step. Goal: both steps ≤ 10 s total.
The filter runs twice: with the default rules, and with --rules none (the reference: reading,
joining and writing only). Peak RSS is the largest child so far.
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
    inp = os.path.join(folder, "input.json")
    with open(inp, "w") as f:
        json.dump(records, f)
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
    return inp, out_dir


def timed(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--shards", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        inp, out_dir = make_data(tmp, args.records, args.shards)
        merged, final = os.path.join(tmp, "merged.json"), os.path.join(tmp, "final.json")
        py = sys.executable
        rows = []
        t = timed([py, os.path.join(ROOT, "parallel_data_merge.py"), "--input_data_path", inp,
                   "--output_directory", out_dir, "--final_output_path", merged])
        rows.append(("merge", t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
        t = timed([py, os.path.join(ROOT, "rewrite_data_selection.py"), "--input_original_data_path", inp,
                   "--input_rewrite_data_path", merged, "--output_path", final])
        rows.append(("filter", t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
        # reference: the same step with no rules, i.e. reading, joining and writing only
        t = timed([py, os.path.join(ROOT, "rewrite_data_selection.py"), "--input_original_data_path", inp,
                   "--input_rewrite_data_path", merged, "--output_path", final, "--rules", "none"])
        rows.append(("no rules", t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
    print(f"{'step':<8} {'records':>8} {'seconds':>8} {'records/s':>10} {'peak RSS MB':>12}")
    for name, secs, rss in rows:
        print(f"{name:<8} {args.records:>8} {secs:>8.2f} {args.records / secs:>10.0f} {rss / 1024:>12.0f}")
    total = rows[0][1] + rows[1][1]  # merge + filter; the no-rules run is the reference
    print(f"{'total':<8} {args.records:>8} {total:>8.2f} {args.records / total:>10.0f}   goal <= 10 s: "
          f"{'met' if total <= 10 else 'MISSED'}")


if __name__ == "__main__":
    main()
