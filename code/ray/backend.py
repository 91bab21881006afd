"""RayBackend: a Backend whose requests run in worker actors, each holding the real backend.

See the package docstring (code/ray/__init__.py) for the picture; ray_backend() builds the one
a script asks for, from the RaySettings it built from its flags.
"""

import asyncio
import itertools
import os
import uuid
from dataclasses import dataclass

from realign.errors import UsageError
from realign.llm.base import Backend, BackendError, backend_class, call_timeout, make_backend
from realign.ray.cluster import connect, worker_placement
from realign.redact import add_secret, scrub

DEFAULT_HTTP_WORKERS = 2
START_TIMEOUT = 900.0        # s for every worker to build its backend (a vLLM model load is slow)
MAX_PACE_DELAY = 600.0       # s a worker will wait for its booked send time before giving up
CALL_SLACK = 60.0            # s on top of the request timeout before the driver stops waiting


# ---------------------------------------------------------------- the worker (inside an actor)

class Worker:
    """Holds one real backend in a worker process and answers one request per call.

    Replies are plain dicts ({"texts": [Completion, ...]} or {"error": {...}}) so a BackendError
    crosses the process boundary with its retry flags intact."""

    def __init__(self, backend_name, config, pace_name=None):
        import ray

        add_secret(config.api_key)  # this process scrubs the key from its own messages too
        self.backend = make_backend(backend_name, config)
        self.pace = ray.get_actor(pace_name) if pace_name else None
        self.timeout = call_timeout(self.backend, config)

    def ready(self):
        return os.getpid()

    async def generate(self, request):
        limit = self.timeout * request.sampling.n if self.timeout else None  # per call, as in run_all
        try:
            if self.pace is not None:
                await self._wait_for_turn(request.cost_tokens, self.backend.calls_per_attempt(request))
            call = self.backend.generate(request)
            return {"texts": await (asyncio.wait_for(call, limit) if limit else call), "calls": self.backend.calls,
                    "adapted": list(self.backend.adaptations)}
        except BackendError as e:
            return {**_error(e), "calls": self.backend.calls, "adapted": list(self.backend.adaptations)}
        except asyncio.TimeoutError:
            return {**_error(BackendError(f"no answer within {limit:g} s", retryable=True)), "calls": self.backend.calls}

    async def _wait_for_turn(self, cost_tokens, calls=1):
        """Book a send time for `calls` requests from the cluster's Pace actor and sleep until the last
        may go (BackendError if not possible)."""
        import ray

        try:
            delay = await self.pace.book.remote(cost_tokens)
            for _ in range(calls - 1):  # a server that ignores n: more requests, the same tokens
                delay = await self.pace.book.remote(0)
        except ray.exceptions.RayError as e:
            raise BackendError(f"rate cap actor unavailable ({type(e).__name__})", retryable=True) from None
        if delay > MAX_PACE_DELAY:
            raise BackendError(f"rate cap queue longer than {MAX_PACE_DELAY:g} s", retryable=True)
        await asyncio.sleep(delay)

    async def close(self):
        await self.backend.aclose()


def _error(e):
    return {"error": dict(reason=e.reason, status=e.status, retryable=e.retryable, overloaded=e.overloaded,
                          retry_after=e.retry_after, fatal=e.fatal, cause=e.cause,
                          endpoint=e.endpoint, hint=e.hint, timed_out=e.timed_out, per_record=e.per_record,
                          param=e.param)}


# ---------------------------------------------------------------- the driver's side

class _Slot:
    def __init__(self, handle):
        self.handle = handle
        self.in_flight = 0
        self.dead = False
        self.calls = 0   # the worker backend's own count, as of its latest reply


