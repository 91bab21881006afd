r"""Step 2: evidence for knowledge-intensive records (RAG tasks), from the web or a local corpus.

    export SERPER_API_KEY=...
    python retrieval.py --input_data_path dataset.json --output_path dataset_retrieval.json --batch_size 10
    python retrieval.py --input_data_path dataset.json --output_path dataset_retrieval.json \
        --backend bm25 --corpus_path datasets/corpus/        # offline, our demo corpus

Writes `dataset_retrieval.json` (raw evidence with its sources) and
`dataset_retrieval_clean_evidence.json` (cleaned evidence: the input of reformat.py). Only records
whose items[0]["category"] is a RAG task are searched; everything else passes through.
Every hit must clear a relevance floor (--min_relevance, see realign/search/relevance.py): a
record with no hit over it gets no evidence, which is better than off-topic evidence.
Rerunning the same command resumes. Exit 0 all done, 1 some searches failed, 2 bad input.
"""

import argparse
import sys
import time

from realign.apikeys import find_key
from realign.bars import progress_bar
from realign.cli import check_flags, check_not_input, run
from realign.constant import RAG_TASKS
from realign.errors import UsageError, first_n
from realign.limits import RetryPolicy
from realign.redact import scrub
from realign.records import category, check_data_output, load_records, question
from realign.search.bm25 import Bm25Corpus
from realign.search.cache import QueryCache
from realign.search.clean import attach_hits, has_evidence, is_junk
from realign.search.progress import Progress, clean_path_for
from realign.search.relevance import DEFAULT_MIN_RELEVANCE, RelevanceFloor
from realign.tabular import check_ids_fit
from realign.search.serper import DEFAULT_URL, SearchFailed, SerperClient


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input_data_path", required=True, help="classified records (.json, .jsonl, .parquet, .csv)")
    p.add_argument("--output_path", required=True, help="raw results; the cleaned file is written beside it")
    p.add_argument("--batch_size", type=int, default=10, help="queries in flight together, and records per checkpoint")
    p.add_argument("--backend", choices=["serper", "bm25"],
                   help="default: serper when SERPER_API_KEY is set; bm25 needs --corpus_path")
    p.add_argument("--serper_url", default=DEFAULT_URL)
    p.add_argument("--serper_key_file", default=None, metavar="PATH",
                   help="read the Serper key from this file (its only line) instead of SERPER_API_KEY")
    p.add_argument("--corpus_path", help="bm25: a .jsonl of {text, title?, url?} or a folder of .jsonl/.txt/.md files")
    p.add_argument("--top_k", type=int, default=5, help="evidence snippets kept per record")
    p.add_argument("--min_relevance", type=float, default=DEFAULT_MIN_RELEVANCE,
                   help="relevance floor in [0, 1]: the share of the question's content words a hit must hold "
                        "(weak words such as 'best' count a quarter); 0 turns the floor off "
                        f"(default {DEFAULT_MIN_RELEVANCE})")
    p.add_argument("--cache_path", help="serper: SQLite per-query cache (default: <output>.serper_cache.sqlite)")
    p.add_argument("--timeout", type=float, default=30.0, help="serper: seconds per request")
    p.add_argument("--max_retries", type=int, default=4, help="serper: retries per query on 429/5xx/timeouts")
    args = p.parse_args(argv)
    check_flags(args, at_least={"batch_size": 1, "top_k": 1, "max_retries": 0}, positive=("timeout",))
    if not 0 <= args.min_relevance <= 1:
        raise UsageError(f"--min_relevance must be between 0 and 1, got {args.min_relevance:g}")
    if not args.output_path.endswith((".json", ".jsonl", ".parquet", ".csv")):
        raise UsageError(f"{args.output_path}: --output_path must end in .json, .jsonl, .parquet or .csv")
    check_data_output("--output_path", args.output_path)
    check_not_input({"--output_path": args.output_path,
                     "--output_path (its _clean_evidence file)": clean_path_for(args.output_path)},
                    [args.input_data_path])
    check_not_input({"--cache_path": args.cache_path},
                    [args.input_data_path, args.output_path, clean_path_for(args.output_path)])
    return args


