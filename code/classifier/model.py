"""The embedded task classifier: TF-IDF word and character n-grams plus MiniLM sentence
embeddings, side by side in one feature vector, scored by a linear SVM.

Why both: n-grams catch the surface cues of a task ("translate", "fix this code", a pasted
traceback); embeddings carry meaning across wordings the training data never used. The
measurements behind the choice are in bench/README.md (classify section).

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
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from realign.classifier.encoder import ONNX_FILE, TOKENIZER_FILE, SentenceEncoder, has_encoder
from realign.classifier.features import NgramTfidf, fit_ngrams
from realign.errors import DataError, UsageError
from realign.files import atomic_open

DEFAULT_MODEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model")

# Settings of the n-gram blocks; kept in meta.json so a saved model rebuilds them as trained.
WORD_NGRAMS = dict(analyzer="word", ngram_range=[1, 2], sublinear_tf=True, lowercase=True,
                   token_pattern=r"(?u)\b\w+\b", min_df=2, max_features=40000)
CHAR_NGRAMS = dict(analyzer="char_wb", ngram_range=[2, 5], sublinear_tf=True, lowercase=True,
                   min_df=2, max_features=60000)
SVM_C = 0.5
EMBEDDING_WEIGHT = 1.0  # scale of the embedding block next to the two unit-length tf-idf blocks
CHUNK = 4096  # instructions predicted at a time


class TaskClassifier:
    """fit(texts, labels) / predict(texts); save(folder) / TaskClassifier.load(folder)."""

    def __init__(self, encoder_dir, word=None, char=None, classes=None, coef=None, intercept=None, meta=None):
        self.encoder_dir = encoder_dir
        self.encoder = None
        self.word, self.char = word, char
        self.classes, self.coef, self.intercept = classes, coef, intercept
        self.meta = {"embedding_weight": EMBEDDING_WEIGHT, **(meta or {})}
        self._blocks = None  # coef split per feature block, float32; made on first use

    def _encoder(self):
        if self.encoder is None:
            self.encoder = SentenceEncoder(self.encoder_dir)
        return self.encoder

    def _embed(self, texts, progress):
        """Sentence embeddings, scaled by the model's embedding weight."""
        return self._encoder().encode(texts, progress) * np.float32(self.meta["embedding_weight"])

    # ------------------------------------------------------------ train

    def fit(self, texts, labels, progress=None):
        from scipy.sparse import csr_matrix, hstack
        from sklearn.svm import LinearSVC

        self.word, self.char = fit_ngrams(WORD_NGRAMS, texts), fit_ngrams(CHAR_NGRAMS, texts)
        x = hstack([self.word.matrix(texts), self.char.matrix(texts), csr_matrix(self._embed(texts, progress))],
                   format="csr")
        svm = LinearSVC(C=SVM_C).fit(x, labels)
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
        with ThreadPoolExecutor(1) as pool:
            embedding = pool.submit(self._embed, texts, progress)
            out = self.word.dot(texts, w_word) + self.char.dot(texts, w_char)
            out += embedding.result() @ w_emb
        return out + self.intercept

    def predict(self, texts, progress=None):
        """Task names, worked through in chunks so memory stays flat on large files."""
        labels = []
        for start in range(0, len(texts), CHUNK):
            best = self.scores(texts[start:start + CHUNK], progress).argmax(axis=1)
            labels += [self.classes[i] for i in best]
        return labels

    # ------------------------------------------------------------ artifact

    def save(self, folder):
        """Write the artifact folder (the encoder files are copied in, so it stands alone)."""
        os.makedirs(folder, exist_ok=True)
        with atomic_open(os.path.join(folder, "head.npz"), "wb") as f:
            np.savez_compressed(f, classes=np.array(self.classes),
                                word_vocab=np.array(self.word.vocab), word_idf=self.word.idf,
                                char_vocab=np.array(self.char.vocab), char_idf=self.char.idf,
                                coef=self.coef, intercept=self.intercept)
        meta = {**self.meta, "word_ngrams": WORD_NGRAMS, "char_ngrams": CHAR_NGRAMS, "svm_c": SVM_C}
        with atomic_open(os.path.join(folder, "meta.json")) as f:
            json.dump(meta, f, indent=2)
            f.write("\n")
        for name in (ONNX_FILE, TOKENIZER_FILE):
            src, dst = os.path.join(self.encoder_dir, name), os.path.join(folder, name)
            if os.path.abspath(src) != os.path.abspath(dst):
                shutil.copyfile(src, dst)

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
