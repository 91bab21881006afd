"""The rewrite step for one shard: plan, resume, rewrite through a backend, write, summarise.

Per record: a task that is not rewritten (or no category at all, which counts as `default`)
is written back unchanged without any request. Otherwise one request asks for `top_k`
candidates; candidates without a `Revised response:` part are dropped; if none is left the
request is retried (bounded), else the longest valid candidate becomes
`items[1]["revised_response"]` and all of them `items[1]["revised_response_list"]`.

Files (names from realign.shards): finished records are appended to the shard output one line
at a time, so `kill -9` loses at most a torn last line; a rerun skips ids already there and
retries the rest, including earlier failures. The failures file is rewritten atomically at
the end with exactly the failures that still stand.
"""

import asyncio
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from tqdm import tqdm

from realign.constant import DEFAULT_TASK, RAG_TASKS, REWRITE_TASKS
from realign.errors import DataError
from realign.files import JsonlAppender, atomic_open, dumps_line, read_jsonl_tolerant
from realign.limits import RetryPolicy
from realign.llm.base import Request, Sampling, Unusable
from realign.llm.runner import Stats, run_step
from realign.prompts import build_rewrite_messages, parse_reply
from realign.records import answer, category, question

_REWRITE_SET = frozenset(REWRITE_TASKS)


@dataclass
class Settings:
    top_k: int = 1
    temperature: float = 0.3
    top_p: float = 1.0
    target_length: int = 4096          # max new tokens per candidate
    use_evidence: bool = True
    concurrency: int | None = None     # None: the backend's default
    rpm: float | None = None
    tpm: float | None = None
    max_retries: int = 5


@dataclass
class Summary:
    total: int = 0             # records in the shard
    skipped: int = 0           # already in the shard output (resume)
    rewritten: int = 0
    passed_through: int = 0
    no_category: int = 0       # records without a category, treated as default
    failed: int = 0
    stale: int = 0             # written before, but the input's question or answer changed since: redone
    requests: int = 0          # calls the backend really made (a server ignoring n: k per record)
    throttled: int = 0
    seconds: float = 0.0
    failures: dict = field(default_factory=dict)  # id -> reason, everything still failed
    attempted: int | None = None   # --limit: records of the shard worked on this run
    later: int = 0             # records to rewrite that --limit left for a later run
    throttles: bool = True     # False for a model we run (local, vllm): no 429s, time per rewrite instead
    stopped: str | None = None  # why the circuit breaker stopped the run early, when it did

    def line(self):
        head = (f"{self.attempted} of {self.total} records attempted (--limit)"
                if self.attempted is not None and self.attempted < self.total else f"{self.total} records")
        per = self.seconds / self.rewritten if self.rewritten else 0.0
        if self.throttles:
            rate = (self.rewritten / self.seconds) if self.seconds else 0.0
            pace = (f"{self.requests} requests, {self.throttled} answered 429; {self.seconds:.1f} s, "
                    f"{rate:.2f} rewritten/s")
        else:
            pace = f"{self.requests} model calls; {self.seconds:.1f} s" + (
                f", {per:.{1 if per >= 1 else 2}f} s per rewrite" if per else "")
        if self.later:
            pace += f"; {self.later} left to rewrite" + (f", about {duration(self.later * per)} at this pace" if per else "")
        return (f"{head}: {self.rewritten} rewritten, {self.passed_through} passed through "
                f"({self.no_category} without category), {self.failed} failed, {self.skipped} already done"
                + (f", {self.stale} redone because their input changed" if self.stale else "") + f"; {pace}")


def duration(seconds):
    """'45 s', '12 min', '3.5 h': an estimate, rounded as one."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------- per record

def task_of(rec):
    """The record's task; a missing category counts as the default task."""
    return category(rec) or DEFAULT_TASK


def is_rewritten(rec):
    return task_of(rec) in _REWRITE_SET


def messages_for(rec, use_evidence=True):
    task = task_of(rec)
    evidence = rec["items"][0].get("evidence") if use_evidence and task in RAG_TASKS else None
    return build_rewrite_messages(task, question(rec), answer(rec), evidence, system=rec.get("system"))