class RayBackend(Backend):
    """A Backend that runs `backend_name` in `workers` Ray actors; see the module docstring."""

    name = "ray"
    timed_calls = False  # run_all adds no bound: the workers bound each call, generate() waits longer
    slow_start = False   # (the rate-cap wait happens in the workers)

    def __init__(self, backend_name, config, *, workers, address=None, rpm=None, tpm=None, gpus_per_worker=0):
        inner = backend_class(backend_name)  # UsageError for an unknown name, before any cluster starts
        super().__init__(config)
        self.backend_name = backend_name
        ray = connect(address, cpus=workers)
        self.throttles = inner.throttles
        self.default_concurrency = workers * inner.default_concurrency
        self._bound = call_timeout(inner, config)  # per call; see generate
        self._run = uuid.uuid4().hex[:12]
        self._pace = None
        pace_name = None
        if rpm or tpm:
            from realign.ray.pace import start_pace

            pace_name = f"realign-pace-{self._run}"
            self._pace = start_pace(pace_name, rpm=rpm, tpm=tpm)
        self._groups, self._slots = [], []
        for _ in range(workers):
            options, group = worker_placement(gpus_per_worker)
            self._groups += [group] if group else []
            self._slots.append(_Slot(ray.remote(Worker).options(**options).remote(backend_name, config, pace_name)))
        self._turn = itertools.count()
        self._adapted = {}  # what the workers' backends changed to fit the server (llm/shape.py), in order
        self.pids = self._wait_ready(ray)

    def _wait_ready(self, ray):
        """Every worker built its backend (pids, for tests and logs), or one clear error."""
        try:
            return ray.get([s.handle.ready.remote() for s in self._slots], timeout=START_TIMEOUT)
        except ray.exceptions.GetTimeoutError:
            raise UsageError(f"Ray workers not ready after {START_TIMEOUT:g} s (enough CPUs/GPUs in the cluster?)") \
                from None
        except ray.exceptions.RayError as e:
            cause = scrub(" ".join(str(e).split()))[-300:]  # the worker's traceback text, key masked
            raise UsageError(f"a Ray worker could not start its {self.backend_name} backend: {cause}") from None

    def _pick(self):
        """The live worker with the fewest calls in flight (ties taken in turn)."""
        live = [s for s in self._slots if not s.dead]
        if not live:
            raise BackendError(f"all {len(self._slots)} Ray workers died", fatal=True)
        start = next(self._turn) % len(live)
        return min(live[start:] + live[:start], key=lambda s: s.in_flight)

    async def generate(self, request):
        import ray

        slot = self._pick()
        slot.in_flight += 1
        ref = slot.handle.generate.remote(request)
        bound = self._bound and self._bound * request.sampling.n + MAX_PACE_DELAY + CALL_SLACK
        try:
            reply = await (asyncio.wait_for(_awaited(ref), bound) if bound else ref)
        except asyncio.TimeoutError:
            ray.cancel(ref)
            raise BackendError(f"Ray worker gave no answer within {bound:g} s", retryable=True) from None
        except ray.exceptions.ActorDiedError:
            slot.dead = True  # restarts used up: leave it out, the runner retries elsewhere
            raise BackendError("Ray worker died", retryable=True) from None
        except ray.exceptions.RayActorError as e:  # restarting, or its node went away for now
            raise BackendError(f"Ray worker unavailable ({type(e).__name__})", retryable=True) from None
        finally:
            slot.in_flight -= 1
        slot.calls = max(slot.calls, reply.pop("calls", 0))  # replies may arrive out of order
        self.calls = sum(s.calls for s in self._slots)
        self._adapted.update(dict.fromkeys(reply.pop("adapted", ())))
        if "error" in reply:
            err = reply["error"]
            raise BackendError(err.pop("reason"), **err)
        return reply["texts"]

    @property
    def adaptations(self):
        return list(self._adapted)

    async def aclose(self):
        import ray

        handles = [s.handle for s in self._slots if not s.dead]
        try:
            await asyncio.wait_for(asyncio.gather(*(h.close.remote() for h in handles), return_exceptions=True), 10)
        except asyncio.TimeoutError:
            pass
        for h in handles + ([self._pace] if self._pace is not None else []):
            ray.kill(h)
        for group in self._groups:
            ray.util.remove_placement_group(group)


async def _awaited(ref):
    return await ref


# ---------------------------------------------------------------- for the scripts

@dataclass
class RaySettings:
    """Which cluster an --engine ray run joins and how wide it goes (the scripts build it from their flags)."""
    address: str | None = None               # --ray_address; None: $RAY_ADDRESS, else a local cluster
    workers: int | None = None               # --ray_workers; None: a default per backend (see ray_backend)
    tensor_parallel_size: int | None = None  # GPUs per vLLM replica; None: 1

    def check(self):
        if self.workers is not None and self.workers < 1:
            raise UsageError(f"--ray_workers must be positive, got {self.workers}")


def ray_backend(backend_name, config, cluster, *, rpm=None, tpm=None):
    """The RayBackend for `backend_name` on `cluster` (RaySettings), with cluster-wide --rpm/--tpm caps."""
    cluster.check()
    tp = cluster.tensor_parallel_size or 1
    gpus = 0
    workers = cluster.workers
    if backend_name == "vllm":  # each worker is one engine replica on `tp` GPUs of one node
        config.options["tensor_parallel_size"] = gpus = tp
        have = connect(cluster.address).cluster_resources().get("GPU", 0)
        if have < tp:
            raise UsageError(f"--backend vllm on Ray needs GPUs: the cluster has {have:g}, a replica needs {tp} "
                             "(--tensor_parallel_size)")
        workers = workers or int(have // tp)
    return RayBackend(backend_name, config, workers=workers or DEFAULT_HTTP_WORKERS, address=cluster.address,
                      rpm=rpm, tpm=tpm, gpus_per_worker=gpus)
