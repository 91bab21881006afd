"""How fast one reformat process goes against an endpoint with 1 s latency, and how well it
lives with a rate cap. Uses the real engine (realign.rewrite + the openai backend) against the
test suite's fake OpenAI server on 127.0.0.1.

    .venv/bin/python bench/reformat_throughput.py            # ~2 minutes

The server runs in its own process (as a real endpoint would), so its threads do not compete
with the client for the GIL. Prints two tables:
  1. records/s at concurrency 1 (what the original script did: one request at a time) and at
     concurrency 64, with the ratio (goal: >= 50x).
  2. a server capped at 600 requests/minute (token bucket, 1 s burst, 429 + Retry-After past
     it): achieved RPM over the whole run, share of requests answered 429, records lost
     (goal: >= 90 % of the cap, <= 5 % 429, 0 lost), with the adaptive limiter alone and with
     a matching client cap (--rpm 600).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # for tests.servers

from realign.files import read_jsonl_tolerant  # noqa: E402
from realign.lengths import approx_tokens  # noqa: E402
from realign.llm.base import BackendConfig, make_backend  # noqa: E402
from realign.rewrite import Settings, rewrite_shard  # noqa: E402


def make_records(n):
    return [{"id": i, "items": [{"from": "human", "value": f"What is {i} + {i}?", "category": "math_puzzles"},
                                {"from": "gpt", "value": f"{2 * i}"}]} for i in range(n)]


@contextmanager
def fake_server(latency, rpm_cap):
    """The test suite's fake OpenAI server in a child process; yields its base URL."""
    cmd = [sys.executable, "-m", "tests.servers.openai_fake", "--latency", str(latency)]
    if rpm_cap:
        cmd += ["--rpm_cap", str(rpm_cap)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.stdin.close()
        proc.wait(10)


def server_counts(url):
    with urllib.request.urlopen(f"{url}/stats", timeout=10) as resp:
        return {int(k): v for k, v in json.load(resp)["status_counts"].items()}


def run(n_records, concurrency, latency, rpm_cap=None, client_rpm=None):
    """One shard through the engine; returns a dict of measurements."""
    records = make_records(n_records)
    with tempfile.TemporaryDirectory() as tmp, fake_server(latency, rpm_cap) as url:
        out, fails = os.path.join(tmp, "out.jsonl"), os.path.join(tmp, "fail.jsonl")
        backend = make_backend("openai", BackendConfig(model="bench", base_url=f"{url}/v1", api_key="bench",
                                                       request_timeout=30))
        settings = Settings(top_k=1, concurrency=concurrency, rpm=client_rpm, max_retries=8)
        t0 = time.monotonic()
        summary = rewrite_shard(records, backend, out, fails, settings, approx_tokens, progress=False)
        seconds = time.monotonic() - t0
        written = {o["id"] for o in read_jsonl_tolerant(out)[0]}
        failed = {o["id"] for o in read_jsonl_tolerant(fails)[0]}
        counts = server_counts(url)
    total = sum(counts.values())
    return {"records": n_records, "seconds": seconds, "rec_per_s": len(written) / seconds,
            "ok": counts.get(200, 0), "http429": counts.get(429, 0), "requests": total,
            "rpm": counts.get(200, 0) / seconds * 60, "share429": counts.get(429, 0) / max(1, total),
            "lost": n_records - len(written | failed), "failed": len(failed), "summary": summary.line()}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--latency", type=float, default=1.0, help="server seconds per answer")
    p.add_argument("--seq_records", type=int, default=10, help="records for the concurrency-1 run")
    p.add_argument("--par_records", type=int, default=1280, help="records for the concurrency-64 run")
    p.add_argument("--cap_records", type=int, default=300, help="records for each 600 RPM run")
    p.add_argument("--json", default=None, help="also write the numbers here")
    args = p.parse_args()

    seq = run(args.seq_records, 1, args.latency)
    par = run(args.par_records, 64, args.latency)
    print(f"\nthroughput, server latency {args.latency:g} s, top_k 1")
    print(f"{'concurrency':>12} {'records':>8} {'seconds':>8} {'records/s':>10} {'lost':>5}")
    for conc, r in ((1, seq), (64, par)):
        print(f"{conc:>12} {r['records']:>8} {r['seconds']:>8.1f} {r['rec_per_s']:>10.2f} {r['lost']:>5}")
    ratio = par["rec_per_s"] / seq["rec_per_s"]
    print(f"ratio 64 vs 1: {ratio:.1f}x (goal >= 50x)")

    caps = {"adaptive only": run(args.cap_records, 64, args.latency, rpm_cap=600),
            "adaptive + --rpm 600": run(args.cap_records, 64, args.latency, rpm_cap=600, client_rpm=600)}
    print(f"\nserver capped at 600 RPM, concurrency 64, latency {args.latency:g} s, {args.cap_records} records")
    print(f"{'client':>22} {'seconds':>8} {'RPM':>7} {'of cap':>7} {'requests':>9} {'429s':>6} {'429 %':>6} {'lost':>5}")
    for name, r in caps.items():
        print(f"{name:>22} {r['seconds']:>8.1f} {r['rpm']:>7.0f} {r['rpm'] / 600:>7.0%} {r['requests']:>9} "
              f"{r['http429']:>6} {r['share429']:>6.1%} {r['lost']:>5}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"sequential": seq, "concurrent": par, "ratio": ratio, "capped": caps}, f, indent=2, default=str)


if __name__ == "__main__":
    main()
