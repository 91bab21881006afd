"""The embedded classifier on a source of human-written prompts it never saw: leave one source out.

    python bench/classify_sources.py --texts human_prompts.jsonl [--calibrate_only] [--fold_by text]

bench/data/classify_human holds prompts from seven public sets (self-instruct, LIMA, WizardLM,
Vicuna, MT-bench, Dolly, Koala). The sets we are judged on are other sets again, so the honest
question is how the model does on a source it has not trained or been calibrated on. For each
source S in turn, a model is built the way the shipped one is (classify.py --train
datasets/classification/... --calibrate REAL) with REAL = the prompts of the other sources
(trained on where their licence allows, see classify_human.TRAINABLE_SOURCES; Koala is never
trained on or calibrated on, only measured), and it labels the prompts of S. The table gives
each held-out source and all of them pooled: accuracy, and the share of prompts at
category_confidence >= 0.8 with the accuracy there (against both labellers: a prompt they
labelled differently counts half right for either label).

--calibrate_only: train on our own data only, fit only the confidence on the other sources.
--fold_by text: the calibration's inner folds are by text (the old way) instead of by source.
--no_mix_adaptation: label the held-out source's prompts each on its own (TaskClassifier.classify
adapts a batch to its task mix by default; the held-out source is one batch, as a user's file is).

Sentence embeddings are computed once and cached in --cache (a numpy file keyed by text).
"""

import argparse
import hashlib
import json
import os
import sys
import time
from collections import defaultdict

import numpy as np
from scipy.sparse import csr_matrix

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from classify_human import GAIR_SOURCES, TRAIN, TRAINABLE_SOURCES, coverage_rows, load_set, soft_right  # noqa: E402

import realign.classifier.model as classifier_model  # noqa: E402
from realign.classifier.data import RealPrompts, load_labeled  # noqa: E402
from realign.classifier.model import DEFAULT_MODEL_DIR, TaskClassifier  # noqa: E402

NOT_FITTED = ("koala",)  # its authors ask that it not be trained on: measured only


