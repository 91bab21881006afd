"""Variants of the classifier's calibration, each measured leaving one human-written source out, fast.

    python bench/classify_variants.py --texts human_prompts.jsonl [--scores FILE] [--cache FILE]

bench/classify_sources.py builds a whole model per held-out source (10-15 minutes). Everything
the calibration fits is fitted on scores the real prompts got from SVMs that did not train on
their source; and which human prompts an SVM trains on depends only on which of the four
trainable sources are left out (the held-out one and, inside its calibration, the row's own).
So 11 SVMs (none, one or two of the four left out) give every score the nested protocol needs;
they are fitted once and kept in --scores (an .npz), and each variant below is then a few seconds
of numpy: for each held-out source S, fit on the other sources' rows (each scored by the SVM that
saw neither S nor the row's source), label S's prompts (scored by the SVM that did not see S).
The `shipped` line reproduces bench/classify_sources.py's numbers (same folds, same fits; the
SVM's solver is not seeded, so a refit can move a prompt or two).

Variants: `before` (temperature, class bias, confidence map with an offset per task), per-task
score offsets (L2, lambda by inner leave-one-source-out or fixed), extra confidence-map features
(margin, n-gram / embedding agreement, per-part probabilities, length, entropy, raw margin), the
nearest-neighbour vote, the adaptation to the held-out source's task mix, and both (`shipped`).
"""

import argparse
import itertools
import os
import sys
import time

import numpy as np
from scipy.optimize import minimize
from scipy.sparse import csr_matrix

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from classify_human import TRAIN, TRAINABLE_SOURCES, load_set  # noqa: E402
from classify_sources import NOT_FITTED, CachedEmbeddings, load_cache, real_prompts, save_cache  # noqa: E402

import realign.classifier.model as M  # noqa: E402
from realign.classifier.calibration import (MIN_MIX_RECORDS, adapt_each_group, adapt_to_mix,  # noqa: E402
                                            apply_confidence_map, choose_mix_strength, fit_confidence_map, fit_scaling,
                                            knn_log_votes, shares, softmax, top_two)
from realign.classifier.data import load_labeled  # noqa: E402


def fit_scores(prompts, texts, labels, path):
    """Fit the 11 SVMs; save each one's n-gram part, embedding part and intercept for every prompt."""
    model = CachedEmbeddings(encoder_dir=M.DEFAULT_MODEL_DIR)
    human = [p["text"] for p in prompts]
    emb_h, emb_t = model._embed(human, None), model._embed(texts, None)
    real = real_prompts([p for p in prompts if p["source"] not in NOT_FITTED], True, "source")
    where = {t: i for i, t in enumerate(human)}
    out = {}
    for left in [()] + [(s,) for s in TRAINABLE_SOURCES] + list(itertools.combinations(TRAINABLE_SOURCES, 2)):
        start = time.monotonic()
        pick = [i for i in np.flatnonzero(real.train) if real.groups[i] not in left]
        x = np.vstack([emb_t, emb_h[[where[real.texts[i]] for i in pick]]])
        w = np.concatenate([np.ones(len(texts)), M.REAL_WEIGHT * real.weights[pick]])
        blocks, svm = M._fit_svm(texts + [real.texts[i] for i in pick], labels + [real.labels[i] for i in pick],
                                 csr_matrix(x), w)
        features = M._features(blocks, human, csr_matrix(emb_h))
        cut = sum(len(b) for b in blocks.values())
        key = "+".join(left) or "none"
        out[f"{key}/ngrams"] = np.asarray(features[:, :cut] @ svm.coef_[:, :cut].T)
        out[f"{key}/embedding"] = np.asarray(features[:, cut:] @ svm.coef_[:, cut:].T)
        out[f"{key}/intercept"] = svm.intercept_
        out["classes"] = np.array(svm.classes_)
        print(f"  SVM without {key}: {time.monotonic() - start:.0f} s", flush=True)
    np.savez(path, **out)
    return np.load(path)


