"""Train the checker's clause model on our own texts (a minute or two on a CPU, no torch).

    python -m realign.faithful.train_head [--out code/faithful/model] [--sources datasets/faithful]

Records come from realign.faithful.pairs.training_records (the items that are not held out: each
faithful rewrite R and R2, each hand-written added claim C put into one, each L line with a fact
dropped in place of its sentence, rule-made drops and blurs). Every "added" and "lost" finding of
align.findings on them is a training row (features.clause_features, with the encoder's cosine):
- "added": label 1 for the clause that is the inserted C line, 0 for the clauses of faithful
  rewrites (the other clauses of a flawed record are left out);
- "lost": label 1 for an original clause whose missing words include one the edit took away, 0
  for the original's clauses against a faithful rewrite.
One logistic regression (scikit-learn, a dependency already) per kind, on standardised features;
its weights go to model/head.npz and are read back with numpy alone. The thresholds in
model/meta.json are set on the dev sets (bench/faithful_quality.py), not here.
"""

import argparse
import json
import os
import time

import numpy as np

from realign.faithful.align import findings
from realign.faithful.checker import HEAD_FILE, META_FILE, MODEL_DIR
from realign.faithful.features import N_FEATURES, NAMES, clause_features
from realign.faithful.pairs import SOURCES, heldout_records, parse_sources, training_records
from realign.faithful.text import stems

FLOOR = 0.3   # findings are taken from this many missing (weighted) words on, to learn from


def encoder():
    from realign.classifier.encoder import SentenceEncoder
    from realign.classifier.model import DEFAULT_MODEL_DIR
    return SentenceEncoder(DEFAULT_MODEL_DIR)


def cosines(found, enc):
    """{(clause, window): highest cosine} for the findings that carry a window."""
    texts = sorted({t for f in found if f.window for t in (f.clause, *f.window)})
    if not texts:
        return {}
    at = {t: i for i, t in enumerate(texts)}
    vec = enc.encode(texts)
    return {(f.clause, tuple(f.window)): float(max(vec[[at[w] for w in f.window]] @ vec[at[f.clause]]))
            for f in found if f.window}


def rows(records, enc):
    """(kind, features, label) of every labelled finding of `records` (see the module docstring)."""
    faithful = {}
    for r in records:
        if r["kind"] == "faithful":
            faithful.setdefault(r["id"], r["rewrite"])
    per = [(r, findings(r["question"], r["original"], r["rewrite"], added_at=FLOOR, lost_at=FLOOR)) for r in records]
    cos = cosines([f for _, found in per for f in found], enc)
    out = []
    for r, found in per:
        removed = set(stems(faithful.get(r["id"], ""))) - set(stems(r["rewrite"]))
        for f in found:
            if f.kind not in ("added", "lost"):
                continue
            label = None
            if r["kind"] == "faithful":
                label = 0
            elif f.kind == "added" and r["kind"] == "added_claim":
                mine, put = set(stems(f.clause)), set(stems(r["flaw"]))
                label = 1 if mine and len(mine & put) >= 0.6 * len(mine) else None
            elif f.kind == "lost" and r["kind"] == "lost_fact":
                label = 1 if set(stems(" ".join(f.missing))) & removed else None
            if label is not None:
                out.append((f.kind, clause_features(f, cos.get((f.clause, tuple(f.window)))), label))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", default=SOURCES, help="folder of sources_*.txt (default: datasets/faithful)")
    ap.add_argument("--out", default=MODEL_DIR)
    ap.add_argument("--C", type=float, default=1.0, help="inverse L2 penalty of the logistic regressions")
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    items = parse_sources(args.sources)
    t = time.time()
    enc = encoder()
    train = rows(training_records(items), enc)
    test = rows(heldout_records(items), enc)
    print(f"{len(items)} items; {len(train)} training findings, {len(test)} held-out findings, "
          f"in {time.time() - t:.0f} s", flush=True)
    arrays = {}
    for kind in ("added", "lost"):
        x = np.array([f for k, f, _ in train if k == kind], dtype=np.float64)
        y = np.array([y for k, _, y in train if k == kind])
        xt = np.array([f for k, f, _ in test if k == kind], dtype=np.float64)
        yt = np.array([y for k, _, y in test if k == kind])
        mean, scale = x.mean(0), x.std(0) + 1e-6
        model = LogisticRegression(C=args.C, max_iter=2000, class_weight="balanced")
        model.fit((x - mean) / scale, y)
        auc = roc_auc_score(yt, model.predict_proba((xt - mean) / scale)[:, 1]) if len(set(yt)) == 2 else float("nan")
        print(f"{kind}: {len(y)} rows ({y.mean():.0%} flawed); held-out {len(yt)} rows, AUC {auc:.3f}")
        print("   weights: " + ", ".join(f"{n} {w:+.2f}" for n, w in zip(NAMES, model.coef_[0])))
        arrays.update({f"{kind}_mean": mean.astype(np.float32), f"{kind}_scale": scale.astype(np.float32),
                       f"{kind}_w": model.coef_[0].astype(np.float32),
                       f"{kind}_b": model.intercept_.astype(np.float32)})
    os.makedirs(args.out, exist_ok=True)
    np.savez_compressed(os.path.join(args.out, HEAD_FILE), **arrays)
    meta_path = os.path.join(args.out, META_FILE)
    meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
    meta.update({"head": "logistic regression per finding kind (added, lost)", "features": N_FEATURES,
                 "C": args.C, "items": len(items), "training_rows": len(train),
                 "encoder": "realign/classifier/model (all-MiniLM-L6-v2 int8)"})
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=1)
    print("model written to", args.out)


if __name__ == "__main__":
    main()