def make_check(length_fn):
    """check(texts) -> (best, candidates): parse every candidate, keep the valid ones,
    the longest (by `length_fn`) first. Raises Unusable when none is valid."""

    def check(texts):
        candidates = [parsed[1] for parsed in map(parse_reply, texts) if parsed]
        if not candidates:
            raise Unusable(f"no 'Revised response:' part in any of {len(texts)} candidate(s)")
        return max(candidates, key=length_fn), candidates

    return check


def with_rewrite(rec, best, candidates):
    """A copy of the record with the rewrite added to its first gpt turn."""
    items = list(rec["items"])
    items[1] = {**items[1], "revised_response": best, "revised_response_list": list(candidates)}
    return {**rec, "items": items}


# ---------------------------------------------------------------- resume

def same_content(written, rec):
    """A written record still belongs to the input record: same question, same original answer.
    After a user edits an answer and reruns, the rewrite of the old answer is stale."""
    try:
        return written["items"][0]["value"] == question(rec) and written["items"][1]["value"] == answer(rec)
    except (KeyError, IndexError, TypeError):
        return False


def resume_state(shard, out_path, fail_path):
    """(ids already done, earlier failures {id: reason}) for this shard. A written record counts
    as done only while its question and original answer equal the input's (`same_content`)."""
    done, _torn = read_jsonl_tolerant(out_path)
    by_id = {rec["id"]: rec for rec in shard}
    written = {obj.get("id") for obj in done if isinstance(obj, dict)}
    done_ids = {obj["id"] for obj in done
                if isinstance(obj, dict) and obj.get("id") in by_id and same_content(obj, by_id[obj["id"]])}
    shard_ids = set(by_id)
    stray = written - shard_ids
    if stray:
        raise DataError(f"{out_path}: holds {len(stray)} id(s) that are not in this shard of the input "
                        "(different input, or different --dataset_batch_num?); use another --output_directory")
    old, _ = read_jsonl_tolerant(fail_path)
    failures = {o["id"]: o.get("reason", "") for o in old if isinstance(o, dict) and o.get("id") in shard_ids}
    return done_ids, failures


def drop_stale(out_path, done_ids):
    """Rewrite the shard output without the records that are no longer done (stale: their input
    changed), so that redoing them does not leave the same id twice. Returns how many were dropped."""
    written, _torn = read_jsonl_tolerant(out_path)
    keep = [obj for obj in written if isinstance(obj, dict) and obj.get("id") in done_ids]
    if len(keep) < len(written):
        with atomic_open(out_path) as f:
            for obj in keep:
                f.write(dumps_line(obj) + "\n")
    return len(written) - len(keep)


def write_failures(path, failures):
    with atomic_open(path) as f:
        for rid, reason in failures.items():
            f.write(dumps_line({"id": rid, "reason": reason}) + "\n")


# ---------------------------------------------------------------- the run

def prompt_tokens(messages, length_fn):
    return sum(length_fn(m["content"]) for m in messages)


def make_request(rec, settings, length_fn):
    msgs = messages_for(rec, settings.use_evidence)
    return Request(key=rec["id"], messages=msgs,
                   sampling=Sampling(n=settings.top_k, temperature=settings.temperature,
                                     top_p=settings.top_p, max_tokens=settings.target_length),
                   cost_tokens=prompt_tokens(msgs, length_fn) + settings.top_k * settings.target_length)


def rewrite_shard(shard, backend, out_path, fail_path, settings, length_fn, attempt_limit=None,
                  progress=True):
    """Run the shard to completion; returns a Summary. `attempt_limit`: only the first N records
    (of the shard) are worked on this run (`--limit`)."""
    return asyncio.run(_rewrite_shard(shard, backend, out_path, fail_path, settings, length_fn,
                                      attempt_limit, progress))


