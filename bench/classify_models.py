"""Which design for the embedded classifier: the comparison behind the shipped choice.

    python bench/classify_models.py [--no_cache]     # 5-15 minutes on 2 busy cores

Trains each variant on our training set and prints accuracy on our held-out set, the
cross-check and realistic sets, and the agreed prompts of the independent check set
(bench/data/classify_check/; used here only as an aggregate to choose between designs, never
for training or per-prompt tuning). Embeddings come from the shipped encoder, computed once per
encoding mode and cached under $TMPDIR (--no_cache to recompute).

Variants: the shipped features (TF-IDF word 1-2 and char_wb 2-5 n-grams + MiniLM, LinearSVC);
the SVM's C; the embedding block's weight; without word n-grams; the encoder fed the first and
last 64 word pieces of a long prompt instead of the first 128 (the ask often follows pasted
material); n-grams taken from the first and last 300 characters only; logistic regression
instead of the SVM; the SVM blended with a k-nearest-neighbour vote over the embeddings.
"""

import argparse
import hashlib
import os
import sys
import tempfile
import time

import numpy as np

from realign.classifier import encoder as enc
from realign.classifier.data import load_labeled
from realign.classifier.features import fit_ngrams
from realign.classifier.metrics import accuracy
from realign.classifier.model import CHAR_NGRAMS, DEFAULT_MODEL_DIR, SVM_C, WORD_NGRAMS, softmax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from classify_check import check_set  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "datasets", "classification")
FILES = {"train": os.path.join(DATA, "task_classifier_train_dataset.json"),
         "held-out": os.path.join(DATA, "task_classifier_test_dataset.json"),
         "cross-check": os.path.join(ROOT, "bench", "data", "classify_crosscheck.json"),
         "realistic": os.path.join(ROOT, "bench", "data", "classify_realistic_eval.json")}
CACHE = os.path.join(tempfile.gettempdir(), "realign-bench-embeddings")

VARIANTS = [
    ("shipped: n-grams + MiniLM, LinearSVC C=0.5", {}),
    ("C = 0.2", dict(c=0.2)),
    ("C = 1.0", dict(c=1.0)),
    ("embedding block weighted 1.5x", dict(emb_weight=1.5)),
    ("no word n-grams", dict(words=False)),
    ("encoder on first 64 + last 64 tokens", dict(mode="head64+tail64")),
    ("n-grams on first + last 300 chars", dict(view=300)),
    ("logistic regression (C=10)", dict(model="lr", c=10.0)),
    ("SVM + 10-NN vote (0.3)", dict(knn=10, knn_weight=0.3)),
    ("10-NN vote alone", dict(knn=10, knn_weight=1.0)),
]


def _head_tail(encoder, head, tail):
    """A replacement for SentenceEncoder._run that keeps the first `head` and last `tail` tokens."""
    def run(texts):
        encoder.tokenizer.no_truncation()
        encoder.tokenizer.no_padding()
        seqs = [e.ids if len(e.ids) <= head + tail else e.ids[:head] + e.ids[-tail:]
                for e in encoder.tokenizer.encode_batch(texts, add_special_tokens=True)]
        ids = np.zeros((len(seqs), max(map(len, seqs))), np.int64)
        mask = np.zeros_like(ids)
        for i, s in enumerate(seqs):
            ids[i, :len(s)], mask[i, :len(s)] = s, 1
        return encoder.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    return run


def embed(texts, mode, use_cache):
    key = hashlib.sha1((mode + "\0" + "\0".join(texts)).encode()).hexdigest()[:20]
    path = os.path.join(CACHE, key + ".npy")
    if use_cache and os.path.exists(path):
        return np.load(path)
    encoder = enc.SentenceEncoder(DEFAULT_MODEL_DIR)
    if mode == "head64+tail64":
        encoder._run = _head_tail(encoder, 64, 64)
    out = encoder.encode(texts)
    if use_cache:
        os.makedirs(CACHE, exist_ok=True)
        np.save(path, out)
    return out


def cut(texts, chars):
    return texts if not chars else [t if len(t) <= 2 * chars else t[:chars] + " ... " + t[-chars:] for t in texts]


def score(sets, emb, c=SVM_C, emb_weight=1.0, words=True, view=0, model="svm", knn=0, knn_weight=0.0, **_):
    """{set: accuracy} of one variant trained on sets["train"]."""
    from scipy.sparse import csr_matrix, hstack
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    texts, labels = sets["train"]
    word, char = fit_ngrams(WORD_NGRAMS, cut(texts, view)), fit_ngrams(CHAR_NGRAMS, cut(texts, view))

    def features(name):
        t = cut(sets[name][0], view)
        blocks = ([word.matrix(t)] if words else []) + [char.matrix(t), csr_matrix(emb[name] * emb_weight)]
        return hstack(blocks, format="csr")

    clf = (LinearSVC(C=c) if model == "svm" else LogisticRegression(C=c, max_iter=3000)).fit(features("train"), labels)
    classes = list(clf.classes_)
    gold_train = np.array([classes.index(label) for label in labels])
    out = {}
    for name in sets:
        if name == "train":
            continue
        s = clf.decision_function(features(name))
        if knn:
            sim = emb[name] @ emb["train"].T
            vote = np.zeros_like(s)
            for i, row in enumerate(np.argsort(-sim, axis=1)[:, :knn]):
                np.add.at(vote[i], gold_train[row], sim[i, row])
            vote /= np.maximum(vote.sum(axis=1, keepdims=True), 1e-9)
            s = (1 - knn_weight) * softmax(s / 0.15) + knn_weight * vote
        out[name] = accuracy(sets[name][1], [classes[i] for i in s.argmax(axis=1)])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no_cache", action="store_true")
    args = ap.parse_args()
    sets = {name: load_labeled(path) for name, path in FILES.items()}
    _, texts, writer, second = check_set()
    agreed = [i for i in range(len(texts)) if writer[i] == second[i]]
    sets["check (agreed)"] = ([texts[i] for i in agreed], [writer[i] for i in agreed])
    print("sizes: " + ", ".join(f"{name} {len(t)}" for name, (t, _) in sets.items()), flush=True)
    modes = {opts.get("mode", "head128") for _, opts in VARIANTS}
    emb = {mode: {name: embed(t, mode, not args.no_cache) for name, (t, _) in sets.items()} for mode in sorted(modes)}
    names = [n for n in sets if n != "train"]
    print(f"\n{'variant':<44}" + "".join(f"{n:>16}" for n in names))
    for label, opts in VARIANTS:
        start = time.monotonic()
        result = score(sets, emb[opts.get("mode", "head128")], **opts)
        print(f"{label:<44}" + "".join(f"{result[n]:>16.1%}" for n in names)
              + f"   ({time.monotonic() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
