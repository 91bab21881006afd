"""The embedded task classifier: TF-IDF word and character n-grams plus MiniLM sentence
embeddings, side by side in one feature vector, scored by a linear SVM.

Why both: n-grams catch the surface cues of a task ("translate", "fix this code", a pasted
traceback); embeddings carry meaning across wordings the training data never used. The
measurements behind the choice are in bench/README.md (classify section).

An artifact is a folder:
  head.npz        vocabularies and idf weights of both n-gram vectorizers, the SVM's
                  weights (float16) and biases, the class names. No pickle.
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
from realign.records import DataError, UsageError, atomic_open

DEFAULT_MODEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model")

# Settings of the n-gram vectorizers; kept in meta.json so a saved model rebuilds them as trained.
WORD_NGRAMS = dict(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, lowercase=True,
                   token_pattern=r"(?u)\b\w+\b", min_df=2, max_features=40000)
CHAR_NGRAMS = dict(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, lowercase=True,
                   min_df=2, max_features=60000)
SVM_C = 0.5
EMBEDDING_WEIGHT = 1.0  # scale of the embedding block next to the two unit-length tf-idf blocks


def _vectorizer(params, vocab=None, idf=None):
    from sklearn.feature_extraction.text import TfidfVectorizer

    params = {**params, "ngram_range": tuple(params["ngram_range"]), "dtype": np.float32}
    if vocab is None:
        return TfidfVectorizer(**params)
    params.pop("min_df"), params.pop("max_features")
    vec = TfidfVectorizer(**params, vocabulary={t: i for i, t in enumerate(vocab)})
    vec.idf_ = idf
    return vec


class TaskClassifier:
    """fit(texts, labels) / predict(texts); save(folder) / TaskClassifier.load(folder)."""

    def __init__(self, encoder_dir, word=None, char=None, classes=None, coef=None, intercept=None, meta=None):
        self.encoder_dir = encoder_dir
        self.encoder = None
        self.word, self.char = word, char
        self.classes, self.coef, self.intercept = classes, coef, intercept
        self._weights = None  # coef as float32, transposed; made on first use
        self.meta = meta or {}

    # ------------------------------------------------------------ features

    def _encoder(self):
        if self.encoder is None:
            self.encoder = SentenceEncoder(self.encoder_dir)
        return self.encoder

    def features(self, texts, progress=None):
        """Sparse matrix: [word tf-idf | char tf-idf | weighted sentence embedding].
        The n-grams are counted while the encoder runs in the background."""
        from scipy.sparse import csr_matrix, hstack

        with ThreadPoolExecutor(1) as pool:
            embedding = pool.submit(self._encoder().encode, texts, progress)
            word, char = self.word.transform(texts), self.char.transform(texts)
            emb = embedding.result()
        return hstack([word, char,
                       csr_matrix(emb * self.meta.get("embedding_weight", EMBEDDING_WEIGHT))], format="csr")

    # ------------------------------------------------------------ train / predict

    def fit(self, texts, labels, progress=None):
        from sklearn.svm import LinearSVC

        self.word = _vectorizer(WORD_NGRAMS).fit(texts)
        self.char = _vectorizer(CHAR_NGRAMS).fit(texts)
        svm = LinearSVC(C=SVM_C).fit(self.features(texts, progress), labels)
        self.classes = [str(c) for c in svm.classes_]
        self.coef, self._weights = svm.coef_.astype(np.float16), None
        self.intercept = svm.intercept_.astype(np.float32)
        self.meta.update(trained_on=len(texts), tasks=len(self.classes),
                         trained_at=time.strftime("%Y-%m-%d %H:%M:%S"))
        return self

    def scores(self, texts, progress=None):
        if self._weights is None:
            self._weights = np.ascontiguousarray(self.coef.T, dtype=np.float32)
        return np.asarray(self.features(texts, progress) @ self._weights) + self.intercept

    def predict(self, texts, progress=None):
        if not texts:
            return []
        best = self.scores(texts, progress).argmax(axis=1)
        return [self.classes[i] for i in best]

    # ------------------------------------------------------------ artifact

    def save(self, folder):
        """Write the artifact folder (the encoder files are copied in, so it stands alone)."""
        os.makedirs(folder, exist_ok=True)
        head = os.path.join(folder, "head.npz")
        with open(head + ".tmp", "wb") as f:  # then renamed: never a half-written head
            np.savez_compressed(
                f, classes=np.array(self.classes),
                word_vocab=self.word.get_feature_names_out().astype(str), word_idf=self.word.idf_.astype(np.float32),
                char_vocab=self.char.get_feature_names_out().astype(str), char_idf=self.char.idf_.astype(np.float32),
                coef=self.coef, intercept=self.intercept)
        os.replace(head + ".tmp", head)
        meta = {**self.meta, "word_ngrams": _jsonable(WORD_NGRAMS), "char_ngrams": _jsonable(CHAR_NGRAMS),
                "svm_c": SVM_C, "embedding_weight": self.meta.get("embedding_weight", EMBEDDING_WEIGHT)}
        with atomic_open(os.path.join(folder, "meta.json")) as f:
            json.dump(meta, f, indent=2)
            f.write("\n")
        os.chmod(os.path.join(folder, "meta.json"), 0o644)
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
        with open(os.path.join(folder, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
        try:
            z = np.load(head, allow_pickle=False)
            word = _vectorizer(meta["word_ngrams"], z["word_vocab"], z["word_idf"])
            char = _vectorizer(meta["char_ngrams"], z["char_vocab"], z["char_idf"])
            return cls(folder, word, char, [str(c) for c in z["classes"]], z["coef"], z["intercept"], meta)
        except (KeyError, ValueError, OSError) as e:
            raise DataError(f"{head}: damaged classifier model ({e})") from None


def _jsonable(params):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