class Folds:
    """Per held-out source: the calibration rows and the held-out rows, scored as the protocol says."""

    def __init__(self, prompts, scores, texts, labels, embeddings):
        self.p, self.z = prompts, scores
        self.classes = [str(c) for c in scores["classes"]]
        k = len(self.classes)
        self.src = np.array([p["source"] for p in prompts])
        self.y = np.zeros((len(prompts), k))  # share of the labellers per task
        for i, p in enumerate(prompts):
            for label in p["labels"]:
                self.y[i, self.classes.index(label)] += 1 / len(p["labels"])
        self.length = np.array([len(p["text"]) for p in prompts], dtype=float)
        self.train_labels = labels
        self.train_emb = embeddings[0]
        self.emb = embeddings[1]
        self.train_y = np.array([self.classes.index(x) for x in labels])

    def parts(self, rows, left_of):
        ng, em, b = [], [], []
        for i in rows:
            key = "+".join(s for s in TRAINABLE_SOURCES if s in left_of(i)) or "none"
            ng.append(self.z[f"{key}/ngrams"][i])
            em.append(self.z[f"{key}/embedding"][i])
            b.append(self.z[f"{key}/intercept"])
        return np.array(ng), np.array(em), np.array(b)

    def votes(self, rows, left_of):
        """knn_log_votes of the prompts `rows` over our training data and the trainable human prompts
        of the sources not in left_of(row) (a split label: one index row per label, half weight)."""
        label_rows = [(j, k) for j in range(len(self.p)) if self.src[j] in TRAINABLE_SOURCES
                      for k in np.flatnonzero(self.y[j])]
        out = np.zeros((len(rows), len(self.classes)))
        groups = {}
        for n, i in enumerate(rows):
            groups.setdefault(frozenset(left_of(i)), []).append(n)
        for left, members in groups.items():
            seen = [(j, k) for j, k in label_rows if self.src[j] not in left]
            index = np.vstack([self.train_emb, self.emb[[j for j, _ in seen]]])
            lab = np.concatenate([self.train_y, [k for _, k in seen]]).astype(int)
            wt = np.concatenate([np.ones(len(self.train_y)), [self.y[j, k] for j, k in seen]])
            out[members] = knn_log_votes(self.emb[rows[members]], index, lab, wt, len(self.classes))
        return out

    def split(self, held, votes=False):
        fitted = [s for s in sorted(set(self.src)) if s not in NOT_FITTED]
        cal = np.array([i for i in range(len(self.p)) if self.src[i] in fitted and self.src[i] != held])
        test = np.flatnonzero(self.src == held)
        c = {"rows": cal, "src": self.src[cal], "y": self.y[cal], "len": self.length[cal]}
        t = {"rows": test, "src": self.src[test], "y": self.y[test], "len": self.length[test]}
        c["ng"], c["em"], c["b"] = self.parts(cal, lambda i: {held, self.src[i]})
        t["ng"], t["em"], t["b"] = self.parts(test, lambda i: {held})
        if votes:
            c["votes"] = self.votes(cal, lambda i: {held, self.src[i]})
            t["votes"] = self.votes(test, lambda i: {held})
        labs, wts = list(self.train_labels), [1.0] * len(self.train_labels)
        for i in np.flatnonzero(np.isin(self.src, TRAINABLE_SOURCES) & (self.src != held)):
            for k in np.flatnonzero(self.y[i]):
                labs.append(self.classes[k])
                wts.append(M.REAL_WEIGHT * self.y[i, k])
        real = (1.0 + c["y"].sum(axis=0)) / (len(self.classes) + c["y"].sum())
        c["log_ratio"] = t["log_ratio"] = np.log(real / shares(labs, self.classes, np.array(wts)))
        return c, t


# ---------------------------------------------------------------- the variants

def label_rows(d):
    """(gold, weight, prompt) per label row of a prompt (a split label: two half rows)."""
    gold, weight, prompt = [], [], []
    for i, y in enumerate(d["y"]):
        for k in np.flatnonzero(y):
            gold.append(k)
            weight.append(y[k])
            prompt.append(i)
    return np.array(gold), np.array(weight), np.array(prompt)


