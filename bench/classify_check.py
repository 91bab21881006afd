"""The embedded classifier on the independent check set, and how well its confidence is calibrated.

    python bench/classify_check.py [--model_dir DIR] [--reference_dir DIR]

The check set (bench/data/classify_check/) is 340 prompts in the style of real use, written by
someone who had read only the taxonomy (shared/taxonomy.md) and never saw our training data,
then labelled by that writer and, blind, by a second labeller. The model never trains on it.

Prints:
  1. labeller agreement: raw and Cohen's kappa;
  2. accuracy on the prompts both labellers agree on (and, for reference, against each one's
     labels on all prompts), beside a reference model when --reference_dir is given (e.g. the
     previous model, checked out from git);
  3. accuracy by task on the agreed prompts, and the confusions that remain;
  4. calibration: a reliability table and the expected calibration error of the confidence,
     on our held-out set (datasets/classification/task_classifier_test_dataset.json) and on the
     agreed check prompts; then accuracy against coverage for --min_confidence.
"""

import argparse
import json
import os
import sys

from realign.classifier.data import load_labeled
from realign.classifier.metrics import accuracy, cohen_kappa, confused_pairs, coverage_report, reliability
from realign.classifier.model import DEFAULT_MODEL_DIR, TaskClassifier
from realign.constant import TASKS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECK = os.path.join(ROOT, "bench", "data", "classify_check")
HELD_OUT = os.path.join(ROOT, "datasets", "classification", "task_classifier_test_dataset.json")


def read(name):
    with open(os.path.join(CHECK, name), encoding="utf-8") as f:
        return json.load(f)


def check_set():
    """(ids, texts, writer labels, second labels) in prompt order."""
    prompts = read("prompts.json")
    writer = {row["id"]: row["category"] for row in read("labels_writer.json")}
    second = {row["id"]: row["category"] for row in read("labels_second.json")}
    ids = [p["id"] for p in prompts]
    return ids, [p["instruction"] for p in prompts], [writer[i] for i in ids], [second[i] for i in ids]


def by_task(gold, pred):
    """{task: (n, right)} over the gold labels."""
    table = {}
    for g, p in zip(gold, pred):
        n, right = table.get(g, (0, 0))
        table[g] = (n + 1, right + (g == p))
    return table


def print_reliability(name, gold, pred, confidence):
    rows, ece = reliability(gold, pred, confidence)
    print(f"\ncalibration on {name} (n={len(gold)}): ECE {ece:.3f}")
    print(f"  {'confidence':>11} {'n':>5} {'mean conf':>10} {'accuracy':>9}")
    for lo, hi, n, conf, acc in rows:
        print(f"  {lo:>4.1f}-{hi:<4.1f}  {n:>5} {conf:>10.2f} {acc:>9.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model_dir", default=DEFAULT_MODEL_DIR)
    ap.add_argument("--reference_dir", default=None, help="a second model to print beside (e.g. the previous one)")
    args = ap.parse_args()

    ids, texts, writer, second = check_set()
    agree = [i for i in range(len(ids)) if writer[i] == second[i]]
    print(f"check set: {len(ids)} prompts, {len(set(writer))} tasks (writer's labels)")
    print(f"labeller agreement: {len(agree) / len(ids):.1%} raw, Cohen's kappa {cohen_kappa(writer, second):.3f}; "
          f"{len(agree)} prompts labelled alike")

    gold = [writer[i] for i in agree]
    models = [("model", args.model_dir)] + ([("reference", args.reference_dir)] if args.reference_dir else [])
    results = {}
    print(f"\n{'model':<10} {'agreed':>7} {'vs writer':>10} {'vs second':>10}   folder")
    for name, folder in models:
        labels, confidence = TaskClassifier.load(folder).classify(texts)
        results[name] = (labels, confidence)
        agreed = [labels[i] for i in agree]
        print(f"{name:<10} {accuracy(gold, agreed):>7.1%} {accuracy(writer, labels):>10.1%} "
              f"{accuracy(second, labels):>10.1%}   {os.path.relpath(folder, ROOT)}")

    labels, confidence = results["model"]
    pred = [labels[i] for i in agree]
    conf = [confidence[i] for i in agree]
    table = by_task(gold, pred)
    ref = by_task(gold, [results["reference"][0][i] for i in agree]) if "reference" in results else {}
    print(f"\nby task, agreed prompts:\n  {'task':<34} {'n':>3} {'model':>6}" + (f" {'ref':>6}" if ref else ""))
    for task in TASKS:
        if task in table:
            n, right = table[task]
            print(f"  {task:<34} {n:>3} {right / n:>6.0%}" + (f" {ref[task][1] / n:>6.0%}" if ref else ""))
    print("\nconfusions that remain (gold -> predicted, agreed prompts):")
    for (g, p), n in confused_pairs(gold, pred, top=15):
        print(f"  {n:>3}  {g} -> {p}")

    held_texts, held_gold = load_labeled(HELD_OUT)
    held_labels, held_conf = TaskClassifier.load(args.model_dir).classify(held_texts)
    print_reliability("our held-out set", held_gold, held_labels, held_conf)
    print_reliability("the agreed check prompts", gold, pred, conf)
    print("\nheld-out set, " + coverage_report(held_gold, held_labels, held_conf))
    print("\nagreed check prompts, " + coverage_report(gold, pred, conf))
    return 0


if __name__ == "__main__":
    sys.exit(main())
