"""Batch mode beside online mode: 1,000 records through reformat.py itself, against the test suite's
fake Batch API (tests/servers/batch_fake.py, which also answers online chat/completions), run in
its own process as a real endpoint would be.

    .venv/bin/python bench/batch_throughput.py                   # 1,000 records, about 2 minutes
    .venv/bin/python bench/batch_throughput.py --records 200 --latency 0.5

Online: every record is one chat/completions call answered after --latency seconds, 32 in flight
(the default). Batch: one upload, one batch, polls every --poll_interval seconds while the fake
batch runs its timeline (--steps: seconds validating, in_progress, finalizing), two downloads.
The fake's timeline stands for the provider's hours; what the table measures is the client:
HTTP requests sent, the model calls they cost, the client's own CPU time (user + system of the
reformat.py process), and wall time beside the time spent waiting for the server.
"""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_records(n):
    return [{"id": i, "items": [{"from": "human", "value": f"How do I compute {i} + {i} by hand?",
                                 "category": "math_puzzles"},
                                {"from": "gpt", "value": f"Add the units, then the tens. {i} + {i} = {2 * i}."}]}
            for i in range(n)]


def stats(url):
    with urllib.request.urlopen(f"{url}/stats", timeout=10) as resp:
        return json.load(resp)


def reformat(url, inp, out, *extra):
    """reformat.py as a child process: (wall seconds, child CPU seconds, CompletedProcess)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, os.path.join(ROOT, "reformat.py"), "--input_data_path", inp,
                        "--output_directory", out, "--base_url", f"{url}/v1", "--quiet", *extra],
                       capture_output=True, text=True, env={**os.environ, "OPENAI_API_KEY": "sk-bench"}, cwd=ROOT)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        sys.exit(f"reformat.py exited {r.returncode}: {r.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, r


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--latency", type=float, default=1.0, help="seconds per online answer")
    p.add_argument("--steps", type=float, nargs=3, default=(1.0, 5.0, 1.0),
                   help="the fake batch's seconds validating, in_progress, finalizing")
    p.add_argument("--poll_interval", type=float, default=2.0)
    args = p.parse_args()

    server = subprocess.Popen([sys.executable, "-m", "tests.servers.batch_fake", "--latency", str(args.latency),
                               "--steps", *map(str, args.steps)], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    rows = []
    try:
        url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp:
            inp = os.path.join(tmp, "in.json")
            with open(inp, "w") as f:
                json.dump(make_records(args.records), f)
            for mode, extra in (("online", []), ("batch", ["--batch", "--poll_interval", str(args.poll_interval)])):
                s0 = stats(url)
                wall, cpu, r = reformat(url, inp, os.path.join(tmp, mode), *extra)
                s1 = stats(url)
                waited = re.search(r"(\d+) s waiting for the server", r.stdout)
                rows.append((mode, wall, float(waited.group(1)) if waited else 0.0, cpu,
                             s1["http_requests"] - s0["http_requests"] - 1,  # less our own /stats call
                             s1["online_calls"] - s0["online_calls"] + s1["lines_answered"] - s0["lines_answered"],
                             s1["batches"] - s0["batches"]))
    finally:
        server.stdin.close()
        server.wait(10)

    print(f"{args.records} records, top_k 1; online: {args.latency:g} s per answer, 32 in flight; batch: fake "
          f"timeline {'/'.join(f'{s:g}' for s in args.steps)} s, --poll_interval {args.poll_interval:g}")
    print(f"{'mode':>7} {'wall s':>7} {'waiting s':>9} {'client CPU s':>12} {'HTTP requests':>13} "
          f"{'model calls':>11} {'batches':>7}")
    for mode, wall, waited, cpu, http, calls, batches in rows:
        print(f"{mode:>7} {wall:7.1f} {waited:9.0f} {cpu:12.1f} {http:13d} {calls:11d} {batches:7d}")


if __name__ == "__main__":
    main()
