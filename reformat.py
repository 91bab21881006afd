r"""Step 3: rewrite each response into its task's format with an LLM, one shard per process.

    export OPENAI_API_KEY=...
    python reformat.py \
        --input_data_path dataset_retrieval_clean_evidence.json \
        --output_directory reformat_results \
        --dataset_batch_id 0 --dataset_batch_num 1 \
        --model gpt-4o-mini --top_k 2 --temperature 0.3 --top_p 1 --target_length 4096

Any OpenAI-compatible server works through --base_url (vLLM serve, llama.cpp server, Ollama);
--backend vllm runs an offline vLLM engine on the local GPU instead. One process keeps
--concurrency requests in flight, backs off on 429 and adapts; rerunning the same command
resumes: a record is done when a shard file of the run holds a line made from its current input
(id and input hash: question, answer, system prompt, category, evidence), so removed,
reordered or edited records leave the rest done and only what changed is sent again; failures
are retried. Shard i of N writes
rewrite_data_{i}_of_{N}_batch.jsonl and failures_{i}_of_{N}.jsonl in --output_directory.

Every candidate is read strictly: <think> blocks are dropped, a reply wrapped whole in a code
fence is unwrapped, and a candidate cut at --target_length, empty, refused or echoing our prompt
is not used. Empty originals are not sent. A model that finds the task's layout does not suit
the record answers KEEP ORIGINAL; the record keeps its answer ("format does not fit", counted
per task at the end).

--batch sends the shard through the provider's Batch API instead (half the price, answered
within 24 h; the same command picks the batch up after a kill or a reboot); --write_batch_file
and --read_batch_output make and read the same files for `vllm run-batch` (README: batch mode).
Exit code: 0 all rewritten or passed through, 1 some records failed (see the failures file),
2 bad input or usage.
"""

import argparse
import asyncio
import os
import sys
from contextlib import contextmanager

from realign.cli import add_ray_flags, check_flags, check_not_input, ray_settings, run
from realign.errors import DataError, UsageError, first_n
from realign.lengths import make_length_fn
from realign.prompts import REPEATS_ITSELF
from realign.llm.base import BACKENDS, BackendConfig, api_key, make_backend
from realign.llm.batch import (AZURE_CHAT_URL, CHAT_URL, MAX_BYTES, MAX_REQUESTS, BatchRun, BatchSettings,
                               BatchUnreachable, running_batches, state_path as batch_state_path, write_requests)
from realign.ray.backend import ray_backend
from realign.records import load_records
from realign.redact import scrub
from realign.files import check_not_link
from realign.rewrite import Settings, ShardWork, estimate, resume_state, rewrite_shard
from realign.shards import ShardLock, failures_path, lock_path, run_files, shard_bounds, shard_path