def decide_rows(prob, confidence_of, reject):
    """The shipped decision: top task, `rejecting` only at 0.7 confidence or above."""
    order = np.argsort(-prob, axis=1, kind="stable")
    best = order[:, 0].copy()
    conf = confidence_of(prob, best)
    passed = (best == reject) & (conf < M.MIN_REJECT_CONFIDENCE)
    if passed.any():
        best[passed] = order[passed, 1]
        conf = np.where(passed, confidence_of(prob, best), conf)
    return best, conf


def fit_offsets(z, y, lam):
    """Per-task offsets b minimising the log-loss of softmax(z + b) against shares y, + lam |b|^2."""
    def loss(b):
        p = softmax(z + b)
        return (-(y * np.log(np.maximum(p, 1e-12))).sum() / len(z) + lam * b @ b,
                (p - y).sum(axis=0) / len(z) + 2 * lam * b)
    return minimize(loss, np.zeros(z.shape[1]), jac=True, method="L-BFGS-B").x


def confidence_features(d, prob, best, temperature, extra):
    rows = np.arange(len(best))
    p, q = top_two(prob, best)
    lp = np.log(np.maximum(p, 1e-12))
    cols = [lp, lp - np.log(np.maximum(q, 1e-12))]
    if "agreement" in extra:
        cols += [(d["ng"].argmax(1) == best).astype(float), (d["em"].argmax(1) == best).astype(float)]
    if "parts" in extra:
        cols += [np.log(softmax(d["ng"] / temperature)[rows, best] + 1e-12),
                 np.log(softmax(d["em"] / temperature)[rows, best] + 1e-12)]
    if "length" in extra:
        cols += [np.log(d["len"]), np.log(d["len"]) ** 2 / 10]
    if "entropy" in extra:
        cols += [-(prob * np.log(np.maximum(prob, 1e-12))).sum(1)]
    if "margin" in extra:
        s = d["ng"] + d["em"] + d["b"]
        top = np.sort(s, 1)
        cols += [s[rows, best], s[rows, best] - np.where(s.argmax(1) == best, top[:, -2], top[:, -1])]
    return np.hstack([np.column_stack(cols), np.eye(prob.shape[1])[best]])


