"""`--engine ray`: the same classify/reformat run, with the model calls spread over a Ray cluster.

The run itself does not change: reformat.py still calls `rewrite_shard` and classify.py the
classifier's runner, on the driver, so resume, pass-through, failure accounting and the shard
files are exactly those of a local run, written by one process. What changes is the backend:
`RayBackend` is a `realign.llm.base.Backend` whose `generate(request)` sends the request to one
of `--ray_workers` worker actors, each holding the real backend (the OpenAI HTTP client, or a
vLLM engine on its GPUs) and calling its `generate`. The shared runner (`run_all`) keeps
pacing, retrying and checking every request as it does locally.

    driver: rewrite_shard / classifier runner ── run_all ── RayBackend.generate
                                                               │  least busy live worker
    workers (actors): Worker.generate ── book a send time from the named Pace actor (--rpm/--tpm)
                                      └─ real backend.generate (openai_http / vllm_engine)

- Concurrency: `--concurrency` is the total in flight over the cluster; by default each worker
  gets its backend's default (32 HTTP requests, a vLLM batch of 256).
- Rate caps: `--rpm/--tpm` are enforced once for the whole cluster by a named actor that every
  worker books from (realign/ray_pace.py), never per worker.
- Failures: a killed worker process is restarted by Ray and its calls in flight are replayed
  there (at most WORKER_RESTARTS times per worker); a worker gone for good is left out and the
  runner retries its requests elsewhere. Records are written only by the driver, once.
- vLLM: each worker is one engine replica on `--tensor_parallel_size` GPUs of one node (a packed
  placement group when more than one; see worker_placement). Not yet run on a GPU by us.

The embedded classifier does not call a backend; `classify_texts_ray` runs it with Ray Data
(`map_batches` over an actor pool, one model per actor).

Ray is an optional extra (`pip install -e .[ray]`): it is imported only when `--engine ray` runs.
"""

import asyncio
import importlib
import itertools
import os
import socket
import uuid

from realign.llm.base import BACKENDS, Backend, BackendConfig, BackendError, make_backend
from realign.records import UsageError
from realign.redact import add_secret, scrub

DEFAULT_HTTP_WORKERS = 2
WORKER_RESTARTS = 3          # per worker: process restarts (and replays of its calls in flight)
START_TIMEOUT = 900.0        # s for every worker to build its backend (a vLLM model load is slow)
MAX_PACE_DELAY = 600.0       # s a worker will wait for its booked send time before giving up
CALL_SLACK = 60.0            # s on top of the request timeout before the driver stops waiting


# ---------------------------------------------------------------- flags and cluster

def add_ray_flags(parser):
    """The flag group both scripts share; harmless when Ray is not installed."""
    g = parser.add_argument_group("Ray cluster (optional: pip install -e .[ray])")
    g.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process does all the work; ray: spread it over a Ray cluster")
    g.add_argument("--ray_address", default=None,
                   help="cluster to join, e.g. auto or HEAD_IP:6379 (default: $RAY_ADDRESS, else start a local "
                        "cluster on this machine)")
    g.add_argument("--ray_workers", "--replicas", dest="ray_workers", type=int, default=None,
                   help=f"worker actors, i.e. model replicas for vllm (default: {DEFAULT_HTTP_WORKERS} for HTTP, "
                        "cluster GPUs / tensor_parallel_size for vllm, CPUs for the embedded classifier)")
    if "--tensor_parallel_size" not in parser._option_string_actions:
        g.add_argument("--tensor_parallel_size", type=int, default=None, help="GPUs per vLLM replica (default 1)")


def check_ray_args(args):
    if args.ray_workers is not None and args.ray_workers < 1:
        raise UsageError(f"--ray_workers must be positive, got {args.ray_workers}")


def connect(address=None, cpus=None):
    """Join the cluster at `address` ($RAY_ADDRESS when None), else start a local one."""
    try:
        import ray
    except ImportError:
        raise UsageError("--engine ray needs Ray: pip install -e .[ray]  (or pip install -r requirements-ray.txt)") \
            from None
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


# ---------------------------------------------------------------- the worker (inside an actor)

class Worker:
    """Holds one real backend in a worker process and answers one request per call.

    Replies are plain dicts ({"texts": [...]} or {"error": {...}}) so a BackendError crosses the
    process boundary with its retry flags intact."""

    def __init__(self, backend_name, config, pace_name=None):
        import ray

        add_secret(config.api_key)  # this process scrubs the key from its own messages too
        self.backend = make_backend(backend_name, config)
        self.pace = ray.get_actor(pace_name) if pace_name else None
        self.timeout = config.request_timeout + 5.0 if self.backend.network else None

    def ready(self):
        return os.getpid()

    async def generate(self, request):
        limit = self.timeout * request.sampling.n if self.timeout else None  # per call, as in run_all
        try:
            if self.pace is not None:
                await self._wait_for_turn(request.cost_tokens, self.backend.calls_per_attempt(request))
            call = self.backend.generate(request)
            return {"texts": await (asyncio.wait_for(call, limit) if limit else call)}
        except BackendError as e:
            return _error(e)
        except asyncio.TimeoutError:
            return _error(BackendError(f"no answer within {limit:g} s", retryable=True))

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
                          retry_after=e.retry_after, fatal=e.fatal)}


