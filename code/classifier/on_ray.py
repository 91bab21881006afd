"""The classifier on a Ray cluster (`classify.py --engine ray`): LLM calls through a RayBackend,
the embedded model with Ray Data (`map_batches` over an actor pool, one model per actor)."""

import asyncio

from realign.classifier.backends import classify_with_backend
from realign.ray.backend import ray_backend
from realign.ray.cluster import connect


def classify_llm_ray(texts, config, settings, cluster):
    """backends.classify_llm with its calls spread over a Ray cluster (`cluster`: RaySettings);
    returns LLMLabels. --rpm is enforced by the backend's cluster-wide pace, not again by the runner."""
    cluster.check()
    backend = ray_backend(settings.backend, config, cluster, rpm=settings.rpm)
    return asyncio.run(classify_with_backend(texts, backend, settings, rpm=False))


def classify_embedded_ray(texts, model_dir, rules, progress, cluster):
    """backends.classify_embedded with Ray Data: (labels, confidences)."""
    cluster.check()
    return _classify_embedded_ray(texts, model_dir, rules, progress, cluster)


# ---------------------------------------------------------------- the embedded classifier on Ray Data

EMBEDDED_BATCH = 1024  # instructions per Ray Data batch


class _EmbeddedClassifier:
    """A Ray Data map_batches callable: one embedded model per actor, a batch of texts per call."""

    def __init__(self, model_dir=None, rules=None):
        from realign.classifier.model import DEFAULT_MODEL_DIR, TaskClassifier

        self.model = TaskClassifier.load(model_dir or DEFAULT_MODEL_DIR)
        self.rules = rules or {}

    def __call__(self, batch):
        import numpy as np

        labels, confidences = self.model.classify([str(t) for t in batch["text"]], **self.rules)
        return {"i": batch["i"], "task": np.array(labels, dtype=object), "confidence": np.array(confidences)}


def _classify_embedded_ray(texts, model_dir, rules, progress, cluster):
    ray = connect(cluster.address)
    workers = cluster.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    ray.data.DataContext.get_current().enable_progress_bars = progress
    rows = ray.data.from_items([{"i": i, "text": t} for i, t in enumerate(texts)])
    tasks = rows.map_batches(_EmbeddedClassifier, concurrency=workers, batch_size=EMBEDDED_BATCH,
                             fn_constructor_kwargs={"model_dir": model_dir, "rules": rules},
                             batch_format="numpy")
    labels, confidences = [None] * len(texts), [None] * len(texts)
    for batch in tasks.iter_batches(batch_size=None, batch_format="numpy"):
        for i, task, confidence in zip(batch["i"], batch["task"], batch["confidence"]):
            labels[int(i)], confidences[int(i)] = str(task), float(confidence)
    missing = [i for i, label in enumerate(labels) if label is None]
    if missing:  # every row of a finished Ray Data job comes back; a gap is a bug, not bad input
        raise RuntimeError(f"{len(missing)} instructions came back from the Ray workers without a label")
    return labels, confidences
