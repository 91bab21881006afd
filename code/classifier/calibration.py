"""What the embedded classifier's confidence means, fitted on prompts written by people.

A classifier trained on our own generated prompts is sure of itself on prompts like those and
far less right on real ones (bench/README.md, classify section). So its scores are turned into
a confidence with three pieces fitted on labelled real prompts, from scores the model gave them
without having trained on them (K-fold):

  1. a temperature T and a class bias: probabilities are softmax(scores / T + bias), where
     bias = alpha * log(share of the task among real prompts / share in the training data).
     Training data has about as many prompts of every task; real prompts do not (open questions
     and `default` are common, language_classification rare), and the bias moves the
     decision toward what real prompts are. T and alpha minimise the log-loss (grid search).
  2. a confidence map: the probability that the chosen task is right, a logistic function of
     log p (the chosen task's probability), log p - log q (q: the best other task's) and which
     task was chosen (an offset per task: a 0.6 on math_puzzles is right more often than a 0.6
     on default; regularised toward 0, so a task seldom chosen keeps about the shared curve),
     fitted to whether the choice was right. This is what `category_confidence` reports; on
     held-out real prompts a confidence of 0.8 means right about 4 times in 5.

Real prompts may carry more than one label (two labellers who disagree): each label is a row
with its share of the weight, so the confidence estimates agreement with a labeller.
Fitting needs scikit-learn; using the fitted numbers needs only numpy.
"""

import numpy as np

TEMPERATURES = np.geomspace(0.02, 2.0, 48)
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
PRIOR_SMOOTHING = 1.0  # added to every task's weight when counting shares (no task gets share 0)


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def shares(labels, classes, weights=None):
    """Smoothed share of each class (in `classes` order) among `labels`."""
    index = {c: i for i, c in enumerate(classes)}
    counts = np.full(len(classes), PRIOR_SMOOTHING)
    for label, w in zip(labels, weights if weights is not None else np.ones(len(labels))):
        counts[index[label]] += w
    return counts / counts.sum()


def log_loss(prob, gold, weights):
    picked = prob[np.arange(len(gold)), gold]
    return float(-(weights * np.log(np.maximum(picked, 1e-12))).sum() / weights.sum())


def fit_scaling(scores, gold, weights, log_ratio):
    """(temperature, alpha) minimising the weighted log-loss of softmax(scores / T + alpha * log_ratio)
    on held-out scores; gold holds class indices."""
    best = None
    for alpha in ALPHAS:
        bias = alpha * log_ratio
        for t in TEMPERATURES:
            loss = log_loss(softmax(scores / t + bias), gold, weights)
            if best is None or loss < best[0]:
                best = (loss, float(t), float(alpha))
    return best[1], best[2]


def top_two(prob, chosen):
    """(p, q): the chosen class's probability and the best other class's, per row."""
    rows = np.arange(len(prob))
    p = prob[rows, chosen]
    others = prob.copy()
    others[rows, chosen] = -1.0
    return p, others.max(axis=1)


def map_features(p, q):
    lp = np.log(np.maximum(p, 1e-12))
    return np.column_stack([lp, lp - np.log(np.maximum(q, 1e-12))])


def fit_confidence_map(p, q, correct, weights, chosen=None, classes=0):
    """[w0, w1, w2] of P(right) = sigmoid(w0 + w1 log p + w2 (log p - log q)), weighted logistic
    regression (mildly regularised) on held-out choices; with `chosen` (the chosen class index per
    row) and `classes` (how many), followed by one offset per class added for rows that chose it."""
    from sklearn.linear_model import LogisticRegression

    x = map_features(p, q)
    if chosen is not None:
        x = np.hstack([x, np.eye(classes)[chosen]])
    lr = LogisticRegression(C=1.0, max_iter=1000).fit(x, correct.astype(int), sample_weight=weights)
    return [float(lr.intercept_[0]), *map(float, lr.coef_[0])]


def apply_confidence_map(weights, p, q, chosen=None):
    """The confidence of choices whose probability is p (best other q), by a fitted map (its
    per-class offsets used when it has them and `chosen` gives the class indices); p itself
    without a map."""
    if not weights:
        return p
    z = weights[0] + map_features(p, q) @ np.asarray(weights[1:3], dtype=np.float64)
    if len(weights) > 3 and chosen is not None:
        z = z + np.asarray(weights[3:], dtype=np.float64)[chosen]
    return 1.0 / (1.0 + np.exp(-z))


def fold_of(text, folds):
    """A prompt's fold, fixed by its text (rows of one prompt, one per labeller, stay together)."""
    import hashlib

    return int(hashlib.sha1(text.encode("utf-8")).hexdigest(), 16) % folds
