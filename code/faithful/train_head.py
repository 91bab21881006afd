"""Train the checker's head on the shipped sentence encoder (seconds to minutes on a CPU, no torch).

    python -m realign.faithful.train_head [--out code/faithful/model]     # the shipped head, ~2 min

Pairs come from realign.faithful.pairs (held-out items are not trained on, and their pairs are
scored at the end); features from realign.faithful.features (cosines of the classifier's int8
MiniLM embeddings and alignment facts; --embeddings adds the 768 embedding products). The head
is a logistic regression (scikit-learn, a dependency already; --hidden N for an MLP) on the
standardised features; its weights are written to head.npz and read back with numpy alone.
What we tried (bench/README.md, "faithfulness checker"): this head beat an MLP on all 784
features (overconfident on our paraphrases) and a 4-layer MiniLM cross-encoder trained one
epoch on this CPU.
"""

import argparse
import json
import os
import random
import time

import numpy as np

from realign.faithful.checker import HEAD_FILE, META_FILE, MODEL_DIR
from realign.faithful.features import DIM, features
from realign.faithful.pairs import held_out, item_pairs, parse_sources, training_pairs


def encoder():
    from realign.classifier.encoder import SentenceEncoder
    from realign.classifier.model import DEFAULT_MODEL_DIR
    return SentenceEncoder(DEFAULT_MODEL_DIR)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=0, help="units of an MLP's hidden layer (0: logistic regression)")
    ap.add_argument("--rounds", type=int, default=3, help="draws of the perturbation rules per item")
    ap.add_argument("--alpha", type=float, default=1e-3, help="L2 penalty")
    ap.add_argument("--embeddings", action="store_true", help="also the embedding products u*v and |u-v|")
    ap.add_argument("--cache", default=None, help="a .npz file to keep the features in between runs")
    ap.add_argument("--out", default=MODEL_DIR)
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.neural_network import MLPClassifier

    items = parse_sources()
    train = training_pairs(items, args.rounds)
    test = [p for it in items if held_out(it["id"]) for p in item_pairs(it, random.Random(7))]
    t = time.time()
    if args.cache and os.path.exists(args.cache):
        with np.load(args.cache) as f:
            x, xt = f["x"], f["xt"]
    else:
        enc = encoder()
        x = features([(p["direction"], p["window"], p["claim"]) for p in train], enc)
        xt = features([(p["direction"], p["window"], p["claim"]) for p in test], enc)
        if args.cache:
            np.savez(args.cache, x=x, xt=xt)
    cols = np.arange(DIM) if args.embeddings else np.arange(768, DIM)
    x, xt = x[:, cols], xt[:, cols]
    y = np.array([p["label"] for p in train])
    yt = np.array([p["label"] for p in test])
    print(f"{len(train)} training pairs, {len(test)} held-out pairs, features in {time.time() - t:.0f} s", flush=True)
    mean, scale = x.mean(0), x.std(0) + 1e-6
    xs, xts = (x - mean) / scale, (xt - mean) / scale
    if args.hidden:
        model = MLPClassifier((args.hidden,), alpha=args.alpha, max_iter=300, early_stopping=True, random_state=0)
        model.fit(xs, y)
        layers = [(model.coefs_[0], model.intercepts_[0]), (model.coefs_[1], model.intercepts_[1])]
    else:
        model = LogisticRegression(C=1.0 / max(args.alpha, 1e-6) / len(y), max_iter=2000, class_weight="balanced")
        model.fit(xs, y)
        layers = [(model.coef_.T, model.intercept_)]
    prob = model.predict_proba(xts)[:, 1]
    print(f"held-out pairs: AUC {roc_auc_score(yt, prob):.3f}, accuracy {((prob >= 0.5) == yt).mean():.3f} at 0.5")
    kinds = sorted({p["kind"] for p in test})
    for kind in kinds:
        idx = [i for i, p in enumerate(test) if p["kind"] == kind]
        print(f"  {kind:<24} {len(idx):>4} pairs, mean P(supported) {prob[idx].mean():.2f}, label {yt[idx][0]}")
    os.makedirs(args.out, exist_ok=True)
    arrays = {"mean": mean, "scale": scale, "cols": cols}
    for i, (w, b) in enumerate(layers):
        arrays[f"w{i}"], arrays[f"b{i}"] = w.astype(np.float32), b.astype(np.float32)
    np.savez_compressed(os.path.join(args.out, HEAD_FILE), **arrays)
    meta_path = os.path.join(args.out, META_FILE)
    meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
    meta.update({"head": "mlp" if args.hidden else "logistic", "hidden": args.hidden, "alpha": args.alpha,
                 "rounds": args.rounds, "features": DIM, "encoder": "realign/classifier/model (all-MiniLM-L6-v2 int8)"})
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=1)
    print("head written to", args.out)


if __name__ == "__main__":
    main()
