"""Peak memory of every step on a file holding one huge record, beside the same step on a small one.

    .venv/bin/python bench/record_memory.py [--mb 50]        # about 2 minutes on 2 cores

Each step runs as a real subprocess (peak RSS from os.wait4) on two inputs made here:
  small  10 ordinary records
  huge   the same 10 records and one whose question is --mb MB of English-like text
The step is set up so the huge record does its real work: classify.py classifies it (embedded
model), retrieval.py searches it (bm25, our demo corpus), reformat.py sends it to the test
suite's fake OpenAI server (own process) and writes the rewrite, parallel_data_merge.py and
rewrite_data_selection.py join and filter it. Goal: <= 1 GB peak per step with the huge record.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOAL_MB = 1024
WORDS = "the quick brown fox jumps over a lazy dog while seven wizards quietly judge boxing matches".split()


def record(rid, question, category):
    return {"id": rid, "items": [{"from": "human", "value": question, "category": category},
                                 {"from": "gpt", "value": f"An answer of a few words for {rid}."}]}


def inputs(folder, mb):
    """Write the small and huge inputs (classify gets them without categories) from a child
    process: on Linux a child's peak RSS starts at its parent's, so this process stays small."""
    code = f"import sys; sys.path.insert(0, {ROOT!r}); from bench.record_memory import write_inputs; " \
           f"write_inputs({folder!r}, {mb})"
    subprocess.run([sys.executable, "-c", code], check=True)


def write_inputs(folder, mb):
    small = [record(i, f"How do I boil an egg, take {i}?", "open_qa") for i in range(10)]
    words = " ".join(WORDS[i % len(WORDS)] for i in range(mb * 1_000_000 // 5))
    huge = small + [record(99, "Explain this text: " + words, "open_qa")]
    for name, recs in (("small", small), ("huge", huge)):
        with open(os.path.join(folder, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(recs, f)
        bare = [{**r, "items": [{k: v for k, v in r["items"][0].items() if k != "category"}, r["items"][1]]} for r in recs]
        with open(os.path.join(folder, f"{name}_bare.json"), "w", encoding="utf-8") as f:
            json.dump(bare, f)


def peak(cmd, env=None):
    """(seconds, peak RSS in MB, exit code) of a subprocess."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode(errors="replace").strip()
    code = os.waitstatus_to_exitcode(status)
    if code:
        print(f"  ({' '.join(cmd[1:3])} exit {code}: {err[-300:]})", file=sys.stderr)
    return time.monotonic() - start, usage.ru_maxrss / 1024, code


def steps(folder, name, url):
    """(step, argv) in pipeline order for input `name`; each step reads the previous one's output."""
    py = sys.executable
    d = os.path.join(folder, name)
    os.makedirs(d, exist_ok=True)
    inp = os.path.join(folder, f"{name}.json")
    return [
        ("classify", [py, "classify.py", "--input_data_path", os.path.join(folder, f"{name}_bare.json"),
                      "--output_path", os.path.join(d, "classified.json"), "--quiet"]),
        ("retrieval", [py, "retrieval.py", "--input_data_path", inp, "--output_path", os.path.join(d, "r.json"),
                       "--backend", "bm25", "--corpus_path", os.path.join(ROOT, "datasets", "corpus")]),
        ("reformat", [py, "reformat.py", "--input_data_path", inp, "--output_directory", os.path.join(d, "shards"),
                      "--base_url", url, "--quiet", "--max_retries", "0", "--request_timeout", "600"]),
        ("merge", [py, "parallel_data_merge.py", "--input_data_path", inp, "--output_directory",
                   os.path.join(d, "shards"), "--final_output_path", os.path.join(d, "merged.json")]),
        ("selection", [py, "rewrite_data_selection.py", "--input_original_data_path", inp,
                       "--input_rewrite_data_path", os.path.join(d, "merged.json"),
                       "--output_path", os.path.join(d, "final.json")]),
    ]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mb", type=int, default=50, help="size of the huge question in MB")
    args = p.parse_args()
    folder = tempfile.mkdtemp(prefix="record_memory.")
    server = subprocess.Popen([sys.executable, "-m", "tests.servers.openai_fake"], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip() + "/v1"
        inputs(folder, args.mb)
        rows = {}
        for name in ("small", "huge"):
            for step, cmd in steps(folder, name, url):
                rows.setdefault(step, {})[name] = peak(cmd, env={"OPENAI_API_KEY": "bench"})
        print(f"peak RSS per step: 10 small records vs the same plus one {args.mb} MB question")
        print(f"{'step':<10} {'small MB':>9} {'huge MB':>8} {'huge s':>7} {'exit':>5}  goal <= {GOAL_MB} MB")
        for step, r in rows.items():
            (_, small_mb, _), (secs, huge_mb, code) = r["small"], r["huge"]
            verdict = "met" if huge_mb <= GOAL_MB and code in (0, 1) else "NOT met"
            print(f"{step:<10} {small_mb:>9.0f} {huge_mb:>8.0f} {secs:>7.1f} {code:>5}  {verdict}")
    finally:
        server.stdin.close()
        server.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
