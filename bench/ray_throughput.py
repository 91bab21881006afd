"""records/s of `reformat --engine ray` with 1, 2 and 4 Ray workers, as a ratio to one process.

    .venv/bin/python bench/ray_throughput.py            # ~2 minutes on 2 cores

Same engine and same fake OpenAI server (own process, fixed latency) as
bench/reformat_throughput.py, whose helpers this reuses. One local Ray cluster is started once
(4 logical CPUs, so four 1-CPU workers fit on this small machine); each row is one shard run
through `rewrite_shard`, timed from the first request to the last record written (cluster and
worker start-up are reported apart).

Table 1: latency-bound, each worker keeping `--per_worker` requests in flight (`--concurrency`
is the cluster-wide total, so W workers run at W x per_worker). The one-process baseline keeps
per_worker in flight; a last row gives one process at the 4-worker total, for reference.
Table 2: a server capped at `--cap_rpm` requests/minute (429 past it) and `--rpm` set to the same
value, with 2 and 4 workers: the cap is one shared budget, so the achieved RPM stays at the cap
and 429s stay rare however many workers there are.
"""

import argparse
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)                   # reformat_throughput's helpers
sys.path.insert(0, os.path.dirname(HERE))  # tests.servers, used by them

import ray  # noqa: E402

from reformat_throughput import fake_server, make_records, server_counts  # noqa: E402
from realign.files import read_jsonl_tolerant  # noqa: E402
from realign.lengths import approx_tokens  # noqa: E402
from realign.llm.base import BackendConfig, make_backend  # noqa: E402
from realign.ray.backend import RayBackend  # noqa: E402
from realign.rewrite import Settings, rewrite_shard  # noqa: E402


def measure(workers, n_records, concurrency, latency, rpm_cap=None, rpm=None):
    """One shard through the engine, locally (workers=0) or on Ray; a dict of measurements."""
    records = make_records(n_records)
    with tempfile.TemporaryDirectory() as tmp, fake_server(latency, rpm_cap) as url:
        out, fails = os.path.join(tmp, "out.jsonl"), os.path.join(tmp, "fail.jsonl")
        config = BackendConfig(model="bench", base_url=f"{url}/v1", api_key="bench", request_timeout=30)
        t0 = time.monotonic()
        if workers:
            backend, local_rpm = RayBackend("openai", config, workers=workers, rpm=rpm), None
        else:
            backend, local_rpm = make_backend("openai", config), rpm
        started = time.monotonic() - t0
        summary = rewrite_shard(records, backend, out, fails, Settings(top_k=1, concurrency=concurrency,
                                rpm=local_rpm, max_retries=8), approx_tokens, progress=False)
        written = {o["id"] for o in read_jsonl_tolerant(out)[0]}
        failed = {o["id"] for o in read_jsonl_tolerant(fails)[0]}
        counts = server_counts(url)
    total = sum(counts.values())
    return {"workers": workers, "concurrency": concurrency, "records": n_records, "start_s": started,
            "seconds": summary.seconds, "rec_per_s": len(written) / summary.seconds,
            "rpm": counts.get(200, 0) / summary.seconds * 60, "requests": total,
            "share429": counts.get(429, 0) / max(1, total), "lost": n_records - len(written | failed)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--latency", type=float, default=0.5, help="server seconds per answer")
    p.add_argument("--per_worker", type=int, default=16, help="requests in flight per worker")
    p.add_argument("--records", type=int, default=640)
    p.add_argument("--cap_rpm", type=int, default=1200)
    p.add_argument("--cap_records", type=int, default=300)
    args = p.parse_args()

    t0 = time.monotonic()
    ray.init(num_cpus=4, include_dashboard=False, logging_level="WARNING")
    print(f"local Ray cluster up in {time.monotonic() - t0:.1f} s")

    c = args.per_worker
    rows = [("one process", measure(0, args.records, c, args.latency))]
    rows += [(f"ray, {w} worker{'s' * (w > 1)}", measure(w, args.records, w * c, args.latency)) for w in (1, 2, 4)]
    rows.append(("one process (ref.)", measure(0, args.records, 4 * c, args.latency)))
    base = rows[0][1]["rec_per_s"]
    print(f"\nreformat, server latency {args.latency:g} s, {args.records} records, top_k 1")
    print(f"{'engine':>20} {'in flight':>9} {'start s':>8} {'run s':>6} {'records/s':>10} {'ratio':>6} {'lost':>5}")
    for name, r in rows:
        print(f"{name:>20} {r['concurrency']:>9} {r['start_s']:>8.1f} {r['seconds']:>6.1f} {r['rec_per_s']:>10.1f} "
              f"{r['rec_per_s'] / base:>5.2f}x {r['lost']:>5}")

    print(f"\nserver capped at {args.cap_rpm} RPM, --rpm {args.cap_rpm}, latency {args.latency:g} s, "
          f"{args.cap_records} records, {c} in flight per worker")
    print(f"{'engine':>20} {'RPM':>7} {'of cap':>7} {'requests':>9} {'429 %':>6} {'lost':>5}")
    for w in (2, 4):
        r = measure(w, args.cap_records, w * c, args.latency, rpm_cap=args.cap_rpm, rpm=args.cap_rpm)
        print(f"{f'ray, {w} workers':>20} {r['rpm']:>7.0f} {r['rpm'] / args.cap_rpm:>7.0%} {r['requests']:>9} "
              f"{r['share429']:>6.1%} {r['lost']:>5}")
    ray.shutdown()


if __name__ == "__main__":
    main()
