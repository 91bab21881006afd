"""The embedded task classifier: TF-IDF word and character n-grams plus MiniLM sentence
embeddings, side by side in one feature vector, scored by a linear SVM.

Why both: n-grams catch the surface cues of a task ("translate", "fix this code", a pasted
traceback); embeddings carry meaning across wordings the training data never used. Two more
word n-gram blocks read only the first and the last 150 characters, where the ask of a prompt
with pasted material usually is. The measurements behind the choices are in bench/README.md
(classify section).

Confidence: the SVM's scores divided by a temperature, plus a bias per task, put through a
softmax give a probability per task; a confidence map turns the chosen task's probability into
the probability that the choice is right. Given labelled prompts written by people (`real`),
`fit` fits all three on scores those prompts got from models that did not train on them (K-fold;
see calibration.py), and may train on some of them too. Without them, only the temperature is
fitted, on held-out scores of the training set itself, which flatters the model on real prompts;
bench/README.md reports both. `classify` turns probabilities into labels with two rules:
`rejecting` is chosen only at `min_reject_confidence` or above (a harmless request labelled
rejecting would get a refusal for an answer), else the next task; below `min_confidence` the
label becomes `default`.

Training needs scikit-learn (vocabulary, idf, LinearSVC); predicting needs only numpy,
tokenizers and onnxruntime, so the model loads fast.

An artifact is a folder:
  head.npz        vocabularies and idf weights of the n-gram blocks, the SVM's weights
                  (float16) and biases, the class names, the class bias. No pickle.
  meta.json       settings, temperature, confidence map, what the model was trained and
                  calibrated on.
  encoder.int8.onnx, tokenizer.json   the sentence encoder (see encoder.py).
"""

import json
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from realign.classifier.calibration import (apply_confidence_map, fit_confidence_map, fit_scaling, fold_of,
                                            shares, softmax, top_two)
from realign.classifier.encoder import ONNX_FILE, TOKENIZER_FILE, SentenceEncoder, has_encoder
from realign.classifier.features import NgramTfidf, fit_ngrams
from realign.constant import DEFAULT_TASK
from realign.errors import DataError, UsageError
from realign.files import atomic_open, is_file_error, os_error

DEFAULT_MODEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model")

# Settings of the n-gram blocks; kept in meta.json so a saved model rebuilds them as trained.
WORD_NGRAMS = dict(analyzer="word", ngram_range=[1, 2], sublinear_tf=True, lowercase=True,
                   token_pattern=r"(?u)\b\w+\b", min_df=2, max_features=40000)
CHAR_NGRAMS = dict(analyzer="char_wb", ngram_range=[2, 5], sublinear_tf=True, lowercase=True,
                   min_df=2, max_features=60000)
HEAD_NGRAMS = dict(WORD_NGRAMS, max_features=20000, part="head", part_chars=150)  # the ask is usually first...
TAIL_NGRAMS = dict(WORD_NGRAMS, max_features=20000, part="tail", part_chars=150)  # ...or last
NGRAM_BLOCKS = {"word": WORD_NGRAMS, "char": CHAR_NGRAMS, "head": HEAD_NGRAMS, "tail": TAIL_NGRAMS}
SVM_C = 0.5
EMBEDDING_WEIGHT = 1.0  # scale of the embedding block next to the two unit-length tf-idf blocks
CHUNK = 4096  # instructions predicted at a time
CALIBRATION_FOLDS = 5  # K of the K-fold scores the temperature is fitted on
MIN_REJECT_CONFIDENCE = 0.7  # `rejecting` only from this confidence up (see bench/README.md)
CLASS_OFFSETS = True  # the confidence map has an offset per chosen task (calibration.py)
REAL_WEIGHT = 1.0  # training weight of a real prompt (--calibrate rows with "train": true) next to one of ours
FALLBACK_BELOW = 0.8  # classify.py --fallback_model: records under this confidence go to the LLM
FALLBACK_GUARD = 0.01  # ...and its answer is taken unless the embedded model gives that task less
REJECTING = "rejecting"


