"""TF-IDF n-gram features without scikit-learn at run time.

scikit-learn learns the vocabulary and idf weights at training time (`fit_ngrams`); after
that, turning text into features is a few lines of Python and numpy, done here, so that
loading the classifier does not import scikit-learn and SciPy (over a second on a small
machine). The analyzers repeat scikit-learn's `TfidfVectorizer` exactly (lowercase; word
n-grams of `token_pattern` tokens, or `char_wb` n-grams padded with a space at each word
edge; sublinear tf, idf, l2 norm); a test checks both give the same numbers.

Texts are cut to MAX_CHARS before any n-gram is made (training and predicting alike): a
50 MB question once took 17 GB as n-grams; the task shows in the first few thousand characters.
A block may look at only a part of the text (params "part": "head" or "tail", the first or last
"part_chars" characters): the ask of a prompt is usually in its first or last sentence, and a
long pasted text drowns it in the whole-text blocks.
"""

import math
import re

import numpy as np

_SPACES = re.compile(r"\s\s+")
MAX_CHARS = 8000  # 5x the longest instruction of the training data


def clip(text):
    """The part of a text the classifier looks at: its first MAX_CHARS characters."""
    return text[:MAX_CHARS]


def view(params, text):
    """What a block with these params reads of `text`: its head, its tail, or all of it (clipped)."""
    part = params.get("part")
    if part == "head":
        return text[:params["part_chars"]]
    if part == "tail":
        return text[-params["part_chars"]:]
    return clip(text)


def sklearn_params(params):
    """The params scikit-learn's TfidfVectorizer takes (ours, part and part_chars, left out)."""
    return {k: tuple(v) if k == "ngram_range" else v for k, v in params.items() if k not in ("part", "part_chars")}


class NgramTfidf:
    """One block of the feature vector: `analyzer` "word" or "char_wb", fixed vocabulary and idf."""

    def __init__(self, params, vocab, idf):
        self.params = params
        self.lo, self.hi = params["ngram_range"]
        self.char = params["analyzer"] == "char_wb"
        self.token = re.compile(params.get("token_pattern") or r"(?u)\b\w\w+\b")
        self.vocab = vocab.tolist() if hasattr(vocab, "tolist") else list(vocab)
        self.index = {term: i for i, term in enumerate(self.vocab)}
        self.idf = np.asarray(idf, dtype=np.float32)

    def __len__(self):
        return len(self.vocab)

    def ngrams(self, text):
        text = view(self.params, text).lower()
        if self.char:
            return _char_wb_ngrams(_SPACES.sub(" ", text), self.lo, self.hi)
        return _word_ngrams(self.token.findall(text), self.lo, self.hi)

    def row(self, text):
        """(column indices, values) of one text's l2-normalised tf-idf vector."""
        counts = {}
        for gram in self.ngrams(text):
            j = self.index.get(gram)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        cols = np.fromiter(counts, dtype=np.int64, count=len(counts))
        tf = np.fromiter((1.0 + math.log(c) for c in counts.values()), dtype=np.float32, count=len(counts))
        values = tf * self.idf[cols]
        norm = float(np.sqrt(values @ values))
        return cols, (values / norm if norm else values)

    def rows(self, texts):
        """CSR parts (indptr, indices, data) of the texts' feature rows."""
        parts = [self.row(t) for t in texts]
        indptr = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum([len(c) for c, _ in parts], out=indptr[1:])
        if not parts:
            return indptr, np.zeros(0, np.int64), np.zeros(0, np.float32)
        return indptr, np.concatenate([c for c, _ in parts]), np.concatenate([v for _, v in parts])

    def matrix(self, texts):
        """The rows as a SciPy sparse matrix (training only)."""
        from scipy.sparse import csr_matrix

        indptr, indices, data = self.rows(texts)
        return csr_matrix((data, indices, indptr), shape=(len(texts), len(self)))

    def dot(self, texts, weights):
        """rows @ weights for a dense (len(self), k) weight block, one text at a time (no matrix,
        memory independent of how many texts)."""
        out = np.zeros((len(texts), weights.shape[1]), dtype=np.float32)
        for i, text in enumerate(texts):
            cols, values = self.row(text)
            if len(cols):
                out[i] = values @ weights[cols]
        return out


def _word_ngrams(tokens, lo, hi):
    grams = []
    for n in range(lo, min(hi, len(tokens)) + 1):
        grams += [" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return grams


def _char_wb_ngrams(text, lo, hi):
    grams = []
    for word in text.split():
        word = f" {word} "
        for n in range(lo, hi + 1):
            grams += [word[i:i + n] for i in range(max(1, len(word) - n + 1))]
            if len(word) <= n:  # a short word counts once, whole
                break
    return grams


def fit_ngrams(params, texts):
    """Learn vocabulary and idf with scikit-learn; return the run-time block."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(**sklearn_params(params), dtype=np.float32).fit([view(params, t) for t in texts])
    return NgramTfidf(params, vec.get_feature_names_out().astype(str), vec.idf_)
