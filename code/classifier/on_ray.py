"""The classifier on a Ray cluster (`classify.py --engine ray`): the LLM backends through a RayBackend,
the embedded model with Ray Data (`map_batches` over an actor pool, one model per actor)."""

import asyncio

from realign.classifier.backends import classify_with_backend
from realign.ray.backend import ray_backend
from realign.ray.cluster import connect


def classify_texts_ray(texts, settings, config, cluster):
    """classifier.backends.classify_texts on a Ray cluster (`cluster`: RaySettings); returns (labels,
    failures) the same way."""
    cluster.check()
    if settings.backend == "embedded":
        return _classify_embedded_ray(texts, settings, cluster)
    # --rpm is enforced by the backend's cluster-wide pace, so not again by the runner
    backend = ray_backend(settings.backend, config, cluster, rpm=settings.rpm)
    return asyncio.run(classify_with_backend(texts, backend, chat=settings.chat, concurrency=settings.concurrency,
                                             max_retries=settings.max_retries, progress=settings.progress))


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


def _classify_embedded_ray(texts, settings, cluster):
    ray = connect(cluster.address)
    workers = cluster.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    ray.data.DataContext.get_current().enable_progress_bars = settings.progress
    rows = ray.data.from_items([{"i": i, "text": t} for i, t in enumerate(texts)])
    tasks = rows.map_batches(_EmbeddedClassifier, fn_constructor_kwargs={"model_dir": settings.model_dir},
                             concurrency=workers, batch_size=EMBEDDED_BATCH, batch_format="numpy")
    labels = [None] * len(texts)
    for batch in tasks.iter_batches(batch_size=None, batch_format="numpy"):
        for i, task in zip(batch["i"], batch["task"]):
            labels[int(i)] = str(task)
    missing = [i for i, label in enumerate(labels) if label is None]
    return labels, {i: "no label came back from the Ray workers" for i in missing}