class TaskClassifier:
    """fit(texts, labels) / predict(texts); save(folder) / TaskClassifier.load(folder)."""

    def __init__(self, encoder_dir, blocks=None, classes=None, coef=None, intercept=None, meta=None, bias=None):
        self.encoder_dir = encoder_dir
        self.encoder = None
        self.blocks = blocks  # {name: NgramTfidf}, in NGRAM_BLOCKS order (older models: word and char only)
        self.classes, self.coef, self.intercept = classes, coef, intercept
        self.bias = bias  # per task, added to the scaled scores (calibration.py); None: no bias
        self.meta = {"embedding_weight": EMBEDDING_WEIGHT, "temperature": 1.0, "confidence_map": None,
                     **(meta or {})}
        self._weights = None  # coef split per feature block, float32; made on first use

    def _encoder(self):
        if self.encoder is None:
            self.encoder = SentenceEncoder(self.encoder_dir)
        return self.encoder

    def _embed(self, texts, progress, stop=None):
        """Sentence embeddings, scaled by the model's embedding weight."""
        return self._encoder().encode(texts, progress, stop) * np.float32(self.meta["embedding_weight"])

    # ------------------------------------------------------------ train

    def fit(self, texts, labels, progress=None, calibrate=True, real=None):
        """Learn n-gram vocabularies and the SVM from `texts`/`labels`; with `real` (data.RealPrompts:
        labelled prompts written by people), fit the temperature, class bias and confidence map on
        them and train on those marked `train` as well; else (with `calibrate`) fit the temperature
        on held-out scores of the training set."""
        from scipy.sparse import csr_matrix

        embedding = self._embed(texts, progress)
        weights = np.ones(len(texts))
        self.meta.pop("calibration", None)
        self.bias = None
        self.meta["confidence_map"] = None
        if real is not None:
            real_embedding = self._embed(real.texts, progress)
            self._calibrate_on_real(texts, labels, embedding, real, real_embedding)
            pick = np.flatnonzero(real.train)
            texts = list(texts) + [real.texts[i] for i in pick]
            labels = list(labels) + [real.labels[i] for i in pick]
            embedding = np.vstack([embedding, real_embedding[pick]])
            weights = np.concatenate([weights, REAL_WEIGHT * real.weights[pick]])
        elif calibrate:
            self.meta["temperature"] = fit_temperature(*held_out_scores(texts, labels, csr_matrix(embedding)))
        self.blocks, svm = _fit_svm(texts, labels, csr_matrix(embedding), weights)
        self.classes = [str(c) for c in svm.classes_]
        self.coef, self.intercept = svm.coef_.astype(np.float16), svm.intercept_.astype(np.float32)
        self._weights = None
        self.meta.update(trained_on=len(texts), tasks=len(self.classes), trained_at=time.strftime("%Y-%m-%d %H:%M:%S"))
        return self

    def _calibrate_on_real(self, texts, labels, embedding, real, real_embedding, folds=CALIBRATION_FOLDS):
        """Fit temperature, class bias and confidence map on held-out scores of the real prompts:
        each fold's prompts scored by a model trained on the training set plus the other folds'
        trainable real prompts. Folds are the real prompts' groups when they have them (one group
        left out at a time: scores on a source the model never saw), else K folds by text."""
        from scipy.sparse import csr_matrix

        trained = [*labels, *(real.labels[i] for i in np.flatnonzero(real.train))]
        classes = sorted(set(trained))
        unknown = sorted(set(real.labels) - set(classes))
        if unknown:
            raise ValueError(f"the real prompts use tasks the training data has no example of: {unknown}")
        if real.groups is not None:
            names = sorted(set(real.groups))
            fold, folds = np.array([names.index(g) for g in real.groups]), len(names)
        else:
            fold = np.array([fold_of(t, folds) for t in real.texts])
        scores = np.zeros((len(real.texts), len(classes)), dtype=np.float64)
        for f in range(folds):
            extra = np.flatnonzero(real.train & (fold != f))
            part_texts = list(texts) + [real.texts[i] for i in extra]
            part_labels = list(labels) + [real.labels[i] for i in extra]
            x = csr_matrix(np.vstack([embedding, real_embedding[extra]]))
            w = np.concatenate([np.ones(len(texts)), REAL_WEIGHT * real.weights[extra]])
            blocks, svm = _fit_svm(part_texts, part_labels, x, w)
            test = np.flatnonzero(fold == f)
            if not len(test):
                continue
            held = [real.texts[i] for i in test]
            got = svm.decision_function(_features(blocks, held, csr_matrix(real_embedding[test])))
            cols = [classes.index(c) for c in svm.classes_]
            scores[np.ix_(test, cols)] = got
        gold = np.array([classes.index(label) for label in real.labels])
        train_weights = np.concatenate([np.ones(len(labels)), REAL_WEIGHT * real.weights[real.train]])
        log_ratio = np.log(shares(real.labels, classes, real.weights) / shares(trained, classes, train_weights))
        temperature, alpha = fit_scaling(scores, gold, real.weights, log_ratio)
        prob = softmax(scores / temperature + alpha * log_ratio)
        chosen = prob.argmax(axis=1)
        p, q = top_two(prob, chosen)
        self.meta["confidence_map"] = fit_confidence_map(p, q, chosen == gold, real.weights,
                                                         *((chosen, len(classes)) if CLASS_OFFSETS else ()))
        self.held_out = prob  # the real prompts' held-out probabilities, for benches (not saved)
        self.meta["temperature"] = temperature
        self.bias = (alpha * log_ratio).astype(np.float32)
        confidence = apply_confidence_map(self.meta["confidence_map"], p, q, chosen)
        right, sure = (chosen == gold), confidence >= 0.8
        w = real.weights
        self.meta["calibration"] = {
            "prompts": len(set(real.texts)), "rows": len(real.texts), "trained_on": int(len(set(
                real.texts[i] for i in np.flatnonzero(real.train)))), "alpha": alpha, "folds": folds,
            "folds_by": "group" if real.groups is not None else "text",
            "held_out_accuracy": round(float((w * right).sum() / w.sum()), 4),
            "coverage_at_0.8": round(float((w * sure).sum() / w.sum()), 4),
            "accuracy_at_0.8": round(float((w * right * sure).sum() / max((w * sure).sum(), 1e-9)), 4)}

    # ------------------------------------------------------------ predict

    def scores(self, texts, progress=None):
        """(len(texts), tasks) decision values; the n-grams are scored while the encoder runs."""
        if self._weights is None:
            w = self.coef.T.astype(np.float32)
            ends = np.cumsum([0] + [len(b) for b in self.blocks.values()])
            self._weights = [w[a:b] for a, b in zip(ends, ends[1:])] + [w[ends[-1]:]]
        *w_blocks, w_emb = self._weights
        stop, pool = threading.Event(), ThreadPoolExecutor(1)
        try:
            embedding = pool.submit(self._embed, texts, progress, stop)
            out = sum(block.dot(texts, w) for block, w in zip(self.blocks.values(), w_blocks))
            out += embedding.result() @ w_emb
        except BaseException:
            stop.set()  # Ctrl-C: the encoder stops after its batches in flight, and nobody waits for them
            pool.shutdown(wait=False)
            raise
        pool.shutdown()
        return out + self.intercept

    def probabilities(self, texts, progress=None):
        """(len(texts), tasks) probabilities, columns in the order of self.classes."""
        z = self.scores(texts, progress) / np.float32(self.meta["temperature"])
        return softmax(z + self.bias if self.bias is not None else z)

    def classify(self, texts, progress=None, min_confidence=0.0, min_reject_confidence=MIN_REJECT_CONFIDENCE):
        """(labels, confidences): the most probable task and the confidence that it is right,
        `rejecting` only at min_reject_confidence or above (else the next task), `default` under
        min_confidence. The confidence is always that of the task the model picked, so a record
        sent to `default` shows how unsure it was. Worked through in chunks: memory stays flat."""
        labels, confidences = [], []
        for start in range(0, len(texts), CHUNK):
            prob = self.probabilities(texts[start:start + CHUNK], progress)
            for label, confidence in decide(prob, self.classes, min_confidence, min_reject_confidence,
                                            self.meta.get("confidence_map")):
                labels.append(label)
                confidences.append(confidence)
        return labels, confidences

    def predict(self, texts, progress=None):
        """Task names, with the default rules of `classify`."""
        return self.classify(texts, progress)[0]

    # ------------------------------------------------------------ artifact

    def save(self, folder):
        """Write the artifact folder (the encoder files are copied in, so it stands alone)."""
        os.makedirs(folder, exist_ok=True)
        with atomic_open(os.path.join(folder, "head.npz"), "wb") as f:
            vocabularies = {f"{name}_{what}": np.array(block.vocab) if what == "vocab" else block.idf
                            for name, block in self.blocks.items() for what in ("vocab", "idf")}
            np.savez_compressed(f, classes=np.array(self.classes), **vocabularies, coef=self.coef,
                                intercept=self.intercept, **({"bias": self.bias} if self.bias is not None else {}))
        meta = {**self.meta, "blocks": list(self.blocks), **{f"{name}_ngrams": block.params for name, block in
                                                              self.blocks.items()},
                "svm_c": SVM_C, "calibration_folds": CALIBRATION_FOLDS}
        with atomic_open(os.path.join(folder, "meta.json")) as f:
            json.dump(meta, f, indent=2)
            f.write("\n")
        for name in (ONNX_FILE, TOKENIZER_FILE):
            src, dst = os.path.join(self.encoder_dir, name), os.path.join(folder, name)
            if os.path.abspath(src) != os.path.abspath(dst):
                try:
                    shutil.copyfile(src, dst)
                except OSError as e:  # a write error names no file: say which
                    raise os_error(e, dst) if is_file_error(e) else e from None

    @classmethod
    def load(cls, folder=DEFAULT_MODEL_DIR):
        head = os.path.join(folder, "head.npz")
        if not os.path.exists(head) or not has_encoder(folder):
            raise UsageError(f"{folder}: no classifier model there (expected head.npz, meta.json, "
                             f"{ONNX_FILE}, {TOKENIZER_FILE}); build one with classify.py --train")
        try:
            with open(os.path.join(folder, "meta.json"), encoding="utf-8") as f:
                meta = json.load(f)
            z = np.load(head, allow_pickle=False)
            blocks = {name: NgramTfidf(meta[f"{name}_ngrams"], z[f"{name}_vocab"], z[f"{name}_idf"])
                      for name in meta.get("blocks", ("word", "char"))}
            bias = z["bias"] if "bias" in z.files else None
            return cls(folder, blocks, [str(c) for c in z["classes"]], z["coef"], z["intercept"], meta, bias)
        except (KeyError, ValueError, OSError) as e:
            raise DataError(f"{folder}: damaged classifier model ({type(e).__name__}: {e})") from None


