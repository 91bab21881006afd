"""The classifier on a Ray cluster (`classify.py --engine ray`): the LLM backends through a RayBackend,
the embedded model with Ray Data (`map_batches` over an actor pool, one model per actor)."""

import asyncio

from realign.llm.base import BackendConfig
from realign.ray.backend import check_ray_args, ray_backend
from realign.ray.cluster import connect


def classify_texts_ray(texts, args, api_key=None):
    """classify.py's classify_texts on a Ray cluster; returns (labels, failures) the same way."""
    check_ray_args(args)
    if args.backend == "embedded":
        return _classify_embedded_ray(texts, args)
    from realign.classifier.backends import _classify_llm

    options = {"tensor_parallel_size": args.tensor_parallel_size} if args.backend == "vllm" else {}
    config = BackendConfig(model=args.model, base_url=args.base_url, api_key=api_key,
                           request_timeout=args.request_timeout, options=options)
    backend = ray_backend(args, config)  # --rpm is enforced by the backend's cluster-wide pace, so not again
    return asyncio.run(_classify_llm(texts, backend, args.chat, args.concurrency, None, args.max_retries,
                                     not args.quiet))


# ---------------------------------------------------------------- the embedded classifier on Ray Data

EMBEDDED_BATCH = 1024  # instructions per Ray Data batch


class _EmbeddedClassifier:
    """A Ray Data map_batches callable: one embedded model per actor, a batch of texts per call."""

    def __init__(self, model_dir=None):
        from realign.classifier.model import DEFAULT_MODEL_DIR, TaskClassifier

        self.model = TaskClassifier.load(model_dir or DEFAULT_MODEL_DIR)

    def __call__(self, batch):
        import numpy as np

        return {"i": batch["i"], "task": np.array(self.model.predict([str(t) for t in batch["text"]]), dtype=object)}


def _classify_embedded_ray(texts, args):
    ray = connect(args.ray_address)
    workers = args.ray_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    ray.data.DataContext.get_current().enable_progress_bars = not args.quiet
    rows = ray.data.from_items([{"i": i, "text": t} for i, t in enumerate(texts)])
    tasks = rows.map_batches(_EmbeddedClassifier, fn_constructor_kwargs={"model_dir": args.model_dir},
                             concurrency=workers, batch_size=EMBEDDED_BATCH, batch_format="numpy")
    labels = [None] * len(texts)
    for batch in tasks.iter_batches(batch_size=None, batch_format="numpy"):
        for i, task in zip(batch["i"], batch["task"]):
            labels[int(i)] = str(task)
    missing = [i for i, label in enumerate(labels) if label is None]
    return labels, {i: "no label came back from the Ray workers" for i in missing}
