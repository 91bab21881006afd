"""The embedded task classifier: TF-IDF word and character n-grams plus MiniLM sentence
embeddings, side by side in one feature vector, scored by a linear SVM.

Why both: n-grams catch the surface cues of a task ("translate", "fix this code", a pasted
traceback); embeddings carry meaning across wordings the training data never used. Two more
word n-gram blocks read only the first and the last 150 characters, where the ask of a prompt
with pasted material usually is. The measurements behind the choices are in bench/README.md
(classify section).

Confidence: the SVM's scores divided by a temperature, plus a bias per task, plus a weighted
vote of the nearest training prompts, put through a softmax give a probability per task; a
confidence map turns the chosen task's probability into the probability that the choice is
right. Given labelled prompts written by people (`real`), `fit` fits them all on scores those
prompts got from models that did not train on them (K-fold, or one source left out at a time;
see calibration.py), and may train on some of them too; with sources, it also chooses how far
`classify` adapts to the task mix of the batch it labels. Without them, only the temperature is
fitted, on held-out scores of the training set itself, which flatters the model on real prompts;
bench/README.md reports both. `classify` turns probabilities into labels with two rules:
`rejecting` is chosen only at `min_reject_confidence` or above (a harmless request labelled
rejecting would get a refusal for an answer), else the next task; below `min_confidence` the
label becomes `default`.

Training needs scikit-learn (vocabulary, idf, LinearSVC); predicting needs only numpy,
tokenizers and onnxruntime, so the model loads fast.

An artifact is a folder:
  head.npz        vocabularies and idf weights of the n-gram blocks, the SVM's weights
                  (float16) and biases, the class names, the class bias, the neighbour
                  index (training prompts' embeddings, float16, tasks and weights). No pickle.
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

from realign.classifier.calibration import (MIN_MIX_RECORDS, adapt_each_group, adapt_to_mix, apply_confidence_map,
                                            choose_mix_strength, fit_confidence_map, fit_scaling, fold_of,
                                            knn_log_votes, reweight, shares, softmax, top_two)
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

    def __init__(self, encoder_dir, blocks=None, classes=None, coef=None, intercept=None, meta=None, bias=None,
                 knn=None):
        self.encoder_dir = encoder_dir
        self.encoder = None
        self.blocks = blocks  # {name: NgramTfidf}, in NGRAM_BLOCKS order (older models: word and char only)
        self.classes, self.coef, self.intercept = classes, coef, intercept
        self.bias = bias  # per task, added to the scaled scores (calibration.py); None: no bias
        self.knn = knn  # (embeddings, task indices, weights) of the neighbour index; None: no vote
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
        self.bias = self.knn = None
        self.meta["confidence_map"] = None
        for key in ("knn_weight", "mix_strength", "mix_prior"):
            self.meta.pop(key, None)
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
        if self.meta.get("knn_weight"):
            self.knn = (_unit(embedding).astype(np.float16).astype(np.float32),  # as save/load will give it
                        np.array([self.classes.index(x) for x in labels]), weights.astype(np.float16).astype(np.float32))
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
        votes = np.zeros_like(scores)  # the nearest prompts' vote, from the same training prompts as the scores
        index = _unit(np.vstack([embedding, real_embedding]))
        index_labels = np.array([classes.index(x) for x in [*labels, *real.labels]])
        index_weights = np.concatenate([np.ones(len(labels)), real.weights])
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
            seen = np.concatenate([np.arange(len(labels)), len(labels) + extra])
            votes[test] = knn_log_votes(_unit(real_embedding[test]), index[seen], index_labels[seen],
                                        index_weights[seen], len(classes))
        gold = np.array([classes.index(label) for label in real.labels])
        train_weights = np.concatenate([np.ones(len(labels)), REAL_WEIGHT * real.weights[real.train]])
        log_ratio = np.log(shares(real.labels, classes, real.weights) / shares(trained, classes, train_weights))
        temperature, alpha, beta = fit_scaling(scores, gold, real.weights, log_ratio, votes)
        prob = softmax(scores / temperature + alpha * log_ratio + beta * votes)
        strength = None
        if real.groups is not None:  # how far to adapt to a batch's task mix: the best on held-out sources
            prob, strength, prior = _fit_mix(prob, real, gold)
            self.meta["mix_prior"] = [max(round(float(x), 6), 1e-6) for x in prior]
        self.meta["mix_strength"] = strength
        self.meta["knn_weight"] = beta
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
            "knn_weight": beta, "mix_strength": strength,
            "folds_by": "group" if real.groups is not None else "text",
            "held_out_accuracy": round(float((w * right).sum() / w.sum()), 4),
            "coverage_at_0.8": round(float((w * sure).sum() / w.sum()), 4),
            "accuracy_at_0.8": round(float((w * right * sure).sum() / max((w * sure).sum(), 1e-9)), 4)}

    # ------------------------------------------------------------ predict

    def scores(self, texts, progress=None):
        """(len(texts), tasks) decision values; the n-grams are scored while the encoder runs."""
        return self._scores(texts, progress)[0]

    def _scores(self, texts, progress=None):
        """(decision values, sentence embeddings) of the texts."""
        if self._weights is None:
            w = self.coef.T.astype(np.float32)
            ends = np.cumsum([0] + [len(b) for b in self.blocks.values()])
            self._weights = [w[a:b] for a, b in zip(ends, ends[1:])] + [w[ends[-1]:]]
        *w_blocks, w_emb = self._weights
        stop, pool = threading.Event(), ThreadPoolExecutor(1)
        try:
            embedding = pool.submit(self._embed, texts, progress, stop)
            out = sum(block.dot(texts, w) for block, w in zip(self.blocks.values(), w_blocks))
            # row by row: a batched product rounds with the batch's shape, and a prompt must get the
            # same numbers in any company
            out += np.array([e @ w_emb for e in embedding.result()], dtype=np.float32).reshape(out.shape)
        except BaseException:
            stop.set()  # Ctrl-C: the encoder stops after its batches in flight, and nobody waits for them
            pool.shutdown(wait=False)
            raise
        pool.shutdown()
        return out + self.intercept, embedding.result()

    def probabilities(self, texts, progress=None):
        """(len(texts), tasks) probabilities, columns in the order of self.classes (each text on its
        own: no adaptation to the batch's task mix, see classify)."""
        scores, embedding = self._scores(texts, progress)
        z = scores / np.float32(self.meta["temperature"])
        if self.bias is not None:
            z = z + self.bias
        if self.knn is not None and self.meta.get("knn_weight") and len(texts):
            index, labels, weights = self.knn
            z = z + self.meta["knn_weight"] * knn_log_votes(_unit(embedding), index, labels, weights, len(self.classes))
        return softmax(z)

    def classify(self, texts, progress=None, min_confidence=0.0, min_reject_confidence=MIN_REJECT_CONFIDENCE,
                 adapt=True):
        """(labels, confidences): the most probable task and the confidence that it is right,
        `rejecting` only at min_reject_confidence or above (else the next task), `default` under
        min_confidence. The confidence is always that of the task the model picked, so a record
        sent to `default` shows how unsure it was. Worked through in chunks of CHUNK: memory stays
        flat. With `adapt` and a model calibrated by source (meta mix_strength), each chunk of at
        least MIN_MIX_RECORDS texts is adapted to its own task mix (calibration.adapt_to_mix), so a
        text's label can depend on the others labelled with it; a smaller chunk takes the mix of
        the chunk before, or none."""
        labels, confidences = [], []
        strength, mix = self.meta.get("mix_strength") if adapt else None, None
        for start in range(0, len(texts), CHUNK):
            prob = self.probabilities(texts[start:start + CHUNK], progress)
            if strength is not None:
                prior = self.meta["mix_prior"]
                if len(prob) >= MIN_MIX_RECORDS:
                    prob, mix = adapt_to_mix(prob, prior, strength)
                elif mix is not None:
                    prob = reweight(prob, prior, mix)
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
            knn = {}
            if self.knn is not None:
                index, labels, weights = self.knn
                knn = {"knn_embedding": index.astype(np.float16), "knn_labels": labels.astype(np.int16),
                       "knn_weights": weights.astype(np.float16)}
            np.savez_compressed(f, classes=np.array(self.classes), **vocabularies, coef=self.coef,
                                intercept=self.intercept, **({"bias": self.bias} if self.bias is not None else {}),
                                **knn)
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
            knn = None
            if "knn_embedding" in z.files:
                knn = (z["knn_embedding"].astype(np.float32), z["knn_labels"].astype(np.int64),
                       z["knn_weights"].astype(np.float32))
            return cls(folder, blocks, [str(c) for c in z["classes"]], z["coef"], z["intercept"], meta, bias, knn)
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

def _unit(embedding):
    """Rows scaled to unit length (the embedding block is scaled by the model's embedding weight)."""
    norm = np.linalg.norm(embedding, axis=1, keepdims=True)
    return embedding / np.maximum(norm, 1e-12)


def _fit_mix(prob, real, gold):
    """(probabilities adapted to each group's task mix, strength, calibration mix) for the real
    prompts' held-out probabilities; the strength is calibration.choose_mix_strength's, over
    prompts (a prompt two labellers split is one prompt, half right for either label)."""
    first = {}
    for i, t in enumerate(real.texts):
        first.setdefault(t, i)
    rows = np.array(list(first.values()))
    of = np.array([first[t] for t in real.texts])  # each row's prompt, as an index into rows
    where = {r: k for k, r in enumerate(rows)}
    share = np.zeros((len(rows), prob.shape[1]))
    for i, label in enumerate(gold):
        share[where[of[i]], label] += real.weights[i]
    share /= share.sum(axis=1, keepdims=True)
    groups = np.array([real.groups[r] for r in rows])
    strength, prior = choose_mix_strength(prob[rows], lambda chosen: share[np.arange(len(rows)), chosen], groups)
    return adapt_each_group(prob[rows], groups, prior, strength)[[where[o] for o in of]], strength, prior


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