def decide(prob, classes, min_confidence=0.0, min_reject_confidence=MIN_REJECT_CONFIDENCE, confidence_map=None):
    """[(label, confidence)] for rows of probabilities: the most probable task, passed over when
    it is `rejecting` with a confidence under min_reject_confidence (the next task instead),
    `default` when the chosen task's confidence is under min_confidence. The confidence is the
    chosen task's probability put through `confidence_map` (calibration.py) when there is one."""
    prob = np.asarray(prob, dtype=np.float64)
    if not len(prob):
        return []
    order = np.argsort(-prob, axis=1, kind="stable")
    best = order[:, 0].copy()
    confidence = apply_confidence_map(confidence_map, *top_two(prob, best), best)
    if REJECTING in classes and prob.shape[1] > 1:
        passed = (best == classes.index(REJECTING)) & (confidence < min_reject_confidence)
        if passed.any():
            best[passed] = order[passed, 1]
            confidence = apply_confidence_map(confidence_map, *top_two(prob, best), best)
    return [(classes[b] if c >= min_confidence else DEFAULT_TASK, float(c)) for b, c in zip(best, confidence)]


# ------------------------------------------------------------ training helpers

def _features(blocks, texts, embedding):
    """The sparse feature matrix (training only): every n-gram block, then the embedding rows."""
    from scipy.sparse import hstack

    return hstack([block.matrix(texts) for block in blocks.values()] + [embedding], format="csr")


