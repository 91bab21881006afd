"""Benchmark: the embedded local model (`--backend local`) on demo records — tok/s and s/rewrite.

    python bench/local_backend.py [--records 3] [--threads 2] [--model PATH.gguf]

Classifies datasets/demo/demo_alpaca.json with classify.py (embedded), takes its first records
whose task is rewritten, rewrites each once through the same prompt and parser reformat.py
uses (no evidence), and prints a table: seconds, prompt and generated tokens with their tok/s,
and whether the reply parsed. Model load (and the one-time join of the model parts) is timed
separately. Other processes on the machine change these numbers a lot (llama.cpp threads wait
on each other), so the load average is printed beside them.
"""

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time

from realign.constant import REWRITE_TASKS
from realign.llm.base import BackendConfig, Request, Sampling
from realign.llm.local_gguf import LocalGGUFBackend
from realign.prompts import build_rewrite_messages, parse_reply
from realign.records import answer, category, load_records, question

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "datasets", "demo", "demo_alpaca.json")


def classified_demo():
    """The demo records with the categories classify.py gives them."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "classified.json")
        subprocess.run([sys.executable, os.path.join(ROOT, "classify.py"), "--input_data_path", DEMO,
                        "--output_path", out, "--quiet"], check=True, capture_output=True)
        return load_records(out)


async def rewrite_one(backend, rec, task):
    request = Request(key=rec["id"], messages=build_rewrite_messages(task, question(rec), answer(rec)),
                      sampling=Sampling(n=1, temperature=0.3, max_tokens=1024))
    before = backend.tokens_in, backend.prompt_seconds, backend.tokens_out, backend.gen_seconds
    started = time.monotonic()
    [completion] = await backend.generate(request)
    wall = time.monotonic() - started
    p_tok, p_s, g_tok, g_s = (now - then for now, then in zip(
        (backend.tokens_in, backend.prompt_seconds, backend.tokens_out, backend.gen_seconds), before))
    return wall, int(p_tok), p_tok / p_s if p_s else 0.0, int(g_tok), g_tok / g_s if g_s else 0.0, \
        parse_reply(completion.text) is not None


async def rewrite_all(backend, records):
    rows = []
    for rec in records:
        task = category(rec)
        wall, p_tok, p_tps, g_tok, g_tps, ok = await rewrite_one(backend, rec, task)
        rows.append(wall)
        print(f"{task:<26} {wall:9.1f} {p_tok:7d} {p_tps:7.1f} {g_tok:6d} {g_tps:6.1f} {'yes' if ok else 'NO'}",
              flush=True)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", default="default", help="a .gguf path; default: the bundled model")
    args = p.parse_args()

    started = time.monotonic()
    backend = LocalGGUFBackend(BackendConfig(model=args.model, options={"threads": args.threads}))
    load_s = time.monotonic() - started
    records = [rec for rec in classified_demo() if category(rec) in REWRITE_TASKS][: args.records]

    print(f"model {os.path.basename(backend.model_path)}, {args.threads} thread(s), load {load_s:.1f} s")
    print(f"load average before: {os.getloadavg()[0]:.2f} (other processes slow this down)")
    print(f"{'task':<26} {'s/rewrite':>9} {'prompt':>7} {'tok/s':>7} {'output':>6} {'tok/s':>6} parsed")
    rows = asyncio.run(rewrite_all(backend, records))
    prompt_tps = backend.tokens_in / backend.prompt_seconds if backend.prompt_seconds else 0.0
    print(f"mean {sum(rows) / len(rows):.1f} s/rewrite over {len(rows)} rewrite(s); "
          f"{backend.tokens_per_second:.1f} tok/s generation, {prompt_tps:.1f} tok/s prompt; "
          f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