# ---------------------------------------------------------------- the driver's side

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


class _Slot:
    def __init__(self, handle):
        self.handle = handle
        self.in_flight = 0
        self.dead = False


class RayBackend(Backend):
    """A Backend that runs `backend_name` in `workers` Ray actors; see the module docstring."""

    name = "ray"
    network = False  # run_all adds no timeout of its own: the rate-cap wait happens in the workers

    def __init__(self, backend_name, config, *, workers, address=None, rpm=None, tpm=None, gpus_per_worker=0):
        if backend_name not in BACKENDS:
            raise UsageError(f"--backend {backend_name!r}: choose one of {', '.join(sorted(BACKENDS))}")
        super().__init__(config)
        self.backend_name = backend_name
        ray = connect(address, cpus=workers)
        inner = _backend_class(backend_name)
        self.default_concurrency = workers * inner.default_concurrency
        self._bound = (config.request_timeout + 5.0) if inner.network else None  # per call; see generate
        self._run = uuid.uuid4().hex[:12]
        self._pace = None
        pace_name = None
        if rpm or tpm:
            from realign.ray_pace import start_pace

            pace_name = f"realign-pace-{self._run}"
            self._pace = start_pace(pace_name, rpm=rpm, tpm=tpm)
        self._groups, self._slots = [], []
        for _ in range(workers):
            options, group = worker_placement(gpus_per_worker)
            self._groups += [group] if group else []
            self._slots.append(_Slot(ray.remote(Worker).options(**options).remote(backend_name, config, pace_name)))
        self._turn = itertools.count()
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
        if "error" in reply:
            err = reply["error"]
            raise BackendError(err.pop("reason"), **err)
        return reply["texts"]

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


def _backend_class(name):
    """The backend's class, for its defaults; backend modules import their engine lazily (no vllm here)."""
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


# ---------------------------------------------------------------- for the scripts

def ray_backend(args, config):
    """The RayBackend that the flags ask for (reformat.py and classify.py)."""
    check_ray_args(args)
    tp = args.tensor_parallel_size or 1
    gpus = 0
    workers = args.ray_workers
    if args.backend == "vllm":  # each worker is one engine replica on `tp` GPUs of one node
        config.options["tensor_parallel_size"] = gpus = tp
        have = connect(args.ray_address).cluster_resources().get("GPU", 0)
        if have < tp:
            raise UsageError(f"--backend vllm on Ray needs GPUs: the cluster has {have:g}, a replica needs {tp} "
                             "(--tensor_parallel_size)")
        workers = workers or int(have // tp)
    return RayBackend(args.backend, config, workers=workers or DEFAULT_HTTP_WORKERS, address=args.ray_address,
                      rpm=args.rpm, tpm=getattr(args, "tpm", None), gpus_per_worker=gpus)


def classify_texts_ray(texts, args, api_key=None):
    """classify.py's classify_texts on a Ray cluster; returns (labels, failures, confidences) the same way."""
    check_ray_args(args)
    if args.backend == "embedded":
        return _classify_embedded_ray(texts, args)
    from realign.classifier.backends import _classify_llm

    options = {"tensor_parallel_size": args.tensor_parallel_size} if args.backend == "vllm" else {}
    config = BackendConfig(model=args.model, base_url=args.base_url, api_key=api_key,
                           request_timeout=args.request_timeout, options=options)
    backend = ray_backend(args, config)  # --rpm is enforced by the backend's cluster-wide pace, so not again
    labels, failures = asyncio.run(_classify_llm(texts, backend, args.chat, args.concurrency, None,
                                                 args.max_retries, not args.quiet))
    return labels, failures, None


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


def _classify_embedded_ray(texts, args):
    from realign.classifier.backends import embedded_rules

    ray = connect(args.ray_address)
    workers = args.ray_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    ray.data.DataContext.get_current().enable_progress_bars = not args.quiet
    rows = ray.data.from_items([{"i": i, "text": t} for i, t in enumerate(texts)])
    tasks = rows.map_batches(_EmbeddedClassifier, concurrency=workers, batch_size=EMBEDDED_BATCH,
                             fn_constructor_kwargs={"model_dir": args.model_dir, "rules": embedded_rules(args)},
                             batch_format="numpy")
    labels, confidences = [None] * len(texts), [None] * len(texts)
    for batch in tasks.iter_batches(batch_size=None, batch_format="numpy"):
        for i, task, confidence in zip(batch["i"], batch["task"], batch["confidence"]):
            labels[int(i)], confidences[int(i)] = str(task), float(confidence)
    missing = [i for i, label in enumerate(labels) if label is None]
    return labels, {i: "no label came back from the Ray workers" for i in missing}, confidences
