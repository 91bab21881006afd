"""The embedded classifier on prompts written by people: calibrate it on one part, measure it on the other.

    python bench/classify_human.py report --texts human_prompts.jsonl [--model_dir DIR] [--reference_dir DIR]
    python bench/classify_human.py build  --texts human_prompts.jsonl [--gair gair_prompts.jsonl] [--save_model DIR] [--dev_only]
    python bench/classify_human.py split  --texts human_prompts.jsonl --out DIR   # the files `build` uses

The set is bench/data/classify_human/: about a thousand public prompts written by people
(self-instruct's user-oriented instructions, Vicuna and MT-bench questions, Koala, WizardLM,
LIMA and Dolly prompts), labelled with shared/taxonomy.md by two labellers who did not see each
other's labels (labels_a.json, labels_b.json). Only the index and the labels are committed; the
texts are rebuilt with bench/classify_human_set.py (--texts is its output).

The split is fixed by the prompt's uid: a third of the prompts (sha1(uid) % 3 == 0) is the TEST
part, never trained on, never used to fit anything, never read prompt by prompt while building
the model; the rest is the DEV part. `build` trains the shipped model
(`classify.py --train ... --calibrate ALL`): the temperature, class bias and confidence map are
fitted on every source but Koala, on scores from models that did not see the prompt's source
(one source left out at a time), and the prompts whose licence allows it (self-instruct, Vicuna,
MT-bench: Apache-2.0; Dolly: CC BY-SA 3.0; not Koala, WizardLM or LIMA) are trained on as well.
Such a model has seen TEST, so its held-out numbers come from bench/classify_sources.py (each
source measured by a model built without it); `build --dev_only` makes the older DEV-only model
that `report` can measure on TEST. `report` measures a model on TEST against each labeller and against both (a prompt the two
labelled differently counts half right for either label: the confidence estimates agreement with
a labeller), and prints the accuracy-against-coverage table and the reliability of the confidence.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict

import numpy as np

from realign.classifier.metrics import cohen_kappa, reliability
from realign.classifier.model import DEFAULT_MODEL_DIR, TaskClassifier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HUMAN = os.path.join(ROOT, "bench", "data", "classify_human")
GAIR = os.path.join(ROOT, "bench", "data", "classify_gair")
TRAIN = os.path.join(ROOT, "datasets", "classification", "task_classifier_train_dataset.json")
# licences that allow training; GAIR's prompts were published as the task classifier's training data
GAIR_SOURCES = ("gair_a", "gair_b")  # the two fixed halves of the original's prompts (gair_group)
TRAINABLE_SOURCES = ("self_instruct", "vicuna", "mt_bench", "dolly", *GAIR_SOURCES)
NOT_FITTED = ("koala",)  # its authors ask that it not be trained on: never fitted on, only measured
WEAK = ("default", "open_qa", "advice_giving", "rejecting", "general_classification", "language_classification")
OVER = ("topic_classification", "ml_ai_language_model_tutor", "code_to_text_translation", "text_summarization")
THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)


def part(uid):
    """"test" for a third of the prompts, fixed by the uid; "dev" for the rest."""
    return "test" if int(hashlib.sha1(uid.encode("utf-8")).hexdigest(), 16) % 3 == 0 else "dev"


def load_set(texts_path, gair_path=None):
    """[{uid, source, text, labels: [label A, label B]}] for the prompts whose text is in texts_path
    (labels: whichever labellers' files exist), and with gair_path the GAIR prompts after them
    (see load_gair)."""
    prompts, labellers = _load_human(texts_path)
    if gair_path:
        prompts += load_gair(gair_path, len(labellers), {_norm(p["text"]) for p in prompts})
    return prompts, labellers


def _norm(text):
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split())


def gair_group(uid):
    """"gair_a" or "gair_b": two fixed halves, so that one half is measured by a model trained on
    the other, as the original's test set stands to its training set."""
    return GAIR_SOURCES[int(hashlib.sha1(uid.encode("utf-8")).hexdigest(), 16) % 2]


def load_gair(texts_path, n_labels, exclude=()):
    """The original project's public classifier training prompts (bench/data/classify_gair), each
    with the original's own label (repeated n_labels times, to stand beside two labellers), in two
    halves (gair_group). A prompt whose text, lower-cased without punctuation, is in `exclude` (one
    of our human-written prompts) is left out, so that no text is on both sides of a held-out source."""
    with open(texts_path, encoding="utf-8") as f:
        texts = {row["uid"]: row["text"] for row in map(json.loads, filter(str.strip, f))}
    with open(os.path.join(GAIR, "index.json"), encoding="utf-8") as f:
        index = json.load(f)
    return [{"uid": r["uid"], "source": gair_group(r["uid"]), "text": texts[r["uid"]],
             "labels": [r["category"]] * n_labels}
            for r in index if r["uid"] in texts and _norm(texts[r["uid"]]) not in exclude]


def _load_human(texts_path):
    with open(texts_path, encoding="utf-8") as f:
        texts = {row["uid"]: row for row in map(json.loads, filter(str.strip, f))}
    labellers = [name for name in ("labels_a.json", "labels_b.json") if os.path.exists(os.path.join(HUMAN, name))]
    labels = defaultdict(list)
    for name in labellers:
        with open(os.path.join(HUMAN, name), encoding="utf-8") as f:
            for row in json.load(f):
                labels[row["uid"]].append(row["category"])
    with open(os.path.join(HUMAN, "index.json"), encoding="utf-8") as f:
        index = json.load(f)
    missing = [r["uid"] for r in index if r["uid"] not in texts]
    if missing:
        print(f"warning: {len(missing)} prompts have no text in {texts_path} (first {missing[0]}); left out",
              file=sys.stderr)
    return [{"uid": r["uid"], "source": r["source"], "text": texts[r["uid"]]["text"], "labels": labels[r["uid"]]}
            for r in index if r["uid"] in texts and len(labels[r["uid"]]) == len(labellers)], labellers


def real_rows(prompts, trainable=True, group=False):
    """Rows of the --calibrate format: one per distinct label of a prompt, weights summing to 1
    (with `group`, each row's group is its source: calibration folds leave one source out)."""
    rows = []
    for p in prompts:
        counts = Counter(p["labels"])
        for label, n in counts.items():
            rows.append({"instruction": p["text"], "category": label, "weight": n / len(p["labels"]),
                         "train": trainable and p["source"] in TRAINABLE_SOURCES,
                         **({"group": p["source"]} if group else {})})
    return rows


def soft_right(pred, labels):
    """Share of the labellers who gave `pred`."""
    return sum(label == pred for label in labels) / len(labels)


# ---------------------------------------------------------------- report

def coverage_rows(right, confidence, thresholds=THRESHOLDS):
    rows = []
    for t in thresholds:
        kept = confidence >= t
        rows.append((t, kept.mean(), right[kept].mean() if kept.any() else float("nan"), int(kept.sum())))
    return rows


def report_model(name, folder, test):
    model = TaskClassifier.load(folder)
    if model.meta.get("calibration", {}).get("file") == "human_all.json":
        print(f"warning: {folder} was fitted on every source, TEST included: these numbers are not held out; "
              "bench/classify_sources.py gives held-out ones, or build with --dev_only", file=sys.stderr)
    texts = [p["text"] for p in test]
    start = time.monotonic()
    pred, conf = model.classify(texts)
    seconds = time.monotonic() - start
    conf = np.array(conf)
    soft = np.array([soft_right(y, p["labels"]) for y, p in zip(pred, test)])
    by_labeller = [np.mean([y == p["labels"][k] for y, p in zip(pred, test)]) for k in range(len(test[0]["labels"]))]
    agreed = [i for i, p in enumerate(test) if len(set(p["labels"])) == 1]
    print(f"\n== {name}: {os.path.relpath(folder, ROOT)}  ({len(test)} TEST prompts in {seconds:.1f} s)")
    print("accuracy: " + ", ".join(f"vs labeller {'AB'[k]} {a:.1%}" for k, a in enumerate(by_labeller))
          + f", vs both (half for a split label) {soft.mean():.1%}, on the {len(agreed)} prompts both labelled "
            f"alike {soft[agreed].mean():.1%}")
    print("\naccuracy against coverage (vs both labellers):")
    print(f"  {'confidence >=':>13} {'coverage':>9} {'accuracy':>9} {'n':>5}")
    for t, cov, acc, n in coverage_rows(soft, conf):
        print(f"  {t:>13.2f} {cov:>9.1%} {acc:>9.1%} {n:>5}")
    # reliability against the soft labels: each prompt counts its share of labellers as right
    rows, ece = reliability_soft(soft, conf)
    print(f"\nreliability (vs both labellers): ECE {ece:.3f}")
    print(f"  {'confidence':>11} {'n':>5} {'mean conf':>10} {'accuracy':>9}")
    for lo, hi, n, c, a in rows:
        print(f"  {lo:>4.1f}-{hi:<4.1f}  {n:>5} {c:>10.2f} {a:>9.2f}")
    by_source = defaultdict(list)
    for s, p in zip(soft, test):
        by_source[p["source"]].append(s)
    print("\nby source: " + ", ".join(f"{k} {np.mean(v):.0%} (n={len(v)})" for k, v in sorted(by_source.items())))
    gold_a = [p["labels"][0] for p in test]
    print("\nthe issue's weak spots (recall vs labeller A, n):  "
          + ", ".join(f"{t} {recall(gold_a, pred, t)}" for t in WEAK))
    print("over-predicted before (predicted / labelled by A):  "
          + ", ".join(f"{t} {pred.count(t)}/{gold_a.count(t)}" for t in OVER))
    return pred, conf, soft


def recall(gold, pred, task):
    n = gold.count(task)
    return f"{sum(g == p == task for g, p in zip(gold, pred)) / n:.0%} ({n})" if n else "- (0)"


def reliability_soft(soft, conf, bins=10):
    """metrics.reliability with a share of right per prompt instead of right/wrong."""
    rows, gap = [], 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = (conf >= lo) & ((conf < hi) | (b == bins - 1))
        if inside.any():
            c, a = conf[inside].mean(), soft[inside].mean()
            rows.append((lo, hi, int(inside.sum()), c, a))
            gap += inside.sum() * abs(c - a)
    return rows, gap / len(conf)


def report(args):
    prompts, labellers = load_set(args.texts)
    test = [p for p in prompts if part(p["uid"]) == "test"]
    print(f"human-written set: {len(prompts)} prompts labelled by {len(labellers)} labeller(s) "
          f"({', '.join(labellers)}); TEST part {len(test)}, DEV part {len(prompts) - len(test)}")
    if len(labellers) > 1:
        a, b = [p["labels"][0] for p in test], [p["labels"][1] for p in test]
        print(f"labeller agreement on TEST: {np.mean([x == y for x, y in zip(a, b)]):.1%} raw, "
              f"Cohen's kappa {cohen_kappa(a, b):.3f}")
    report_model("model", args.model_dir, test)
    if args.reference_dir:
        report_model("reference", args.reference_dir, test)
    return 0


# ---------------------------------------------------------------- build

def write_split(texts_path, out):
    """Write into `out` the --calibrate files: human_dev.json (the DEV part), human_test.json (the
    TEST part, for --eval) and human_all.json (every prompt but Koala's, grouped by source)."""
    prompts, _ = load_set(texts_path)
    os.makedirs(out, exist_ok=True)
    paths = {}
    for name in ("dev", "test", "all"):
        chosen = [p for p in prompts if p["source"] not in NOT_FITTED] if name == "all" else \
            [p for p in prompts if part(p["uid"]) == name]
        rows = real_rows(chosen, trainable=name != "test", group=name == "all")
        paths[name] = os.path.join(out, f"human_{name}.json")
        with open(paths[name], "w", encoding="utf-8") as f:
            json.dump(rows, f, ensure_ascii=False)
    return paths


def build(args):
    """The shipped model: trained on our data, the permitted human prompts of every source and (with
    --gair) the original's public training prompts, calibrated on every human source but Koala with
    one source left out at a time (--dev_only: DEV part only, folds by text, so that `report` on
    TEST stays held out). The GAIR prompts are training data only: the confidence is fitted on
    prompts written by people, which they mostly are not."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_split(args.texts, tmp)
        train = TRAIN
        if args.gair:  # the original's training prompts join our training file (not the calibration)
            with open(TRAIN, encoding="utf-8") as f:
                rows = json.load(f)
            rows += [{"instruction": p["text"], "category": p["labels"][0]}
                     for p in load_set(args.texts, args.gair)[0] if p["source"] in GAIR_SOURCES]
            train = os.path.join(tmp, "train_with_gair.json")
            with open(train, "w", encoding="utf-8") as f:
                json.dump(rows, f, ensure_ascii=False)
        cmd = [sys.executable, os.path.join(ROOT, "classify.py"), "--train", train,
               "--calibrate", paths["dev" if args.dev_only else "all"], "--save_model", args.save_model, "--quiet"]
        return subprocess.call(cmd)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=("report", "build", "split"))
    ap.add_argument("--texts", required=True, help="the prompts' texts: the output of bench/classify_human_set.py")
    ap.add_argument("--gair", default=None, help="build: train on the original's training prompts as well "
                    "(the output of bench/classify_human_set.py --index bench/data/classify_gair/index.json)")
    ap.add_argument("--model_dir", default=DEFAULT_MODEL_DIR)
    ap.add_argument("--reference_dir", default=None, help="report: a second model beside (e.g. the previous one)")
    ap.add_argument("--save_model", default=DEFAULT_MODEL_DIR, help="build: where the model goes")
    ap.add_argument("--dev_only", action="store_true", help="build: fit on the DEV part only (see build)")
    ap.add_argument("--out", default=None, help="split: folder for human_dev.json and human_test.json")
    args = ap.parse_args()
    if args.command == "report":
        return report(args)
    if args.command == "build":
        return build(args)
    print(write_split(args.texts, args.out or "."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