def open_backend(args):
    """The search backend: `search_many(queries, top_k) -> {query: hits | SearchFailed}`, `close()`."""
    key = find_key("--serper_key", key_file=args.serper_key_file, env="SERPER_API_KEY")
    backend = args.backend or ("serper" if key else None)
    if backend is None:
        raise UsageError("SERPER_API_KEY is not set; set it for web search, or search offline with "
                         "--backend bm25 --corpus_path datasets/corpus/")
    if backend == "bm25":
        if not args.corpus_path:
            raise UsageError("--backend bm25 needs --corpus_path (a .jsonl file or a folder of .jsonl/.txt/.md files)")
        return Bm25Corpus(args.corpus_path)
    if not key:
        raise UsageError("--backend serper needs SERPER_API_KEY in the environment (or --serper_key_file)")
    cache = QueryCache(args.cache_path or args.output_path + ".serper_cache.sqlite")
    return SerperClient(key, url=args.serper_url, timeout=args.timeout,
                        retry=RetryPolicy(max_retries=args.max_retries), cache=cache)


def main(argv=None):
    args = parse_args(argv)
    started = time.monotonic()

    # load: the records, and whatever evidence earlier runs already found for them
    records = load_records(args.input_data_path)
    for path in (args.output_path, clean_path_for(args.output_path)):  # a table that cannot hold the ids: now
        check_ids_fit(path, records)
    progress = Progress(records, args.output_path)
    resumed = progress.resume()
    unclassified = sum(category(r) is None for r in records)
    rag = [r for r in records if category(r) in RAG_TASKS]
    todo = [r for r in rag if not has_evidence(r)]
    backend = open_backend(args) if todo else None

    # do: search a batch, keep the hits over the relevance floor, attach them, persist, next
    floor = RelevanceFloor(args.min_relevance)
    failed, given, dropped = {}, 0, 0
    try:
        with progress_bar(len(todo), "rec", desc="retrieval", enabled=bool(todo)) as bar:
            for start in range(0, len(todo), args.batch_size):
                batch = todo[start:start + args.batch_size]
                results = backend.search_many([question(r) for r in batch], args.top_k)
                for rec in batch:
                    found = results[question(rec)]
                    if isinstance(found, SearchFailed):
                        failed[rec["id"]] = str(found)
                        continue
                    kept, away = floor.split(question(rec), found)
                    attach_hits(rec, kept, away)
                    given += any(not is_junk(h["text"]) for h in kept)
                    dropped += len(away)
                progress.save_batch([r for r in batch if has_evidence(r)])
                bar.update(len(batch))
    except KeyboardInterrupt:
        progress.checkpoint()
        raise

    # write, summarise
    progress.finish()
    if backend is not None:
        backend.close()
    if isinstance(backend, SerperClient):
        print(f"serper: {backend.requests} requests, {backend.cache.hits} answered from cache {backend.cache.path}")
    if isinstance(backend, Bm25Corpus):
        print(f"bm25: {len(backend.docs)} documents, index {'built' if backend.rebuilt else 'reused'} at {backend.index_dir}")
    print(f"output: {args.output_path} and {progress.clean_path}")
    kind = "none needed" if backend is None else ("bm25" if isinstance(backend, Bm25Corpus) else "serper")
    searched = len(todo) - len(failed)
    print(f"retrieval ({kind}): {len(records)} records, {len(rag)} RAG-task: {searched} searched, "
          f"{given} given evidence, {searched - given} left without (no hit over the floor {args.min_relevance:g}), "
          f"{dropped} passages dropped by the floor; {len(rag) - len(todo)} already had evidence "
          f"({resumed} from an earlier run), {len(failed)} failed; "
          f"{len(records) - len(rag)} passed through unsearched; {time.monotonic() - started:.1f} s")
    if unclassified:
        print(f"note: {unclassified} record(s) have no category and were not searched; run classify.py first")
    stopped = getattr(getattr(backend, "breaker", None), "stopped", None)
    if stopped:
        print(f"error: stopped early, {stopped}; fix the endpoint and rerun the same command to resume",
              file=sys.stderr)
    if failed:
        print(f"failed, left without evidence (rerun to retry): ids {first_n(failed)}; "
              f"why: {scrub('; '.join(sorted(set(failed.values()))))}")
    return 1 if failed else 0


if __name__ == "__main__":
    run(main)
