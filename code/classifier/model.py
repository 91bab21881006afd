"""The embedded task classifier: TF-IDF word and character n-grams plus MiniLM sentence
embeddings, side by side in one feature vector, scored by a linear SVM.

Why both: n-grams catch the surface cues of a task ("translate", "fix this code", a pasted
traceback); embeddings carry meaning across wordings the training data never used. The
measurements behind the choice are in bench/README.md (classify section).

Confidence: the SVM's scores divided by a temperature and put through a softmax give a
probability per task. The temperature is fitted at training time on held-out scores (each
training example scored by a model fitted on the other folds, K-fold), so that the probability
of the chosen task matches how often such choices are right; bench/README.md reports the fit.
`classify` turns probabilities into labels with two rules: `rejecting` is chosen only at
`min_reject_confidence` or above (a harmless request labelled rejecting would get a refusal
for an answer), else the next task; below `min_confidence` the label becomes `default`.

Training needs scikit-learn (vocabulary, idf, LinearSVC); predicting needs only numpy,
tokenizers and onnxruntime, so the model loads fast.

An artifact is a folder:
  head.npz        vocabularies and idf weights of both n-gram blocks, the SVM's weights
                  (float16) and biases, the class names. No pickle.
  meta.json       settings and what the model was trained on.
  encoder.int8.onnx, tokenizer.json   the sentence encoder (see encoder.py).
"""

import json
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

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
SVM_C = 0.5
EMBEDDING_WEIGHT = 1.0  # scale of the embedding block next to the two unit-length tf-idf blocks
CHUNK = 4096  # instructions predicted at a time
CALIBRATION_FOLDS = 5  # K of the K-fold scores the temperature is fitted on
MIN_REJECT_CONFIDENCE = 0.9  # `rejecting` only from this probability up (see bench/README.md)
REJECTING = "rejecting"


class TaskClassifier:
    """fit(texts, labels) / predict(texts); save(folder) / TaskClassifier.load(folder)."""

    def __init__(self, encoder_dir, word=None, char=None, classes=None, coef=None, intercept=None, meta=None):
        self.encoder_dir = encoder_dir
        self.encoder = None
        self.word, self.char = word, char
        self.classes, self.coef, self.intercept = classes, coef, intercept
        self.meta = {"embedding_weight": EMBEDDING_WEIGHT, "temperature": 1.0, **(meta or {})}
        self._blocks = None  # coef split per feature block, float32; made on first use

    def _encoder(self):
        if self.encoder is None:
            self.encoder = SentenceEncoder(self.encoder_dir)
        return self.encoder

    def _embed(self, texts, progress, stop=None):
        """Sentence embeddings, scaled by the model's embedding weight."""
        return self._encoder().encode(texts, progress, stop) * np.float32(self.meta["embedding_weight"])

    # ------------------------------------------------------------ train

    def fit(self, texts, labels, progress=None, calibrate=True):
        """Learn n-gram vocabularies, the SVM and (with `calibrate`) the temperature."""
        from scipy.sparse import csr_matrix

        embedding = csr_matrix(self._embed(texts, progress))
        if calibrate:
            self.meta["temperature"] = fit_temperature(*held_out_scores(texts, labels, embedding))
        self.word, self.char, svm = _fit_svm(texts, labels, embedding)
        self.classes = [str(c) for c in svm.classes_]
        self.coef, self.intercept = svm.coef_.astype(np.float16), svm.intercept_.astype(np.float32)
        self._blocks = None
        self.meta.update(trained_on=len(texts), tasks=len(self.classes), trained_at=time.strftime("%Y-%m-%d %H:%M:%S"))
        return self

    # ------------------------------------------------------------ predict

    def scores(self, texts, progress=None):
        """(len(texts), tasks) decision values; the n-grams are scored while the encoder runs."""
        if self._blocks is None:
            w = self.coef.T.astype(np.float32)
            nw, nc = len(self.word), len(self.char)
            self._blocks = w[:nw], w[nw:nw + nc], w[nw + nc:]
        w_word, w_char, w_emb = self._blocks
        stop, pool = threading.Event(), ThreadPoolExecutor(1)
        try:
            embedding = pool.submit(self._embed, texts, progress, stop)
            out = self.word.dot(texts, w_word) + self.char.dot(texts, w_char)
            out += embedding.result() @ w_emb
        except BaseException:
            stop.set()  # Ctrl-C: the encoder stops after its batches in flight, and nobody waits for them
            pool.shutdown(wait=False)
            raise
        pool.shutdown()
        return out + self.intercept

    def probabilities(self, texts, progress=None):
        """(len(texts), tasks) calibrated probabilities, columns in the order of self.classes."""
        return softmax(self.scores(texts, progress) / np.float32(self.meta["temperature"]))

    def classify(self, texts, progress=None, min_confidence=0.0, min_reject_confidence=MIN_REJECT_CONFIDENCE):
        """(labels, confidences): the most probable task and its probability, `rejecting` only
        at min_reject_confidence or above (else the next task), `default` under min_confidence.
        The confidence is always the probability of the task the model picked, so a record sent
        to `default` shows how unsure it was. Worked through in chunks: memory stays flat."""
        labels, confidences = [], []
        for start in range(0, len(texts), CHUNK):
            prob = self.probabilities(texts[start:start + CHUNK], progress)
            for label, confidence in decide(prob, self.classes, min_confidence, min_reject_confidence):
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
            np.savez_compressed(f, classes=np.array(self.classes),
                                word_vocab=np.array(self.word.vocab), word_idf=self.word.idf,
                                char_vocab=np.array(self.char.vocab), char_idf=self.char.idf,
                                coef=self.coef, intercept=self.intercept)
        meta = {**self.meta, "word_ngrams": WORD_NGRAMS, "char_ngrams": CHAR_NGRAMS, "svm_c": SVM_C,
                "calibration_folds": CALIBRATION_FOLDS}
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
            word = NgramTfidf(meta["word_ngrams"], z["word_vocab"], z["word_idf"])
            char = NgramTfidf(meta["char_ngrams"], z["char_vocab"], z["char_idf"])
            return cls(folder, word, char, [str(c) for c in z["classes"]], z["coef"], z["intercept"], meta)
        except (KeyError, ValueError, OSError) as e:
            raise DataError(f"{folder}: damaged classifier model ({type(e).__name__}: {e})") from None


