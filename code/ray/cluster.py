"""Joining a Ray cluster (or starting a local one), and where a worker actor is placed on it."""

import os
import socket

from realign.errors import UsageError, import_extra

WORKER_RESTARTS = 3          # per worker: process restarts (and replays of its calls in flight)


def connect(address=None, cpus=None):
    """Join the cluster at `address` ($RAY_ADDRESS when None), else start a local one."""
    ray = import_extra("ray", "--engine ray needs Ray: pip install -e .[ray]  (or pip install -r requirements-ray.txt)")
    if ray.is_initialized():
        return ray
    quiet = dict(include_dashboard=False, configure_logging=True, logging_level="WARNING")
    if address or os.environ.get("RAY_ADDRESS"):
        _check_reachable(address or os.environ["RAY_ADDRESS"])  # ray.init itself retries for many minutes
        try:
            ray.init(address=address, **quiet)
        except ConnectionError as e:
            hint = "" if os.environ.get("RAY_AUTH_MODE") else " (a cluster with token auth needs RAY_AUTH_MODE=token)"
            raise UsageError(f"cannot join the Ray cluster: {e}{hint}") from None
    else:  # a local cluster: room for every worker even on a small machine (HTTP workers mostly wait)
        ray.init(address="local", num_cpus=max(os.cpu_count() or 1, cpus or 1), **quiet)
    return ray


def _check_reachable(address, timeout=10.0):
    """A HOST:PORT address must accept a TCP connection within `timeout` s (auto and ray:// are left to Ray)."""
    host, _, port = address.rpartition(":")
    if not host or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise UsageError(f"cannot reach the Ray cluster at {address}: {e.strerror or e}") from None


def worker_placement(gpus):
    """(actor options, placement group or None) for one worker.

    An HTTP worker takes 1 CPU, workers spread over the nodes. A vLLM replica on one GPU takes
    it directly. A replica on `gpus` > 1 GPUs gets a placement group of one-GPU bundles packed on
    one node, and the actor runs inside it holding no GPU itself: vLLM, finding itself in a Ray
    placement group, starts its tensor-parallel workers in those bundles (as Ray Data's LLM
    stages arrange it). Not run on a GPU by us yet.
    """
    import ray

    options = dict(num_cpus=1, max_restarts=WORKER_RESTARTS, max_task_retries=WORKER_RESTARTS)
    if gpus <= 1:
        return {**options, "num_gpus": gpus, "scheduling_strategy": "SPREAD"}, None
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    group = ray.util.placement_group([{"GPU": 1, "CPU": 1}] * gpus, strategy="STRICT_PACK")
    where = PlacementGroupSchedulingStrategy(group, placement_group_capture_child_tasks=True)
    return {**options, "num_gpus": 0, "scheduling_strategy": where}, group
