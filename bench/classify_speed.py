"""Speed, load time, size and accuracy of the embedded task classifier.

    python bench/classify_speed.py [--model_dir DIR] [--reference_dir DIR] [--repeat 3]

Prints one table per model (the shipped one, then --reference_dir, e.g. the previous model
checked out from git, measured in the same run): artifact size, cold load time (fresh
interpreter: imports + model), then for our held-out set, the cross-check set, the realistic
set (instructions written apart from the training data, in the style of Alpaca / ShareGPT / No
Robots prompts; the realistic set also in their natural task mix) and the agreed prompts of the
independent check set (bench/classify_check.py): accuracy, macro-F1,
instructions per second (wall clock) and CPU milliseconds per instruction. The machine's
load average is printed too: on a shared machine other work slows the wall-clock rate down;
CPU time per instruction moves much less, and 1000 * cores / (CPU ms) is the rate an idle
machine reaches when the encoder's workers scale across its cores.
"""

import argparse
import os
import subprocess
import sys
import time

from realign.classifier.data import load_labeled
from realign.classifier.encoder import SentenceEncoder
from realign.classifier.metrics import accuracy, macro_f1
from realign.classifier.model import DEFAULT_MODEL_DIR, TaskClassifier

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from classify_check import check_set  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETS = {
    "held-out": os.path.join(ROOT, "datasets", "classification", "task_classifier_test_dataset.json"),
    "cross-check": os.path.join(ROOT, "bench", "data", "classify_crosscheck.json"),
    "realistic": os.path.join(ROOT, "bench", "data", "classify_realistic_eval.json"),
}

COLD_LOAD = """
import time; t = time.perf_counter()
from realign.classifier.model import TaskClassifier
m = TaskClassifier.load({folder!r}); m._encoder()
print(time.perf_counter() - t)
"""


def folder_mb(folder):
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)) / 1e6


def cold_load_seconds(folder):
    out = subprocess.run([sys.executable, "-c", COLD_LOAD.format(folder=folder)], capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def labelled_sets():
    sets = {name: load_labeled(path) for name, path in SETS.items()}
    _, texts, writer, second = check_set()
    agreed = [i for i in range(len(texts)) if writer[i] == second[i]]
    sets["check"] = ([texts[i] for i in agreed], [writer[i] for i in agreed])
    return sets


def measure(folder, sets, repeat):
    print(f"\n{os.path.relpath(folder, ROOT)}: artifact {folder_mb(folder):.1f} MB, cold load "
          f"{cold_load_seconds(folder):.2f} s (fresh python: imports + model)")
    model = TaskClassifier.load(folder)
    model.predict(["warm up"])
    print(f"{'set':<12} {'n':>5} {'accuracy':>9} {'macro-F1':>9} {'instr/s':>8} {'cpu ms':>7} {'avg chars':>10}")
    for name, (texts, gold) in sets.items():
        best, cpu = float("inf"), float("inf")
        for _ in range(repeat):
            start, start_cpu = time.perf_counter(), time.process_time()
            pred = model.predict(texts)
            best = min(best, time.perf_counter() - start)
            cpu = min(cpu, time.process_time() - start_cpu)
        chars = sum(map(len, texts)) / len(texts)
        print(f"{name:<12} {len(texts):>5} {accuracy(gold, pred):>9.1%} {macro_f1(gold, pred):>9.3f} "
              f"{len(texts) / best:>8.0f} {1000 * cpu / len(texts):>7.1f} {chars:>10.0f}", flush=True)
    texts = sets["held-out"][0]
    print("held-out, by part:", end="")
    weights = model._weights  # made by the predict() above
    for label, run in (("n-grams", lambda: [block.dot(texts, w) for block, w in zip(model.blocks.values(), weights)]),
                       ("encoder, 1 worker", lambda: SentenceEncoder(folder, workers=1).encode(texts)),
                       (f"encoder, {model._encoder().workers} workers", lambda: model._encoder().encode(texts))):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        print(f"  {label} {len(texts) / wall:.0f}/s ({1000 * cpu / len(texts):.1f} cpu ms)", end="")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model_dir", default=DEFAULT_MODEL_DIR)
    ap.add_argument("--reference_dir", default=None, help="a second model measured in the same run")
    ap.add_argument("--repeat", type=int, default=3, help="timed passes over each set (best one is kept)")
    args = ap.parse_args()

    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at start")
    sets = labelled_sets()
    for folder in [args.model_dir] + ([args.reference_dir] if args.reference_dir else []):
        measure(folder, sets, args.repeat)
    print(f"\nload average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
