"""Benchmark: what the embedded model's rewrites of the demo set turn into, before and after.

    python bench/demo_trust.py [--reference main] [--work_dir DIR] [--threads 1] [--rules open_platypus]

Runs the demo pipeline (classify -> retrieval with BM25 -> reformat with `--backend local` at
temperature 0, --target_length 512 -> merge -> filter) twice from the same classified and
retrieved file: once with this tree's code, once with a reference tree (`--reference`, a git
ref, extracted with `git archive`: the code before a change). Prints one table row per tree:
records rewritten, failed (and why), kept as the original on purpose, and rewrites accepted
by the filter. Then every accepted rewrite of this tree beside its original, with the numbers
and capitalised words that are in none of question, original and evidence, to be read by a
person: only reading tells a stated fact from a heading.

Reformat resumes, so a rerun with the same --work_dir reuses the rewrites (and only retries
failures; --reuse skips reformat altogether, to try other filter rules on the same rewrites);
delete the folder to measure from scratch. The model run takes minutes per tree on two cores.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "datasets", "demo", "demo_alpaca.json")


def run(tree, shim, script, *args, log=None):
    """One step of `tree` as a subprocess with its own `realign` package; returns its stdout."""
    env = {**os.environ, "PYTHONPATH": shim, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, os.path.join(tree, script), *map(str, args)], cwd=tree, env=env,
                          capture_output=True, text=True)
    if log:
        with open(log, "a") as f:
            f.write(f"$ {script} {' '.join(map(str, args))}\n{proc.stdout}{proc.stderr}\n")
    if proc.returncode not in (0, 1):
        sys.exit(f"{script} failed in {tree}:\n{proc.stderr[-2000:]}")
    return proc.stdout


def extract(ref, dest):
    """The tree of git ref `ref` in `dest`, with a shim folder so `import realign` finds its code."""
    tree, shim = os.path.join(dest, "tree"), os.path.join(dest, "shim")
    if not os.path.isdir(tree):
        os.makedirs(tree)
        archive = subprocess.run(["git", "-C", ROOT, "archive", ref], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
        os.makedirs(shim)
        os.symlink(os.path.join(tree, "code"), os.path.join(shim, "realign"))
    return tree, shim


def pipeline(name, tree, shim, retrieved, work, threads, rules, reuse=False):
    """reformat -> merge -> filter with one tree's code; returns (counts, merged, final, seconds)."""
    out, merged, final = (os.path.join(work, name, p) for p in ("reformat", "merged.json", "final.json"))
    log = os.path.join(work, name, "log.txt")
    os.makedirs(os.path.join(work, name), exist_ok=True)
    started = time.monotonic()
    if not (reuse and os.path.isdir(out)):
        run(tree, shim, "reformat.py", "--backend", "local", "--threads", threads, "--temperature", 0,
            "--target_length", 512, "--input_data_path", retrieved, "--output_directory", out, "--quiet", log=log)
    seconds = time.monotonic() - started
    run(tree, shim, "parallel_data_merge.py", "--input_data_path", retrieved, "--output_directory", out,
        "--final_output_path", merged, log=log)
    run(tree, shim, "rewrite_data_selection.py", "--input_original_data_path", retrieved,
        "--input_rewrite_data_path", merged, "--output_path", final, "--rules", rules, log=log)
    shard = [json.loads(line) for line in open(os.path.join(out, "rewrite_data_0_of_1_batch.jsonl"))]
    failures = [json.loads(line) for line in open(os.path.join(out, "failures_0_of_1.jsonl"))]
    with open(final) as f:
        final_records = json.load(f)
    counts = {
        "rewritten": sum("revised_response" in r["items"][1] for r in shard),
        "failed": len(failures),
        "why": Counter(re.sub(r" \(after \d+ attempts\)", "", f["reason"])[:50] for f in failures),
        "kept": Counter(r["items"][1]["kept_original"] for r in shard if r["items"][1].get("kept_original")),
        "accepted": sum(r.get("tag") == "rewrite" for r in final_records),
    }
    return counts, final_records, seconds


