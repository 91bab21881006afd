"""How fast one reformat process goes against an endpoint with 1 s latency, how well it lives with
a rate cap and with random 429s, and how fast it gives up on a misconfigured endpoint. Uses the
real engine (realign.rewrite + the openai backend, and reformat.py itself for the misconfigured
endpoints) against the test suite's fake OpenAI server on 127.0.0.1.

    .venv/bin/python bench/reformat_throughput.py                 # ~10 minutes, every table
    .venv/bin/python bench/reformat_throughput.py --only goals    # the issue-13 goals table

The server runs in its own process (as a real endpoint would), so its threads do not compete
with the client for the GIL. Tables:
  speed    records/s at concurrency 1 (the original script) and 64, with the ratio (goal >= 50x).
  cap      a server capped at 600 requests/minute (token bucket, 1 s burst, 429 + Retry-After
           past it): achieved RPM, share of requests answered 429, records lost; with and without
           the server's x-ratelimit-* headers, and with a matching client cap (--rpm 600).
  goals    (issue 13) misconfigured endpoints, 500 records: exit code and seconds (goal: 2 within
           15 s); 600 RPM cap with x-ratelimit headers, 900 records, defaults (goal >= 93 % of the
           cap, <= 2 % 429, 0 lost); 20 % random 429s vs fault-free at defaults (goal >= 50 %);
           64/128/256 in flight on 600 and 2,560 records beside a plain AsyncOpenAI + Semaphore loop
           measured in the same run (goal: >= the loop).
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
def fake_server(latency, rpm_cap=None, headers=False, random_429=0.0):
    """The test suite's fake OpenAI server in a child process; yields its base URL."""
    cmd = [sys.executable, "-m", "tests.servers.openai_fake", "--latency", str(latency)]
    if rpm_cap:
        cmd += ["--rpm_cap", str(rpm_cap)]
    if headers:
        cmd += ["--ratelimit_headers"]
    if random_429:
        cmd += ["--random_429", str(random_429)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.stdin.close()
        proc.wait(10)


def server_counts(url):
    with urllib.request.urlopen(f"{url}/stats", timeout=10) as resp:
        return {int(k): v for k, v in json.load(resp)["status_counts"].items()}


def run(n_records, concurrency, latency, rpm_cap=None, client_rpm=None, headers=False, random_429=0.0):
    """One shard through the engine; returns a dict of measurements."""
    records = make_records(n_records)
    with tempfile.TemporaryDirectory() as tmp, fake_server(latency, rpm_cap, headers, random_429) as url:
        out, fails = os.path.join(tmp, "out.jsonl"), os.path.join(tmp, "fail.jsonl")
        backend = make_backend("openai", BackendConfig(model="bench", base_url=f"{url}/v1", api_key="bench",
                                                       request_timeout=30))
        settings = Settings(top_k=1, concurrency=concurrency, rpm=client_rpm,
                            max_retries=8 if rpm_cap or random_429 else 5)
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


def run_reference(n_records, concurrency, latency):
    """The plain loop a user would write: AsyncOpenAI + asyncio.Semaphore(concurrency), the same
    prompts, SDK defaults; returns records/s."""
    import asyncio

    from openai import AsyncOpenAI

    from realign.rewrite import messages_for

    records = make_records(n_records)

    async def go(url):
        client = AsyncOpenAI(api_key="bench", base_url=f"{url}/v1", timeout=30)
        sem = asyncio.Semaphore(concurrency)
        done = []

        async def one(rec):
            async with sem:
                r = await client.chat.completions.create(model="bench", messages=messages_for(rec), n=1,
                                                         temperature=0.3, top_p=1.0, max_tokens=4096)
                done.append((rec["id"], r.choices[0].message.content))

        t0 = time.monotonic()
        await asyncio.gather(*(one(rec) for rec in records))
        seconds = time.monotonic() - t0
        await client.close()
        return len(done) / seconds

    with fake_server(latency) as url:
        return asyncio.run(go(url))


def misconfigured(kind, n_records=500):
    """reformat.py with default flags against one misconfigured endpoint: (exit code, seconds, stderr)."""
    from tests.servers.openai_fake import OpenAIFake

    records = make_records(n_records)
    with tempfile.TemporaryDirectory() as tmp:
        inp = os.path.join(tmp, "in.json")
        with open(inp, "w") as f:
            json.dump(records, f)
        servers = {"html": dict(html=True), "404 model": dict(refuse=(404, "The model `gpt-5-typo` does not exist")),
                   "insufficient_quota": dict(refuse=(429, "You exceeded your current quota", "insufficient_quota")),
                   "401": dict(api_key="right-key")}
        import socket
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed = sock.getsockname()[1]
        with OpenAIFake(**servers.get(kind, {}), max_seconds=300) as srv:
            url = {"closed port": f"http://127.0.0.1:{closed}/v1", "htp:// scheme": f"htp://127.0.0.1:{closed}/v1",
                   "html": srv.url}.get(kind, f"{srv.url}/v1")
            t0 = time.monotonic()
            r = subprocess.run([sys.executable, os.path.join(ROOT, "reformat.py"), "--input_data_path", inp,
                                "--output_directory", os.path.join(tmp, "out"), "--base_url", url, "--quiet"],
                               capture_output=True, text=True, timeout=600, cwd=ROOT,
                               env={**os.environ, "OPENAI_API_KEY": "sk-bench-wrong-key"})
            return r.returncode, time.monotonic() - t0, r.stderr.strip().splitlines()[-1:] or [""]


def goals(args):
    out = {}
    print("\nmisconfigured endpoint, 500 records, default flags (goal: exit 2 within 15 s)")
    print(f"{'endpoint':>20} {'exit':>5} {'seconds':>8}  first words of the line")
    for kind in ("closed port", "htp:// scheme", "html", "401", "404 model", "insufficient_quota"):
        code, secs, line = misconfigured(kind)
        out[kind] = {"exit": code, "seconds": secs, "stderr": line[0]}
        print(f"{kind:>20} {code:>5} {secs:>8.1f}  {line[0][:90]}")

    cap = run(args.goal_cap_records, None, args.latency, rpm_cap=600, headers=True)
    out["cap"] = cap
    print(f"\n600 RPM cap with x-ratelimit headers, {args.goal_cap_records} records, defaults "
          "(goal >= 93 % of the cap, <= 2 % 429, 0 lost)")
    print(f"{'seconds':>8} {'RPM':>7} {'of cap':>7} {'requests':>9} {'429s':>6} {'429 %':>6} {'lost':>5}")
    print(f"{cap['seconds']:>8.1f} {cap['rpm']:>7.0f} {cap['rpm'] / 600:>7.0%} {cap['requests']:>9} "
          f"{cap['http429']:>6} {cap['share429']:>6.1%} {cap['lost']:>5}")

    clean = run(args.random_records, None, args.latency)
    noisy = run(args.random_records, None, args.latency, random_429=0.2)
    out["random429"] = {"clean": clean, "noisy": noisy}
    print(f"\n20 % of requests answered 429 at random (Retry-After: 1), {args.random_records} records, defaults "
          "(goal >= 50 % of the fault-free rate)")
    print(f"{'server':>12} {'seconds':>8} {'records/s':>10} {'429s':>6} {'lost':>5}")
    for name, r in (("fault-free", clean), ("20 % 429", noisy)):
        print(f"{name:>12} {r['seconds']:>8.1f} {r['rec_per_s']:>10.2f} {r['http429']:>6} {r['lost']:>5}")
    print(f"rate with 20 % 429s: {noisy['rec_per_s'] / clean['rec_per_s']:.0%} of the fault-free rate")

    out["vs_loop"] = vs_loop(args)
    return out


def vs_loop(args):
    """realign and the plain loop, interleaved (realign, loop, loop, realign) so a change in the
    machine's load hits both; the best of two runs each."""
    print(f"\nin flight vs a plain AsyncOpenAI + Semaphore loop, latency {args.latency:g} s, best of 2 "
          "(goal: realign >= the loop)")
    print(f"{'in flight':>10} {'records':>8} {'realign rec/s':>14} {'loop rec/s':>11} {'ratio':>6}")
    rows = []
    for n in (600, 2560):
        for conc in (64, 128, 256):
            a = run(n, conc, args.latency)["rec_per_s"]
            ref = max(run_reference(n, conc, args.latency), run_reference(n, conc, args.latency))
            ours = max(a, run(n, conc, args.latency)["rec_per_s"])
            rows.append({"records": n, "in_flight": conc, "realign": ours, "loop": ref})
            print(f"{conc:>10} {n:>8} {ours:>14.2f} {ref:>11.2f} {ours / ref:>6.2f}", flush=True)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--latency", type=float, default=1.0, help="server seconds per answer")
    p.add_argument("--seq_records", type=int, default=10, help="records for the concurrency-1 run")
    p.add_argument("--par_records", type=int, default=1280, help="records for the concurrency-64 run")
    p.add_argument("--cap_records", type=int, default=300, help="records for each 600 RPM run")
    p.add_argument("--goal_cap_records", type=int, default=900, help="records for the goals' 600 RPM run")
    p.add_argument("--random_records", type=int, default=640, help="records for each random-429 run")
    p.add_argument("--only", choices=("speed", "cap", "goals", "loop"), default=None, help="one table only")
    p.add_argument("--json", default=None, help="also write the numbers here")
    args = p.parse_args()
    result = {}
    if args.only in (None, "goals"):
        result["goals"] = goals(args)
    if args.only == "loop":
        result["vs_loop"] = vs_loop(args)
    if args.only in (None, "speed"):
        result.update(speed(args))
    if args.only in (None, "cap"):
        result["capped"] = capped(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, default=str)


def speed(args):
    seq = run(args.seq_records, 1, args.latency)
    par = run(args.par_records, 64, args.latency)
    print(f"\nthroughput, server latency {args.latency:g} s, top_k 1")
    print(f"{'concurrency':>12} {'records':>8} {'seconds':>8} {'records/s':>10} {'lost':>5}")
    for conc, r in ((1, seq), (64, par)):
        print(f"{conc:>12} {r['records']:>8} {r['seconds']:>8.1f} {r['rec_per_s']:>10.2f} {r['lost']:>5}")
    ratio = par["rec_per_s"] / seq["rec_per_s"]
    print(f"ratio 64 vs 1: {ratio:.1f}x (goal >= 50x)")
    return {"sequential": seq, "concurrent": par, "ratio": ratio}


def capped(args):
    caps = {"x-ratelimit headers": run(args.cap_records, 64, args.latency, rpm_cap=600, headers=True),
            "Retry-After only": run(args.cap_records, 64, args.latency, rpm_cap=600),
            "and --rpm 600": run(args.cap_records, 64, args.latency, rpm_cap=600, client_rpm=600)}
    print(f"\nserver capped at 600 RPM, concurrency 64, latency {args.latency:g} s, {args.cap_records} records")
    print(f"{'client':>22} {'seconds':>8} {'RPM':>7} {'of cap':>7} {'requests':>9} {'429s':>6} {'429 %':>6} {'lost':>5}")
    for name, r in caps.items():
        print(f"{name:>22} {r['seconds']:>8.1f} {r['rpm']:>7.0f} {r['rpm'] / 600:>7.0%} {r['requests']:>9} "
              f"{r['http429']:>6} {r['share429']:>6.1%} {r['lost']:>5}")
    return caps


if __name__ == "__main__":
    main()
