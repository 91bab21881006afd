"""Benchmark: merge + filter on synthetic records (default 100k) — time and peak memory, per file type.

    python bench/merge_filter.py [--records 100000] [--shards 8] [--formats jsonl,parquet]
                                 [--merge_only] [--repeat 3]

Builds N shard outputs as reformat.py writes them (rewrites for 70 %, pass-through 20 %,
failures 10 %; every line with its input hash) and the input file in each of --formats, then
runs parallel_data_merge.py and rewrite_data_selection.py as real subprocesses, the input,
merged and final files all of that type, and prints a table: seconds, records/s and peak RSS of
each step, and each type's total against the first type's (the reference, measured in the same
run). Goals: both steps ≤ 10 s total for 100k records; Parquet ≤ 2x JSONL; merge ≤ 2x a plain
json round trip of the input (the `json r/t` row: a subprocess that loads the input with the
json module, one record a line for JSONL, and dumps it again, nothing else). For the first type
the filter also runs with --rules none (not in the totals): the difference is what the rules cost.
--merge_only skips the filter; --repeat N runs each step N times and keeps its fastest run (on a
shared machine the load moves between two runs more than the steps differ).
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

from realign.records import input_hash, write_records
from realign.rewrite import passing_reason, shard_row
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
                    fail.write(json.dumps({"id": rec["id"], "reason": "HTTP 500 after 5 retries",
                                           "input_hash": input_hash(rec)}) + "\n")
                    continue
                if roll < 0.8 and rec["items"][0]["category"] != "default":
                    rew = "**Answer.**\n\n" + rec["items"][1]["value"] + "\n\nIn short: 42."
                    line = shard_row(rec, rewrite=rew, candidates=[rew])
                else:
                    line = shard_row(rec, kept_reason=passing_reason(rec))
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
    return records, out_dir


REPEAT = 1


CPU = {}  # (step's command) -> CPU seconds (user + system) of its fastest run


# Runs a command and prints its exit code, peak RSS (KB), CPU seconds and wall seconds. The
# steps are started from this small launcher, not from the bench: a child's ru_maxrss includes
# what its parent held when it was started (the bench holds the 100k records it made).
MEASURE = ("import os, subprocess, sys, time; t = time.perf_counter(); "
           "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL); _, status, u = os.wait4(p.pid, 0); "
           "print(os.waitstatus_to_exitcode(status), u.ru_maxrss, u.ru_utime + u.ru_stime, time.perf_counter() - t)")


def timed(cmd):
    """(seconds, peak RSS in MB) of one subprocess: the fastest of REPEAT runs. Its CPU seconds go to
    CPU: on a loaded machine they move less than wall time does."""
    runs = []
    for _ in range(REPEAT):
        out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True).stdout.split()
        code, kb, cpu, secs = int(out[0]), int(out[1]), float(out[2]), float(out[3])
        if code:
            raise SystemExit(f"{cmd[1]} failed with exit code {code}")
        runs.append((secs, kb / 1024, cpu))
    secs, rss, cpu = min(runs)
    CPU[tuple(cmd)] = min(r[2] for r in runs)
    return secs, rss


ROUND_TRIP = """import json, sys
src, dst = sys.argv[1], sys.argv[2]
with open(src, encoding="utf-8") as f:
    data = [json.loads(line) for line in f] if src.endswith(".jsonl") else json.load(f)
with open(dst, "w", encoding="utf-8") as f:
    if dst.endswith(".jsonl"):
        for rec in data:
            f.write(json.dumps(rec, ensure_ascii=False) + "\\n")
    else:
        json.dump(data, f, ensure_ascii=False)
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--formats", default="jsonl,parquet", help="file types to compare, the first is the reference")
    ap.add_argument("--merge_only", action="store_true", help="time the merge (and the json round trip) only")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each step; the fastest counts")
    args = ap.parse_args()
    global REPEAT
    REPEAT = args.repeat
    py, rows, cpu_ratio = sys.executable, [], {}
    with tempfile.TemporaryDirectory() as tmp:
        records, out_dir = make_data(tmp, args.records, args.shards)
        inputs = {}
        for ext in args.formats.split(","):
            inputs[ext] = os.path.join(tmp, f"input.{ext}")
            write_records(inputs[ext], records)
        del records
        for ext, inp in inputs.items():
            merged, final = os.path.join(tmp, f"merged.{ext}"), os.path.join(tmp, f"final.{ext}")
            if ext in ("json", "jsonl"):  # the reference for merge: the json module alone, in and out
                cmd = [py, "-c", ROUND_TRIP, inp, os.path.join(tmp, f"roundtrip.{ext}")]
                secs, rss = timed(cmd)
                rows.append((ext, "json r/t", secs, rss))
                cpu_ref = CPU[tuple(cmd)]
            cmd = [py, os.path.join(ROOT, "parallel_data_merge.py"), "--input_data_path", inp,
                   "--output_directory", out_dir, "--final_output_path", merged]
            secs, rss = timed(cmd)
            rows.append((ext, "merge", secs, rss))
            if ext in ("json", "jsonl"):
                cpu_ratio[ext] = (CPU[tuple(cmd)], cpu_ref)
            if args.merge_only:
                continue
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
        if name not in ("no rules", "json r/t"):
            totals[ext] = totals.get(ext, 0) + secs
        print(f"{ext:<8} {name:<8} {args.records:>8} {secs:>8.2f} {args.records / secs:>10.0f} {rss:>12.0f}")
    steps = {(ext, name): secs for ext, name, secs, _ in rows}
    for ext in totals:
        if (ext, "json r/t") in steps:
            cpu, ref = cpu_ratio[ext]
            print(f"{ext:<8} merge / json round trip: {steps[ext, 'merge'] / steps[ext, 'json r/t']:.2f}x wall, "
                  f"{cpu / ref:.2f}x CPU ({cpu:.2f} s / {ref:.2f} s)")
    ref = next(iter(totals))
    for ext, total in totals.items():
        print(f"{ext:<8} {'total':<8} {args.records:>8} {total:>8.2f} {args.records / total:>10.0f}   "
              f"{total / totals[ref]:.2f}x {ref}")


if __name__ == "__main__":
    main()