AZURE_KEY_ENV = "AZURE_OPENAI_API_KEY"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # flags of the original script
    p.add_argument("--input_data_path", required=True, help="ReAlign records (.json/.jsonl/.parquet/.csv), classified (and with evidence, from retrieval.py)")
    p.add_argument("--output_directory", required=True, help="folder for the shard output and failures files")
    p.add_argument("--tokenizer_path", default=None,
                   help="tokenizer (folder with tokenizer.json) used to pick the longest candidate; "
                        "default: a tokenizer-free length")
    p.add_argument("--dataset_batch_id", type=int, default=0, help="which shard this process runs (0-based)")
    p.add_argument("--dataset_batch_num", type=int, default=1, help="how many shards in total")
    p.add_argument("--openai_key", default=None,
                   help="API key (visible to other users in `ps`: prefer OPENAI_API_KEY or --openai_key_file)")
    p.add_argument("--openai_key_file", default=None, metavar="PATH",
                   help="read the API key from this file (its only line)")
    p.add_argument("--top_k", type=int, default=1, help="candidates per record; the longest valid one is kept")
    p.add_argument("--model", default="gpt-4o-mini", help="model name (a model path with --backend vllm, a .gguf file with --backend local)")
    p.add_argument("--temperature", type=float, default=0.3,
                   help="sampling temperature (default 0.3; a model that takes only its own, such as OpenAI's "
                        "reasoning models, gets its default and the summary says so)")
    p.add_argument("--top_p", type=float, default=None,
                   help="nucleus sampling; default: not sent (every server's default, 1.0)")
    p.add_argument("--target_length", type=int, default=4096, help="most new tokens per candidate")
    # ours
    p.add_argument("--backend", default="openai", choices=sorted(BACKENDS))
    p.add_argument("--threads", type=int, default=2,
                   help="CPU threads for --backend local (the embedded GGUF model; 1 is steadier on busy machines)")
    p.add_argument("--base_url", default=os.environ.get("OPENAI_BASE_URL"),
                   help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (default: $OPENAI_BASE_URL)")
    p.add_argument("--api_type", default="openai", choices=("openai", "azure"),
                   help="azure: Azure OpenAI (--base_url https://RESOURCE.openai.azure.com, --model is the "
                        "deployment name, key from AZURE_OPENAI_API_KEY)")
    p.add_argument("--api_version", default=None,
                   help="Azure OpenAI api-version (default: a recent GA version, DEFAULT_AZURE_API_VERSION in "
                        "code/llm/openai_http.py)")
    p.add_argument("--concurrency", type=int, default=None,
                   help="requests in flight (default 32 for HTTP, batch size 256 for vllm, 1 for local)")
    p.add_argument("--rpm", type=float, default=None, help="client-side cap on requests per minute")
    p.add_argument("--tpm", type=float, default=None,
                   help="client-side cap on tokens per minute (prompt + top_k x target_length per request)")
    p.add_argument("--max_retries", type=int, default=5, help="retries per record before it is a failure")
    p.add_argument("--request_timeout", type=float, default=120.0, help="seconds per HTTP request")
    p.add_argument("--no_retrieval", action="store_true", help="ignore items[0].evidence")
    p.add_argument("--limit", type=int, default=None, help="work on the first N records of the shard only")
    p.add_argument("--dry_run", action="store_true", help="print what would be sent and its cost; send nothing")
    p.add_argument("--price_in", type=float, default=None, help="$ per 1M input tokens (for --dry_run)")
    p.add_argument("--price_out", type=float, default=None, help="$ per 1M output tokens (for --dry_run)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_ray_flags(p)
    add_batch_flags(p)
    return p.parse_args(argv)


def make_output_directory(path):
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--output_directory {path}: cannot create it ({e.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"--output_directory {path}: not writable")


@contextmanager
def removed_if_empty_on_error(folder, created):
    """An exit 2 (DataError) before anything was written leaves no empty folder we created."""
    try:
        yield
    except DataError:
        if created:
            try:
                os.rmdir(folder)
            except OSError:
                pass
        raise


def print_dry_run(plan, args, done):
    print(f"dry run: shard {args.dataset_batch_id} of {args.dataset_batch_num}, {plan['records']} records, "
          f"{plan['rewrite']} to rewrite, {plan['pass_through']} passed through unchanged"
          + (f" ({plan['empty_original']} with an empty original)" if plan["empty_original"] else "")
          + (f"; {done} more already done (skipped on a rerun)" if done else ""))
    width = max(map(len, plan["per_category"]), default=0)
    for task, count in plan["per_category"].items():
        what = "passed through unchanged" if task in plan["unchanged_tasks"] else "rewritten"
        print(f"  {count:8d}  {task:<{width}}  {what}")
    print(f"estimated tokens: {plan['tokens_in']:,} in, {plan['tokens_out']:,} out (top_k={args.top_k})")
    if args.price_in is not None or args.price_out is not None:
        cost = plan["tokens_in"] / 1e6 * (args.price_in or 0) + plan["tokens_out"] / 1e6 * (args.price_out or 0)
        print(f"estimated cost: ${cost:,.2f} online, ${cost * BATCH_PRICE:,.2f} with --batch "
              f"(Batch API: {1 - BATCH_PRICE:.0%} off)")
    if args.batch:
        batches = -(-plan["rewrite"] // args.max_batch_requests)
        print(f"batch: {plan['rewrite']} records in {batches} batch{'es' if batches != 1 else ''} "
              f"(at most {args.max_batch_requests:,} requests and 200 MB each), answered within 24 h")


def main(argv=None):
    args = parse_args(argv)
    check_flags(args, at_least={"top_k": 1, "target_length": 1, "max_retries": 0, "concurrency": 1, "limit": 1},
                positive=("request_timeout", "rpm", "tpm"), within={"temperature": (0, 2), "top_p": (0, 1)})
    azure = args.api_type == "azure"
    if azure and not args.base_url and not args.dry_run:
        raise UsageError("--api_type azure needs the resource's endpoint: --base_url https://RESOURCE.openai.azure.com")
    key = api_key(args.backend, args.openai_key, key_file=args.openai_key_file,
                  base_url=None if azure else args.base_url,
                  required=not (args.dry_run or args.write_batch_file or args.read_batch_output),
                  env=AZURE_KEY_ENV if azure else None)
    records = load_records(args.input_data_path)
    start, end = shard_bounds(len(records), args.dataset_batch_id, args.dataset_batch_num)
    shard = records[start:end]
    length = make_length_fn(args.tokenizer_path)
    settings = Settings(top_k=args.top_k, temperature=args.temperature, top_p=args.top_p,
                        target_length=args.target_length, use_evidence=not args.no_retrieval,
                        concurrency=args.concurrency, rpm=args.rpm, tpm=args.tpm, max_retries=args.max_retries)
    out, fails = (shard_path(args.output_directory, args.dataset_batch_id, args.dataset_batch_num),
                  failures_path(args.output_directory, args.dataset_batch_id, args.dataset_batch_num))
    check_not_input({"the shard output": out, "the failures file": fails}, [args.input_data_path])
    check_not_link(out, fails, lock_path(out))  # never written through a link planted in the folder
    others = [path for i, path in sorted(run_files(args.output_directory, args.dataset_batch_num).items())
              if i != args.dataset_batch_id]  # a run of another N here: exit 2
    resuming = {"records": records, "other_shards": others, "input_path": args.input_data_path}

    if batch_mode(args):  # the Batch API or its files instead of online calls (code/llm/batch.py)
        check_batch_flags(args)
        if not args.dry_run:
            return run_batch(args, shard, out, fails, settings, length, key, resuming)

    if args.dry_run:  # what a run (or a rerun, resuming) would send
        done_ids = resume_state(shard, out, fails, **resuming).done
        work = shard[: args.limit] if args.limit else shard
        todo = [rec for rec in work if rec["id"] not in done_ids]
        print_dry_run(estimate(todo, settings, length), args, done=len(work) - len(todo))
        return 0

    refuse_if_batch_running(out)
    config = BackendConfig(model=args.model, base_url=args.base_url, api_key=key,
                           request_timeout=args.request_timeout,
                           options={"threads": args.threads, "api_type": args.api_type, "api_version": args.api_version})
    if args.engine == "ray":  # the same run, its model calls spread over a Ray cluster (code/ray/backend.py)
        backend = ray_backend(args.backend, config, ray_settings(args), rpm=args.rpm, tpm=args.tpm)
        settings.rpm = settings.tpm = None  # the caps are cluster-wide there
    else:
        backend = make_backend(args.backend, config)
    created = not os.path.exists(args.output_directory)
    make_output_directory(args.output_directory)
    with removed_if_empty_on_error(args.output_directory, created):
        with ShardLock(out):  # one writer per shard: a second process on it exits 2 naming this one
            summary = rewrite_shard(shard, backend, out, fails, settings, length, attempt_limit=args.limit,
                                    progress=not args.quiet, **resuming)

    print(f"output: {out}")
    print(summary.line())
    for line in summary.does_not_fit_lines():
        print(line)
    if summary.stopped:  # the circuit breaker: what is finished is kept, a rerun resumes
        print(f"error: stopped early, {summary.stopped}; {len(summary.failures)} records not done "
              f"(reasons in {fails}); fix the endpoint and rerun the same command to resume", file=sys.stderr)
        return 1
    if summary.failures:
        print(f"{len(summary.failures)} failed (ids {first_n(summary.failures)}), reasons in {fails}; "
              "rerun the same command to retry them")
        cut = [why for why in summary.failures.values() if why.startswith("truncated at")]
        loops = sum(why.endswith(REPEATS_ITSELF) for why in cut)
        if len(cut) > loops:
            print(f"{len(cut) - loops} of them were cut at --target_length {args.target_length}: "
                  "rerun with a larger --target_length for those")
        if loops:  # a larger limit only pays for a longer loop
            print(f"{loops} of them repeated themselves until --target_length {args.target_length}: a larger "
                  "limit cannot help those (they keep their original answer; a stronger model may not loop)")
        long = sum(why.startswith("context size exceeded") for why in summary.failures.values())
        if long:
            print(f"{long} of them do not fit the server's context (each failed alone, at once): a model with a "
                  "longer context, or a lower --target_length, would take them")
        return 1
    return 0


# ---------------------------------------------------------------- batch mode (code/llm/batch.py)

BATCH_PRICE = 0.5  # of the online price: OpenAI's Batch API and Azure OpenAI's global batch


def add_batch_flags(p):
    g = p.add_argument_group("batch mode: the Batch API at half the price, or vllm run-batch's files")
    g.add_argument("--batch", action="store_true",
                   help="send the shard through the provider's Batch API (answers within 24 h); rerunning the same "
                        "command picks up the batches it started, even after a kill or a reboot")
    g.add_argument("--poll_interval", type=float, default=60.0, help="seconds between looks at the batches (default 60)")
    g.add_argument("--max_batch_requests", type=int, default=MAX_REQUESTS,
                   help="requests per batch (default 50,000, OpenAI's limit); more are split into several "
                        "batches, as are files past 200 MB")
    g.add_argument("--cancel_batch", action="store_true",
                   help="cancel the shard's running batches, keep what they answered, fail the rest")
    g.add_argument("--write_batch_file", metavar="PATH", default=None,
                   help="write the request file (one line per request, as `vllm run-batch -i` reads it) and stop")
    g.add_argument("--read_batch_output", metavar="PATH", default=None,
                   help="finish the shard from an output file made elsewhere (`vllm run-batch -o`, or downloaded)")


def batch_mode(args):
    return bool(args.batch or args.cancel_batch or args.write_batch_file or args.read_batch_output)


def check_batch_flags(args):
    given = [flag for flag in ("write_batch_file", "read_batch_output", "cancel_batch") if getattr(args, flag)]
    if len(given) > 1:
        raise UsageError(f"--{given[0]} and --{given[1]} do not go together: choose one")
    if args.engine == "ray":
        raise UsageError("--engine ray does not combine with batch mode: the provider runs the batch, not a cluster; "
                         "drop --engine ray")
    if (args.batch or args.cancel_batch) and args.backend != "openai":
        raise UsageError(f"--batch needs a Batch API (--backend openai), not --backend {args.backend}; on a GPU, "
                         "write the requests with --write_batch_file and run `vllm run-batch` (see README)")
    check_flags(args, at_least={"max_batch_requests": 1}, positive=("poll_interval",))
    for path in (args.write_batch_file, args.read_batch_output):
        check_not_input({"the batch file": path}, [args.input_data_path])


def refuse_if_batch_running(out):
    """An online run on a shard whose batch still runs would pay twice for its records."""
    running = running_batches(batch_state_path(out))
    if running:
        raise UsageError(f"{out}: batch {running[0]} still runs for this shard; rerun with --batch to pick it up "
                         "(or --batch --cancel_batch to cancel it) before an online run")


def run_batch(args, shard, out, fails, settings, length, key, resuming):
    azure = args.api_type == "azure"
    config = BackendConfig(model=args.model, base_url=args.base_url, api_key=key,
                           request_timeout=args.request_timeout,
                           options={"api_type": args.api_type, "api_version": args.api_version})
    backend = make_backend("openai", config)  # the online path's client and request bodies
    url = AZURE_CHAT_URL if azure else CHAT_URL
    if args.write_batch_file:
        work = ShardWork(shard, out, fails, settings, length, attempt_limit=args.limit, read_only=True, **resuming)
        n, lines, size = write_requests(args.write_batch_file, backend, map(work.request, work.to_send()), url)
        work.out.close()
        print(f"wrote {lines} request lines for {n} records to {args.write_batch_file} ({size / 1e6:.1f} MB); "
              f"run them, e.g. `vllm run-batch -i {args.write_batch_file} -o OUTPUT.jsonl --model {args.model}`, "
              f"then rerun this command with --read_batch_output OUTPUT.jsonl instead of --write_batch_file")
        if lines > MAX_REQUESTS or size > MAX_BYTES:
            print(f"note: over one Batch API batch ({MAX_REQUESTS:,} requests, 200 MB): --batch splits it for you")
        return 0
    created = not os.path.exists(args.output_directory)
    make_output_directory(args.output_directory)
    with removed_if_empty_on_error(args.output_directory, created), ShardLock(out), \
            ShardWork(shard, out, fails, settings, length, attempt_limit=args.limit, **resuming) as work:
        batch_settings = BatchSettings(poll_interval=args.poll_interval, max_retries=args.max_retries,
                                       max_requests=args.max_batch_requests, url=url, progress=not args.quiet)
        runner = BatchRun(backend, work, batch_settings, None if args.read_batch_output else batch_state_path(out))
        try:
            if args.read_batch_output:
                report = runner.read_output(args.read_batch_output)
            else:
                report = asyncio.run(runner.cancel() if args.cancel_batch else runner.run())
        except KeyboardInterrupt:
            hint = runner.interrupted_hint()
            if hint:
                print(hint, file=sys.stderr)
            raise
        except BatchUnreachable as e:
            print(f"error: {e}; {runner.interrupted_hint() or 'rerun the same command'}", file=sys.stderr)
            return 1
    summary = work.summary
    for note in backend.adaptations:  # the request shape learned from the error files (llm/shape.py)
        print(f"adapted to the server: {scrub(note)}")
    print(f"output: {out}")
    print(summary.line())
    print(report.line())
    for line in summary.does_not_fit_lines():
        print(line)
    if summary.failures:
        again = ("retry them online, with --batch, or through a new request file (--write_batch_file writes only "
                 "what is left)") if args.read_batch_output else "rerun the same command to retry them"
        print(f"{len(summary.failures)} failed (ids {first_n(summary.failures)}), reasons in {fails}; {again}")
        return 1
    return 0


if __name__ == "__main__":
    run(main)
