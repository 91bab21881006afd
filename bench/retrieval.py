"""Benchmark: retrieval.py throughput, Serper against a local fake and BM25 on a synthetic corpus.

    python bench/retrieval.py [--records 2000] [--latency 0.1] [--docs 50000]

1. serper: `--records` records (a third of them RAG-task) in a bigger file (`--padding` extra
   non-RAG records, so the per-batch checkpoints have real weight), run as a subprocess against
   tests/servers/serper_fake.py answering every request after `--latency` seconds; once per
   batch size. The ideal is batch_size / latency requests a second.
2. bm25: index `--docs` synthetic documents (build, then reuse from disk), then 1000 queries.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from realign.search.bm25 import Bm25Corpus  # noqa: E402
from tests.servers.serper_fake import SerperFake  # noqa: E402

WORDS = ("river mountain coffee egg bread yeast sleep vitamin python git index ocean desert moon "
         "planet rain leaf tree volcano earthquake passport train museum recipe oven salt sugar "
         "protein fibre muscle heart brain light sound wave atom cell gene virus bacteria").split()


def make_records(n_rag, padding, rng):
    records = []
    for i in range(n_rag * 3 + padding):
        cat = "open_qa" if i % 3 == 0 and i < n_rag * 3 else "poem_generation"
        q = f"q{i}: " + " ".join(rng.choice(WORDS) for _ in range(8))
        records.append({"id": f"id-{i}", "items": [{"from": "human", "value": q, "category": cat},
                                                   {"from": "gpt", "value": "an answer " * 40}]})
    return records


def bench_serper(folder, args):
    rng = random.Random(0)
    inp = os.path.join(folder, "in.json")
    records = make_records(args.records, args.padding, rng)
    with open(inp, "w") as f:
        json.dump(records, f)
    size_mb = os.path.getsize(inp) / 1e6
    print(f"serper: {args.records} RAG records in a file of {len(records)} records ({size_mb:.0f} MB), "
          f"server latency {args.latency:g} s")
    print(f"{'batch':>6} {'seconds':>8} {'records/s':>10} {'ideal/s':>8}")
    for batch in (10, 50):
        out = os.path.join(folder, f"out_{batch}.json")
        with SerperFake(api_key="bench-key", delay=args.latency, max_seconds=600) as srv:
            t = time.monotonic()
            p = subprocess.run([sys.executable, os.path.join(ROOT, "retrieval.py"), "--input_data_path", inp,
                                "--output_path", out, "--batch_size", str(batch), "--serper_url", srv.url + "/search"],
                               env=dict(os.environ, SERPER_API_KEY="bench-key"), capture_output=True, text=True)
            dt = time.monotonic() - t
        assert p.returncode == 0, p.stderr[-2000:]
        print(f"{batch:>6} {dt:>8.2f} {args.records / dt:>10.0f} {batch / args.latency:>8.0f}")


def bench_bm25(folder, args):
    rng = random.Random(1)
    corpus = os.path.join(folder, "corpus.jsonl")
    with open(corpus, "w") as f:
        for i in range(args.docs):
            f.write(json.dumps({"title": f"doc {i}", "text": " ".join(rng.choice(WORDS) for _ in range(60))}) + "\n")
    t = time.monotonic()
    built = Bm25Corpus(corpus)
    t_build = time.monotonic() - t
    t = time.monotonic()
    reused = Bm25Corpus(corpus)
    t_load = time.monotonic() - t
    assert built.rebuilt and not reused.rebuilt
    queries = [" ".join(rng.choice(WORDS) for _ in range(6)) for _ in range(1000)]
    t = time.monotonic()
    reused.search_many(queries, 5)
    t_query = time.monotonic() - t
    print(f"\nbm25: {args.docs} documents of 60 words")
    print(f"{'build s':>8} {'reuse s':>8} {'queries/s':>10}")
    print(f"{t_build:>8.2f} {t_load:>8.2f} {len(queries) / t_query:>10.0f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--records", type=int, default=2000)
    p.add_argument("--padding", type=int, default=20000)
    p.add_argument("--latency", type=float, default=0.1)
    p.add_argument("--docs", type=int, default=50000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        bench_serper(folder, args)
        bench_bm25(folder, args)


if __name__ == "__main__":
    main()