def run_variant(c, t, reject, offsets=None, extra=(), C=1.0, votes=False, mix=False):
    """Fit on c, label t: (chosen, confidence) per held-out prompt."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    gold, w, prompt = label_rows(c)
    s = c["ng"] + c["em"] + c["b"]
    t_scores = t["ng"] + t["em"] + t["b"]
    temperature, alpha, beta = fit_scaling(s[prompt], gold, w, c["log_ratio"], c["votes"][prompt] if votes else None)
    z = s / temperature + alpha * c["log_ratio"] + (beta * c["votes"] if votes else 0)
    zt = t_scores / temperature + alpha * t["log_ratio"] + (beta * t["votes"] if votes else 0)
    cal_z = z.copy()
    if offsets is not None:  # lambda: fixed, or "inner" (best inner leave-one-source-out accuracy)
        lam = offsets
        if offsets == "inner":
            def inner(lam_):
                return sum(c["y"][m][np.arange(m.sum()), (z[m] + fit_offsets(z[~m], c["y"][~m], lam_)).argmax(1)].sum()
                           for m in (c["src"] == g for g in set(c["src"])))
            lam = max((0.001, 0.003, 0.01, 0.03, 0.1, 1.0), key=inner)
        for g in set(c["src"]):  # the confidence map sees offsets fitted without the row's source
            m = c["src"] == g
            cal_z[m] = z[m] + fit_offsets(z[~m], c["y"][~m], lam)
        zt = zt + fit_offsets(z, c["y"], lam)
    prob, prob_t = softmax(cal_z), softmax(zt)
    if mix:
        strength, prior = choose_mix_strength(prob, lambda ch: c["y"][np.arange(len(ch)), ch], c["src"])
        if strength is not None:
            prob = adapt_each_group(prob, c["src"], prior, strength)
            if len(prob_t) >= MIN_MIX_RECORDS:
                prob_t = adapt_to_mix(prob_t, prior, strength)[0]
    chosen = prob[prompt].argmax(1)
    if not extra:
        cmap = fit_confidence_map(*top_two(prob[prompt], chosen), chosen == gold, w, chosen, prob.shape[1])
        return decide_rows(prob_t, lambda p, b: apply_confidence_map(cmap, *top_two(p, b), b), reject)
    x = confidence_features({k: v[prompt] for k, v in c.items() if k in ("ng", "em", "b", "len")},
                            prob[prompt], chosen, temperature, extra)
    scaler = StandardScaler().fit(x)
    lr = LogisticRegression(C=C, max_iter=2000).fit(scaler.transform(np.vstack([x, x])),
                                                    np.r_[np.ones(len(x)), np.zeros(len(x))],
                                                    sample_weight=np.r_[w * (chosen == gold), w * (chosen != gold)] + 1e-9)
    return decide_rows(prob_t, lambda p, b: lr.predict_proba(scaler.transform(
        confidence_features(t, p, b, temperature, extra)))[:, 1], reject)


def measure(folds, reject, **variant):
    soft, conf, src = [], [], []
    for held in sorted(set(folds.src)):
        c, t = folds.split(held, votes=variant.get("votes", False))
        chosen, confidence = run_variant(c, t, reject, **variant)
        soft.append(t["y"][np.arange(len(chosen)), chosen])
        conf.append(confidence)
        src += [held] * len(chosen)
    return np.concatenate(soft), np.concatenate(conf), np.array(src)


VARIANTS = [
    ("before (temperature, class bias, confidence map)", {}),
    ("1. per-task offsets, lambda by inner LOSO", {"offsets": "inner"}),
    ("1. per-task offsets, lambda 0.01", {"offsets": 0.01}),
    ("2. map + n-gram/embedding agreement", {"extra": ("agreement",)}),
    ("2. map + part probabilities", {"extra": ("parts",)}),
    ("2. map + length", {"extra": ("length",)}),
    ("2. map + entropy", {"extra": ("entropy",)}),
    ("2. map + raw margin", {"extra": ("margin",)}),
    ("2. map + all of them, C 0.1", {"extra": ("agreement", "parts", "length", "entropy", "margin"), "C": 0.1}),
    ("3a. nearest-neighbour vote", {"votes": True}),
    ("3b. mix adaptation", {"mix": True}),
    ("3a + 3b (shipped)", {"votes": True, "mix": True}),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", required=True, help="the prompts' texts: the output of bench/classify_human_set.py")
    ap.add_argument("--scores", default=os.path.join("/tmp", "classify_variants_scores.npz"),
                    help="the 11 SVMs' scores (made if missing)")
    ap.add_argument("--cache", default=os.path.join("/tmp", "classify_sources_embeddings.npz"))
    ap.add_argument("--only", default=None, help="comma-separated variant numbers (0 = before) to run")
    args = ap.parse_args()
    prompts, _ = load_set(args.texts)
    texts, labels = load_labeled(TRAIN)
    load_cache(args.cache)
    if os.path.exists(args.scores):
        scores = np.load(args.scores)
    else:
        print(f"fitting the 11 SVMs into {args.scores}")
        scores = fit_scores(prompts, texts, labels, args.scores)
        save_cache(args.cache)
    model = CachedEmbeddings(encoder_dir=M.DEFAULT_MODEL_DIR)
    emb = (M._unit(model._embed(texts, None)), M._unit(model._embed([p["text"] for p in prompts], None)))
    folds = Folds(prompts, scores, texts, labels, emb)
    reject = folds.classes.index(M.REJECTING)
    chosen = range(len(VARIANTS)) if not args.only else [int(x) for x in args.only.split(",")]
    print(f"{'variant':<52} {'pooled':>7} {'self-in':>7} {'cov@0.8':>7} {'acc@0.8':>7} {'worst@0.8':>9}")
    for n in chosen:
        name, variant = VARIANTS[n]
        soft, conf, src = measure(folds, reject, **variant)
        sure = conf >= 0.8
        worst = min(soft[(src == s) & sure].mean() for s in set(src) if (src == s).sum() >= 60)
        print(f"{name:<52} {soft.mean():>7.1%} {soft[src == 'self_instruct'].mean():>7.1%} {sure.mean():>7.1%} "
              f"{soft[sure].mean():>7.1%} {worst:>9.1%}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
