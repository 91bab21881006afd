"""Which features for the embedded classifier: the comparison behind the shipped choice.

    python bench/classify_models.py        # about 3 minutes on 2 busy cores

Trains a LinearSVC (the shipped C) on our training set with different feature sets and prints
accuracy on our held-out set and on the cross-check set (written apart from the training data),
then a learning curve of the shipped features. Embeddings come from the shipped encoder and are
computed once per token limit.
"""

import os
import sys

import numpy as np

from realign.classifier import encoder as enc
from realign.classifier.data import load_labeled
from realign.classifier.features import fit_ngrams
from realign.classifier.metrics import accuracy
from realign.classifier.model import CHAR_NGRAMS, DEFAULT_MODEL_DIR, SVM_C, WORD_NGRAMS
from realign.constant import TASK_DESCRIPTIONS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "datasets", "classification")
FILES = {"train": os.path.join(DATA, "task_classifier_train_dataset.json"),
         "held-out": os.path.join(DATA, "task_classifier_test_dataset.json"),
         "cross-check": os.path.join(ROOT, "bench", "data", "classify_crosscheck.json"),
         "descriptions": None}


def embed_all(sets, max_tokens):
    enc.MAX_TOKENS = max_tokens
    encoder = enc.SentenceEncoder(DEFAULT_MODEL_DIR)
    return {name: encoder.encode(texts) for name, (texts, _) in sets.items()}


def score(sets, emb, ngrams=True, emb_weight=1.0, extra=False, keep=None):
    """Held-out and cross-check accuracy of one feature set; `keep` picks training rows."""
    from scipy.sparse import csr_matrix, hstack, vstack
    from sklearn.svm import LinearSVC

    texts, labels = sets["train"]
    rows = keep if keep is not None else np.arange(len(texts))
    train_texts, train_labels = [texts[i] for i in rows], [labels[i] for i in rows]
    word, char = fit_ngrams(WORD_NGRAMS, train_texts), fit_ngrams(CHAR_NGRAMS, train_texts)

    def features(name, idx=None):
        t = sets[name][0] if idx is None else [sets[name][0][i] for i in idx]
        e = emb[name] if idx is None else emb[name][idx]
        blocks = [word.matrix(t), char.matrix(t)] if ngrams else []
        blocks += [csr_matrix(e * emb_weight)] if emb_weight else []
        return hstack(blocks, format="csr")

    x = features("train", rows)
    if extra:
        x = vstack([x, features("descriptions")], format="csr")
        train_labels = train_labels + sets["descriptions"][1]
    svm = LinearSVC(C=SVM_C).fit(x, train_labels)
    return [accuracy(sets[name][1], list(svm.predict(features(name)))) for name in ("held-out", "cross-check")]


def main():
    sets = {name: load_labeled(path) for name, path in FILES.items() if path}
    sets["descriptions"] = (list(TASK_DESCRIPTIONS.values()), list(TASK_DESCRIPTIONS))
    emb = {128: embed_all(sets, 128), 64: embed_all(sets, 64)}
    print(f"{'features':<44} {'held-out':>9} {'cross-check':>12}")
    rows = [("tf-idf word 1-2 + char_wb 2-5", dict(emb_weight=0)),
            ("MiniLM embeddings only", dict(ngrams=False)),
            ("both (shipped)", {}),
            ("both, encoder cut at 64 tokens", dict(tokens=64)),
            ("both, embedding block weighted 2x", dict(emb_weight=2.0)),
            ("both + the 46 task descriptions as examples", dict(extra=True))]
    for name, opts in rows:
        held, cross = score(sets, emb[opts.pop("tokens", 128)], **opts)
        print(f"{name:<44} {held:>9.1%} {cross:>12.1%}", flush=True)

    print("\nlearning curve, shipped features (first k training examples of each task)")
    labels = sets["train"][1]
    for k in (15, 30, 45, None):
        seen, keep = {}, []
        for i, label in enumerate(labels):
            seen[label] = seen.get(label, 0) + 1
            if k is None or seen[label] <= k:
                keep.append(i)
        held, cross = score(sets, emb[128], keep=np.array(keep))
        print(f"  k={k or 'all':<3} held-out {held:.1%}  cross-check {cross:.1%}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