def decide(prob, classes, min_confidence=0.0, min_reject_confidence=MIN_REJECT_CONFIDENCE):
    """[(label, confidence)] for rows of probabilities: the most probable task, passed over when
    it is `rejecting` under min_reject_confidence (the next task instead), `default` when the
    chosen task's probability is under min_confidence. The confidence is the chosen task's."""
    reject = classes.index(REJECTING) if REJECTING in classes else -1
    out = []
    for row in prob:
        best, second = np.argsort(-row, kind="stable")[:2] if len(row) > 1 else (int(np.argmax(row)), 0)
        if best == reject and row[best] < min_reject_confidence:
            best = second
        confidence = float(row[best])
        out.append((classes[best] if confidence >= min_confidence else DEFAULT_TASK, confidence))
    return out


# ------------------------------------------------------------ training helpers

def _fit_svm(texts, labels, embedding):
    """(word block, char block, fitted LinearSVC) on texts with their precomputed embedding rows."""
    from scipy.sparse import hstack
    from sklearn.svm import LinearSVC

    word, char = fit_ngrams(WORD_NGRAMS, texts), fit_ngrams(CHAR_NGRAMS, texts)
    x = hstack([word.matrix(texts), char.matrix(texts), embedding], format="csr")
    return word, char, LinearSVC(C=SVM_C).fit(x, labels)


def held_out_scores(texts, labels, embedding, folds=CALIBRATION_FOLDS, seed=0):
    """(scores, gold index) for every text from a model that did not see it (stratified K-fold);
    the features are rebuilt inside each fold, so the vocabulary does not leak either."""
    from scipy.sparse import hstack
    from sklearn.model_selection import StratifiedKFold

    classes = sorted(set(labels))
    gold = np.array([classes.index(label) for label in labels])
    folds = min(folds, np.bincount(gold).min())
    if folds < 2:
        raise ValueError("calibration needs at least two examples of every task")
    scores = np.zeros((len(texts), len(classes)), dtype=np.float32)
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(texts, gold):
        part = [texts[i] for i in train]
        word, char, svm = _fit_svm(part, [labels[i] for i in train], embedding[train])
        held = [texts[i] for i in test]
        x = hstack([word.matrix(held), char.matrix(held), embedding[test]], format="csr")
        scores[test] = svm.decision_function(x)
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


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
