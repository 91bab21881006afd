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
  3. a nearest-neighbour vote: the k training prompts (ours and the trainable real ones) nearest
     in sentence-embedding space vote for their tasks, and beta * log(vote) joins the scores
     (beta fitted with T and alpha). A linear SVM draws one boundary per task; the vote adds what
     a boundary misses near prompts it was trained on.
  4. the task mix of the data being labelled (Saerens, Latinne & Decaestecker 2002, "Adjusting
     the outputs of a classifier to new a priori probabilities"): real datasets differ in their
     mix (one is half `default`, another half questions), so `classify` re-estimates the mix of
     each batch it labels by EM over the batch's probabilities, shrunk toward the calibration
     set's mix by a pseudo-count of `strength` x the batch size, and reweights the probabilities
     by new mix / old mix. The strength is chosen by leaving one source of real prompts out at
     a time (it adapts to the held-out source, unlabelled, and the strength that labels the
     held-out sources best wins; None, no adaptation, is a candidate).

Real prompts may carry more than one label (two labellers who disagree): each label is a row
with its share of the weight, so the confidence estimates agreement with a labeller.
Fitting needs scikit-learn; using the fitted numbers needs only numpy.
"""

import numpy as np

TEMPERATURES = np.geomspace(0.02, 2.0, 48)
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
KNN_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5)  # candidates for beta, the vote's weight
KNN_K = 10  # neighbours that vote
KNN_TEMPERATURE = 0.05  # a neighbour's vote is exp(cosine similarity / this), relative to the nearest
KNN_SMOOTHING = 0.1  # spread over every task before the log: a task no neighbour named is unlikely, not impossible
KNN_BLOCK = 512  # query rows per similarity block (memory: block x index size floats)
MIX_STRENGTHS = (None, 4.0, 2.0, 1.0, 0.5, 0.25)  # candidates for the mix's pseudo-count, x batch size
MIX_ITERATIONS = 50
MIN_MIX_RECORDS = 30  # a smaller batch keeps the calibration set's mix (or the one of the batch before)
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


def fit_scaling(scores, gold, weights, log_ratio, votes=None):
    """(temperature, alpha, beta) minimising the weighted log-loss of
    softmax(scores / T + alpha * log_ratio + beta * votes) on held-out scores (votes: knn_log_votes
    of the same rows, None for beta 0); gold holds class indices."""
    best = None
    for beta in KNN_WEIGHTS if votes is not None else (0.0,):
        for alpha in ALPHAS:
            bias = alpha * log_ratio + (beta * votes if beta else 0.0)
            for t in TEMPERATURES:
                loss = log_loss(softmax(scores / t + bias), gold, weights)
                if best is None or loss < best[0]:
                    best = (loss, float(t), float(alpha), float(beta))
    return best[1:]


def knn_log_votes(query, index, labels, weights, classes, k=KNN_K, temperature=KNN_TEMPERATURE,
                  smoothing=KNN_SMOOTHING):
    """(len(query), classes) log of the k nearest index rows' vote for each class. query (n, d) and
    index (m, d) hold unit-length sentence embeddings (cosine similarity = dot product); labels (m,)
    are class indices, weights (m,) each row's weight (a prompt two labellers split is two rows)."""
    out = np.zeros((len(query), classes), dtype=np.float64)
    k = min(k, len(index))
    for start in range(0, len(query), KNN_BLOCK):
        # one matrix-vector product per row: a batched product rounds differently with the batch's
        # shape, and a prompt must get the same numbers in any company
        sims = np.stack([index @ q for q in np.asarray(query[start:start + KNN_BLOCK], index.dtype)])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        near = np.take_along_axis(sims, top, axis=1)
        w = np.exp((near - near.max(axis=1, keepdims=True)) / temperature) * weights[top]
        votes = np.zeros((len(top), classes))
        np.add.at(votes, (np.repeat(np.arange(len(top)), k), labels[top].ravel()), w.ravel())
        out[start:start + len(top)] = votes / votes.sum(axis=1, keepdims=True)
    return np.log(out + smoothing / classes)


def adapt_to_mix(prob, prior, strength, iterations=MIX_ITERATIONS):
    """(probabilities, mix): `prob` (n, classes) reweighted to the class mix EM estimates for these
    rows, starting from and shrunk toward `prior` (the mix the probabilities were calibrated on)
    by strength x n pseudo-counts. Saerens et al. 2002."""
    prior = np.asarray(prior, dtype=np.float64)
    mix, adjusted = prior, prob
    pseudo = strength * len(prob)
    for _ in range(iterations):
        adjusted = reweight(prob, prior, mix)
        mix = (adjusted.sum(axis=0) + pseudo * prior) / (len(prob) + pseudo)
    return adjusted, mix


def reweight(prob, prior, mix):
    """`prob` reweighted from the class mix `prior` to `mix`."""
    adjusted = prob * (np.asarray(mix) / np.asarray(prior))
    return adjusted / adjusted.sum(axis=1, keepdims=True)


def adapt_each_group(prob, groups, prior, strength):
    """A copy of `prob` with each group's rows (groups: (n,) names) adapted to that group's own
    mix (adapt_to_mix); as it is for strength None."""
    adapted = prob.copy()
    if strength is not None:
        groups = np.asarray(groups)
        for g in set(groups):
            inside = groups == g
            adapted[inside] = adapt_to_mix(prob[inside], prior, strength)[0]
    return adapted


def choose_mix_strength(prob, right_of, groups, strengths=MIX_STRENGTHS):
    """The strength (None: no adaptation) under which adapting each group's rows to its own mix
    labels them best. prob (n, classes) holds one row per prompt, right_of(chosen) the share right
    of each prompt's chosen class, groups (n,) the prompt's group (source)."""
    prior = prob.mean(axis=0)
    best = None
    for strength in strengths:
        adapted = adapt_each_group(prob, groups, prior, strength)
        score = float(right_of(adapted.argmax(axis=1)).mean())
        if best is None or score > best[0] + 1e-9:
            best = (score, strength)
    return best[1], prior


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
