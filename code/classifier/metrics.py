"""Scores for a classifier run: accuracy, macro-F1, a per-task table, most confused pairs.

Plain Python on lists of labels, so the numbers can be checked by hand.
"""

from collections import Counter


def per_task(gold, pred):
    """{task: (precision, recall, f1, support)} for every task that occurs in gold or pred."""
    tp, n_pred, n_gold = Counter(), Counter(pred), Counter(gold)
    for g, p in zip(gold, pred):
        if g == p:
            tp[g] += 1
    table = {}
    for task in sorted(set(gold) | set(pred)):
        prec = tp[task] / n_pred[task] if n_pred[task] else 0.0
        rec = tp[task] / n_gold[task] if n_gold[task] else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        table[task] = (prec, rec, f1, n_gold[task])
    return table


def accuracy(gold, pred):
    if len(gold) != len(pred):
        raise ValueError("gold and pred differ in length")
    return sum(g == p for g, p in zip(gold, pred)) / len(gold) if gold else 0.0


def macro_f1(gold, pred):
    """Mean F1 over every task seen in gold or pred (scikit-learn's macro average)."""
    table = per_task(gold, pred)
    return sum(f1 for _, _, f1, _ in table.values()) / len(table) if table else 0.0


def confused_pairs(gold, pred, top=10):
    """[((gold, pred), count)] of the most frequent mistakes."""
    return Counter((g, p) for g, p in zip(gold, pred) if g != p).most_common(top)


def report(gold, pred, top=10):
    """The text `classify.py --eval` prints."""
    lines = [f"accuracy {accuracy(gold, pred):.1%}   macro-F1 {macro_f1(gold, pred):.3f}   n={len(gold)}", "",
             f"{'task':<34} {'prec':>6} {'recall':>6} {'F1':>6} {'n':>5}"]
    for task, (p, r, f, n) in per_task(gold, pred).items():
        lines.append(f"{task:<34} {p:>6.2f} {r:>6.2f} {f:>6.2f} {n:>5}")
    pairs = confused_pairs(gold, pred, top)
    if pairs:
        lines += ["", "most confused (gold -> predicted):"]
        lines += [f"  {n:>4}  {g} -> {p}" for (g, p), n in pairs]
    return "\n".join(lines)


THRESHOLDS = (0.0, 0.3, 0.5, 0.7, 0.9)


def coverage(gold, pred, confidence, thresholds=THRESHOLDS):
    """[(threshold, share of predictions at or above it, accuracy among those)]: what a
    --min_confidence of that value keeps, and how right what it keeps is."""
    rows = []
    for t in thresholds:
        kept = [g == p for g, p, c in zip(gold, pred, confidence) if c >= t]
        rows.append((t, len(kept) / len(gold) if gold else 0.0, sum(kept) / len(kept) if kept else 0.0))
    return rows


def coverage_report(gold, pred, confidence, thresholds=THRESHOLDS):
    """The accuracy-against-coverage table `classify.py --eval` prints for the embedded model."""
    lines = ["accuracy against coverage (predictions below the confidence go to default):",
             f"  {'min_confidence':>14} {'coverage':>9} {'accuracy':>9}"]
    lines += [f"  {t:>14.2f} {cov:>9.1%} {acc:>9.1%}" for t, cov, acc in coverage(gold, pred, confidence, thresholds)]
    return "\n".join(lines)


def reliability(gold, pred, confidence, bins=10):
    """(rows, ECE): rows of (low, high, n, mean confidence, accuracy) per confidence bin, and the
    expected calibration error, the n-weighted mean gap between confidence and accuracy."""
    rows, gap = [], 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [(g == p, c) for g, p, c in zip(gold, pred, confidence) if lo <= c < hi or (b == bins - 1 and c == hi)]
        if inside:
            conf = sum(c for _, c in inside) / len(inside)
            acc = sum(ok for ok, _ in inside) / len(inside)
            rows.append((lo, hi, len(inside), conf, acc))
            gap += len(inside) * abs(conf - acc)
    return rows, gap / len(gold) if gold else 0.0


def cohen_kappa(a, b):
    """Agreement of two labellers beyond chance: (p_observed - p_chance) / (1 - p_chance)."""
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b)) / n
    count_a, count_b = Counter(a), Counter(b)
    chance = sum(count_a[k] * count_b[k] for k in count_a) / (n * n)
    return (observed - chance) / (1 - chance) if chance < 1 else 1.0