_WORD = re.compile(r"\b(?:\d[\d,.]*\d|\d|[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*)\b")


def unsupported(rewrite, *sources):
    """Numbers and capitalised words of `rewrite` found in none of the sources (a reading aid)."""
    known = " ".join(sources).lower()
    return sorted({w for w in _WORD.findall(rewrite) if w.lower() not in known})


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", default="main", help="git ref of the code to compare against")
    p.add_argument("--work_dir", default=None, help="keep the runs here (reruns reuse the rewrites)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rules", default="open_platypus", help="filter preset for both trees")
    p.add_argument("--reuse", action="store_true", help="keep the rewrites already in --work_dir (no model run)")
    p.add_argument("--show", type=int, default=100, help="accepted rewrites of this tree to print")
    args = p.parse_args()
    work = args.work_dir or tempfile.mkdtemp(prefix="demo_trust_")
    os.makedirs(work, exist_ok=True)
    here_shim = os.path.join(work, "here_shim")
    if not os.path.isdir(here_shim):
        os.makedirs(here_shim)
        os.symlink(os.path.join(ROOT, "code"), os.path.join(here_shim, "realign"))
    ref_tree, ref_shim = extract(args.reference, os.path.join(work, "reference"))

    classified, retrieved = os.path.join(work, "classified.json"), os.path.join(work, "retrieval.json")
    if not os.path.exists(os.path.join(work, "retrieval_clean_evidence.json")):
        run(ROOT, here_shim, "classify.py", "--input_data_path", DEMO, "--output_path", classified, "--quiet")
        run(ROOT, here_shim, "retrieval.py", "--input_data_path", classified, "--output_path", retrieved,
            "--backend", "bm25", "--corpus_path", os.path.join(ROOT, "datasets", "corpus"))
    retrieved = os.path.join(work, "retrieval_clean_evidence.json")
    with open(retrieved) as f:
        originals = {r["id"]: r for r in json.load(f)}

    print(f"demo set: {len(originals)} records; embedded model, temperature 0, --target_length 512, "
          f"{args.threads} thread(s), rules {args.rules}; load average {os.getloadavg()[0]:.1f}; work dir {work}")
    print(f"{'code':<22} {'rewritten':>9} {'failed':>6} {'kept':>5} {'accepted':>8} {'reformat s':>10}  failures / kept")
    results = {}
    for name, tree, shim in ((f"reference ({args.reference})", ref_tree, ref_shim), ("this tree", ROOT, here_shim)):
        counts, final, seconds = pipeline(name.split()[0], tree, shim, retrieved, work, args.threads, args.rules,
                                          args.reuse)
        results[name] = final
        why = ", ".join(f"{n} {w}" for w, n in (counts["why"] + counts["kept"]).most_common()) or "-"
        print(f"{name:<22} {counts['rewritten']:>9} {counts['failed']:>6} {sum(counts['kept'].values()):>5} "
              f"{counts['accepted']:>8} {'-' if args.reuse else format(seconds, '.0f'):>10}  {why}", flush=True)

    print("\naccepted rewrites of this tree, with words and numbers in none of question, original, evidence:")
    shown = 0
    for rec in results["this tree"]:
        if rec.get("tag") != "rewrite" or shown >= args.show:
            continue
        shown += 1
        orig = originals[rec["id"]]
        q, o = orig["items"][0]["value"], orig["items"][1]["value"]
        ev = " ".join(orig["items"][0].get("evidence") or [])
        new = unsupported(rec["items"][1]["value"], q, o, ev)
        print(f"\n--- id {rec['id']} ({orig['items'][0].get('category')}); not in the sources: {new or 'none'}")
        print(f"ORIGINAL: {o}\nREWRITE:  {rec['items'][1]['value']}")
    print(f"\nload average at end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