async def _rewrite_shard(shard, backend, out_path, fail_path, settings, length_fn, attempt_limit, progress):
    start = time.monotonic()
    summary = Summary(total=len(shard), throttles=backend.throttles)
    done_ids, old_failures = resume_state(shard, out_path, fail_path)
    summary.stale = drop_stale(out_path, done_ids)
    work = shard if attempt_limit is None else shard[:attempt_limit]
    if attempt_limit is not None:
        summary.attempted = len(work)
        summary.later = sum(is_rewritten(r) and r["id"] not in done_ids for r in shard[len(work):])
    todo = [rec for rec in work if rec["id"] not in done_ids]
    summary.skipped = len(work) - len(todo)
    attempted = {rec["id"] for rec in todo}
    failures = {rid: why for rid, why in old_failures.items() if rid not in attempted and rid not in done_ids}
    by_id = {rec["id"]: rec for rec in todo}

    # disable=None: no bar when stderr is not a terminal (logs get the summary line instead)
    bar = tqdm(total=len(work), initial=summary.skipped, unit="rec", file=sys.stderr,
               disable=None if progress else True, dynamic_ncols=True, mininterval=0.5)
    with JsonlAppender(out_path) as out:
        for rec in todo:
            if not is_rewritten(rec):
                out.write(rec)
                summary.passed_through += 1
                summary.no_category += category(rec) is None
                bar.update()

        stats = Stats()
        to_rewrite, rewrites_from = sum(map(is_rewritten, todo)), time.monotonic()

        def pace():
            """Progress-bar figures: HTTP ones for a server, time per rewrite and ETA for a local model."""
            if backend.throttles:
                return {"in_flight": stats.in_flight, "conc": stats.concurrency, "http429": stats.throttled}
            finished = stats.succeeded + stats.failed
            per = (time.monotonic() - rewrites_from) / max(1, finished)
            return {"s_per_rewrite": f"{per:.1f}", "eta": duration(per * (to_rewrite - finished))}

        def on_done(outcome):
            rid = outcome.request.key
            if outcome.ok:
                best, candidates = outcome.result
                out.write(with_rewrite(by_id[rid], best, candidates))
                summary.rewritten += 1
            else:
                failures[rid] = outcome.error
                summary.failed += 1
            bar.update()
            bar.set_postfix(**pace(), failed=summary.failed, refresh=False)

        requests = (make_request(rec, settings, length_fn) for rec in todo if is_rewritten(rec))
        try:
            await run_step(backend, requests, on_done, concurrency=settings.concurrency,
                           policy=RetryPolicy(max_retries=settings.max_retries), rpm=settings.rpm,
                           tpm=settings.tpm, check=make_check(length_fn),
                           stats=stats)
        finally:
            bar.close()
            await backend.aclose()
    summary.requests, summary.throttled, summary.stopped = backend.calls, stats.throttled, stats.stopped
    write_failures(fail_path, failures)
    summary.failures = failures
    summary.failed = len(failures)
    summary.seconds = time.monotonic() - start
    return summary


# ---------------------------------------------------------------- dry run

def estimate(shard, settings, length_fn):
    """What a run would do, without any request: counts per category and token estimates.

    Output is estimated per candidate as 1.3 x the original response plus 60 tokens of
    reasoning, capped at --target_length; input is the full prompt, counted once per record.
    """
    per_category = Counter(task_of(rec) if category(rec) else f"{DEFAULT_TASK} (no category)" for rec in shard)
    rewrite = [rec for rec in shard if is_rewritten(rec)]
    tokens_in = sum(prompt_tokens(messages_for(rec, settings.use_evidence), length_fn) for rec in rewrite)
    tokens_out = sum(settings.top_k * min(settings.target_length, int(1.3 * length_fn(answer(rec))) + 60)
                     for rec in rewrite)
    unchanged = {task for task in per_category if task.split(" ")[0] not in _REWRITE_SET}
    return {"records": len(shard), "rewrite": len(rewrite), "pass_through": len(shard) - len(rewrite),
            "per_category": dict(per_category.most_common()), "unchanged_tasks": unchanged,
            "tokens_in": tokens_in, "tokens_out": tokens_out}
