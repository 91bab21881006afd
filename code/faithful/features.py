"""What the checker's head reads about one (window, claim) pair: sentence embeddings and alignment facts.

    features(pairs, encoder) -> float32 array (n, DIM)

A pair is (direction, window, claim): `window` the claims of the other side that share the most
words with `claim` (text.Source.window), `direction` "unsupported" or "lost". The embeddings come
from the sentence encoder the classifier already ships (all-MiniLM-L6-v2, int8 ONNX), so the
checker adds no second transformer: the claim and the window claim closest to it give the
InferSent-style features u * v and |u - v|, plus the cosine to the closest and the mean cosine.
Beside them, facts a bi-encoder reads badly (the classic NLI blind spots): content words of the
claim the window lacks, a negation count that differs, a word whose opposite the window uses
instead, numbers (digits or words) the window lacks, order words, quantifiers, and how many of the
closest sentence's words the claim keeps.
"""

import math

import numpy as np

from realign.faithful.perturb import _PAIRS, _QUANT, NUMBER_WORDS
from realign.faithful.text import bigrams, content, words

NEGATIONS = frozenset("not never no without nor none neither".split())
ORDER = frozenset("before after then first last than until earlier later prior following".split())
NUMBERS = frozenset(NUMBER_WORDS) | {"half", "twice", "double", "triple", "quarter", "dozen"}
N_LEXICAL = 14
DIM = 2 * 384 + N_LEXICAL + 2   # u * v, |u - v|, the alignment facts, the closest and the mean cosine


def lexical(direction, window, claim, best):
    """The alignment facts of one pair (see the module docstring): N_LEXICAL floats."""
    cw = words(claim)
    cs = set(content(cw))
    ww = [w for c in window for w in words(c)]
    wset = set(ww)
    ws = set(content(ww))
    bw = words(best)
    bs = set(content(bw))
    new = cs - ws
    neg_c = sum(w in NEGATIONS for w in cw)
    neg_b = sum(w in NEGATIONS for w in bw)
    clash = sum(1 for w in cw if w in _PAIRS and w not in wset and _PAIRS[w] in wset)
    numbers = sum(1 for w in cw if (w.isdigit() or w in NUMBERS) and w not in wset)
    quant = sum(1 for w in cw if w in _QUANT and w not in wset)
    order = sum(w in ORDER for w in cw)
    grams = bigrams(cw)
    return [len(new) / max(1, len(cs)), min(len(new), 10) / 10, len(bs - cs) / max(1, len(bs)),
            float(neg_c - neg_b), float(abs(neg_c - neg_b)), float(neg_c > 0 and not NEGATIONS & wset),
            float(min(clash, 3)), float(min(numbers, 3)), float(min(quant, 3)), float(min(order, 3)),
            len(grams & bigrams(ww)) / max(1, len(grams)), math.log1p(len(cs)), float(direction == "lost"),
            float(min(len(new), 1))]


def features(pairs, encoder):
    """The (n, DIM) feature matrix of `pairs` [(direction, window, claim)]; `encoder` has
    .encode(texts) -> unit vectors (realign.classifier.encoder.SentenceEncoder)."""
    texts = sorted({t for _, window, claim in pairs for t in (claim, *window)})
    if not pairs:
        return np.zeros((0, DIM), dtype=np.float32)
    at = {t: i for i, t in enumerate(texts)}
    vec = encoder.encode(texts)
    out = np.zeros((len(pairs), DIM), dtype=np.float32)
    for n, (direction, window, claim) in enumerate(pairs):
        u = vec[at[claim]]
        if window:
            w = vec[[at[t] for t in window]]
            cos = w @ u
            b = int(np.argmax(cos))
            v, best, top, mean = w[b], window[b], float(cos[b]), float(cos.mean())
        else:
            v, best, top, mean = np.zeros_like(u), "", 0.0, 0.0
        out[n, :384] = u * v
        out[n, 384:768] = np.abs(u - v)
        out[n, 768:768 + N_LEXICAL] = lexical(direction, window, claim, best)
        out[n, -2:] = top, mean
    return out