def _fit_svm(texts, labels, embedding, weights=None):
    """({name: n-gram block}, fitted LinearSVC) on texts with their precomputed embedding rows
    (and a weight per text, None for all 1)."""
    from sklearn.svm import LinearSVC

    blocks = {name: fit_ngrams(params, texts) for name, params in NGRAM_BLOCKS.items()}
    return blocks, LinearSVC(C=SVM_C).fit(_features(blocks, texts, embedding), labels, sample_weight=weights)


def held_out_scores(texts, labels, embedding, folds=CALIBRATION_FOLDS, seed=0):
    """(scores, gold index) for every text from a model that did not see it (stratified K-fold);
    the features are rebuilt inside each fold, so the vocabulary does not leak either."""
    from sklearn.model_selection import StratifiedKFold

    classes = sorted(set(labels))
    gold = np.array([classes.index(label) for label in labels])
    folds = min(folds, np.bincount(gold).min())
    if folds < 2:
        raise ValueError("calibration needs at least two examples of every task")
    scores = np.zeros((len(texts), len(classes)), dtype=np.float32)
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(texts, gold):
        part = [texts[i] for i in train]
        blocks, svm = _fit_svm(part, [labels[i] for i in train], embedding[train])
        scores[test] = svm.decision_function(_features(blocks, [texts[i] for i in test], embedding[test]))
    return scores, gold


def fit_temperature(scores, gold):
    """The temperature T minimising the log-loss of softmax(scores / T) on held-out scores
    (golden-section search over log T; the loss is unimodal in T)."""
    def loss(log_t):
        p = softmax(scores / np.float32(np.exp(log_t)))
        return -np.log(np.maximum(p[np.arange(len(gold)), gold], 1e-12)).mean()

    lo, hi = np.log(0.01), np.log(10.0)
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(60):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if loss(a) < loss(b):
            hi = b
        else:
            lo = a
    return float(np.exp((lo + hi) / 2))