class CachedEmbeddings(TaskClassifier):
    """TaskClassifier whose sentence embeddings come from a cache shared by every instance."""
    cache = {}

    def _embed(self, texts, progress, stop=None):
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if missing:
            for t, row in zip(missing, super()._embed(missing, None)):
                self.cache[t] = row
        return np.vstack([self.cache[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)


def load_cache(path):
    if path and os.path.exists(path):
        z = np.load(path, allow_pickle=False)
        CachedEmbeddings.cache.update(zip(z["texts"].tolist(), z["rows"]))


def save_cache(path):
    if path:
        texts = list(CachedEmbeddings.cache)
        np.savez(path, texts=np.array(texts), rows=np.vstack([CachedEmbeddings.cache[t] for t in texts]))


def real_prompts(prompts, train_human, fold_by):
    """RealPrompts of `prompts` (two labellers: a row per distinct label, weights summing to 1)."""
    texts, labels, weights, train, groups = [], [], [], [], []
    for p in prompts:
        for label in sorted(set(p["labels"])):
            texts.append(p["text"])
            labels.append(label)
            weights.append(p["labels"].count(label) / len(p["labels"]))
            train.append(train_human and p["source"] in TRAINABLE_SOURCES)
            groups.append(p["source"])
    return RealPrompts(texts, labels, np.array(weights), np.array(train, dtype=bool),
                       groups if fold_by == "source" else None)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", required=True, help="the prompts' texts: the output of bench/classify_human_set.py")
    ap.add_argument("--train", default=TRAIN)
    ap.add_argument("--calibrate_only", action="store_true", help="do not train on human prompts")
    ap.add_argument("--fold_by", choices=("source", "text"), default="source")
    ap.add_argument("--sources", default=None, help="comma-separated: hold out only these")
    ap.add_argument("--real_weight", type=float, default=None, help="training weight of a human prompt (model.REAL_WEIGHT)")
    ap.add_argument("--dump", default=None, help="write every held-out prediction here (JSONL: uid, labels, pred, conf)")
    ap.add_argument("--fast", action="store_true",
                    help="accuracy only: no calibration (no class bias, no confidence map), one fit per source")
    ap.add_argument("--no_mix_adaptation", action="store_true", help="do not adapt to the held-out source's task mix")
    ap.add_argument("--gair", default=None, help="the original's public training prompts too, as two sources "
                    "gair_a and gair_b (classify_human.load_gair; the output of bench/classify_human_set.py "
                    "--index bench/data/classify_gair/index.json)")
    ap.add_argument("--gair_train_only", action="store_true",
                    help="with --gair: train on them (the half not held out) as part of the training file, but fit "
                         "the confidence on the human-written sources only")
    ap.add_argument("--gair_measure_only", action="store_true",
                    help="with --gair: never train or calibrate on them, only measure (the model as it is built without them)")
    ap.add_argument("--cache", default=os.path.join("/tmp", "classify_sources_embeddings.npz"))
    args = ap.parse_args()

    if args.real_weight is not None:
        classifier_model.REAL_WEIGHT = args.real_weight
    prompts, _ = load_set(args.texts, args.gair)
    not_fitted = NOT_FITTED + (GAIR_SOURCES if args.gair_measure_only or args.gair_train_only else ())
    texts, labels = load_labeled(args.train)
    load_cache(args.cache)
    sources = sorted({p["source"] for p in prompts})
    held_sources = args.sources.split(",") if args.sources else sources
    print(f"{len(prompts)} human-written prompts, {len(sources)} sources; training file {len(texts)} "
          f"instructions ({hashlib.sha1(open(args.train, 'rb').read()).hexdigest()[:8]}); "
          f"{'calibrate only' if args.calibrate_only else 'train on permitted sources too'}; "
          f"calibration folds by {args.fold_by}; human prompt weight {classifier_model.REAL_WEIGHT}")
    start = time.monotonic()
    soft_all, conf_all, rows, dumped = [], [], [], []
    for held in held_sources:
        fit_on = [p for p in prompts if p["source"] != held and p["source"] not in not_fitted]
        test = [p for p in prompts if p["source"] == held]
        model = CachedEmbeddings(encoder_dir=DEFAULT_MODEL_DIR)
        real = real_prompts(fit_on, not args.calibrate_only, args.fold_by)
        train_texts, train_labels = texts, labels
        if args.gair_train_only:  # the GAIR prompts not held out join the training file
            extra = [p for p in prompts if p["source"] in GAIR_SOURCES and p["source"] != held]
            train_texts, train_labels = texts + [p["text"] for p in extra], labels + [p["labels"][0] for p in extra]
        if args.fast:  # the SVM alone: argmax of its scores
            pick = np.flatnonzero(real.train)
            all_texts = train_texts + [real.texts[i] for i in pick]
            weights = np.concatenate([np.ones(len(train_texts)), classifier_model.REAL_WEIGHT * real.weights[pick]])
            blocks, svm = classifier_model._fit_svm(all_texts, train_labels + [real.labels[i] for i in pick],
                                                    csr_matrix(model._embed(all_texts, None)), weights)
            held_texts = [p["text"] for p in test]
            got = svm.decision_function(classifier_model._features(blocks, held_texts,
                                                                   csr_matrix(model._embed(held_texts, None))))
            pred, conf = [str(svm.classes_[j]) for j in got.argmax(axis=1)], np.zeros(len(test))
        else:
            model.fit(train_texts, train_labels, real=real)
            pred, conf = model.classify([p["text"] for p in test], adapt=not args.no_mix_adaptation)
        save_cache(args.cache)
        soft = np.array([soft_right(y, p["labels"]) for y, p in zip(pred, test)])
        conf = np.array(conf)
        sure = conf >= 0.8
        rows.append((held, len(test), soft.mean(), sure.mean(), soft[sure].mean() if sure.any() else float("nan")))
        fitted = "" if args.fast else (f"  [knn weight {model.meta.get('knn_weight')}, "
                                       f"mix strength {model.meta.get('mix_strength')}]")
        print(f"  held out {held:<14} n={len(test):>4}  accuracy {soft.mean():6.1%}  "
              f"conf>=0.8 covers {sure.mean():6.1%} at {rows[-1][4]:6.1%}  ({time.monotonic() - start:.0f} s){fitted}",
              flush=True)
        dumped += [{"uid": p["uid"], "labels": p["labels"], "pred": y, "conf": round(float(c), 4)}
                   for p, y, c in zip(test, pred, conf)]
        soft_all.append(soft)
        conf_all.append(conf)
    soft, conf = np.concatenate(soft_all), np.concatenate(conf_all)
    gair = np.array([row["uid"].startswith("gair") for row in dumped])
    if args.dump:
        with open(args.dump, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row) + "\n" for row in dumped)
    print(f"\n{'held-out source':<16} {'n':>5} {'accuracy':>9} {'cov@0.8':>8} {'acc@0.8':>8}")
    for held, n, acc, cov, acc8 in rows:
        print(f"{held:<16} {n:>5} {acc:>9.1%} {cov:>8.1%} {acc8:>8.1%}")
    # the human-written sources pooled, and the original's prompts pooled apart: they are another
    # kind of text (mostly written by a model) labelled by other people
    groups = [("pooled", ~gair)] + ([("pooled gair", gair)] if gair.any() else [])
    for name, keep in groups:
        if keep.any():
            s, c = soft[keep], conf[keep]
            sure = c >= 0.8
            print(f"{name:<16} {len(s):>5} {s.mean():>9.1%} {sure.mean():>8.1%} "
                  f"{s[sure].mean() if sure.any() else float('nan'):>8.1%}")
    for name, keep in groups:
        if not keep.any():
            continue
        print(f"\naccuracy against coverage, {name} over the held-out sources:")
        print(f"  {'confidence >=':>13} {'coverage':>9} {'accuracy':>9} {'n':>5}")
        for t, cov, acc, n in coverage_rows(soft[keep], conf[keep]):
            print(f"  {t:>13.2f} {cov:>9.1%} {acc:>9.1%} {n:>5}")
        by_bin = defaultdict(list)
        for s, c in zip(soft[keep], conf[keep]):
            by_bin[min(int(c * 10), 9)].append((s, c))
        print(f"\nreliability ({name}): " + ", ".join(
            f"{b / 10:.1f}-{(b + 1) / 10:.1f}: conf {np.mean([c for _, c in v]):.2f} right {np.mean([s for s, _ in v]):.2f} "
            f"(n={len(v)})" for b, v in sorted(by_bin.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
