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
  worker books from (code/ray/pace.py), never per worker.
- Failures: a killed worker process is restarted by Ray and its calls in flight are replayed
  there (at most WORKER_RESTARTS times per worker); a worker gone for good is left out and the
  runner retries its requests elsewhere. Records are written only by the driver, once.
- vLLM: each worker is one engine replica on `--tensor_parallel_size` GPUs of one node (a packed
  placement group when more than one; see worker_placement). Not yet run on a GPU by us.

The embedded classifier does not call a backend; classifier/on_ray.py runs it with Ray Data
(`map_batches` over an actor pool, one model per actor).

    cluster.py  joining or starting a cluster, and where a worker actor is placed
    backend.py  RayBackend (the driver's side), the Worker actor, and ray_backend() for the scripts
    pace.py     the named actor that enforces --rpm/--tpm once for the whole cluster

Inside this package `import ray` is the real Ray (imports are absolute); this package is `realign.ray`.

Ray is an optional extra (`pip install -e .[ray]`): it is imported only when `--engine ray` runs.
"""
