"""The rewrite step for one shard: plan, resume, rewrite through a backend, write, summarise.

Per record: a task that is not rewritten (or no category at all, which counts as `default`)
is written back unchanged without any request, marked `items[1]["kept_original"] = "task not
rewritten"` (or "no category"); so is an empty or whitespace-only original (nothing to stay
faithful to), marked "empty original". Every line also carries `items[1]["input_hash"]`
(records.input_hash: what the line was made from). Otherwise one request asks for `top_k`
candidates, each read by prompts.read_reply:

- a usable rewrite: the longest becomes `items[1]["revised_response"]`, all of them
  `items[1]["revised_response_list"]`;
- the valve (the model answered KEEP ORIGINAL): when at least as many candidates say so as give
  a usable rewrite, the record is written unchanged with `kept_original = "format does not fit"`
  and counted per task in the summary;
- nothing usable: the request is retried (bounded by --max_retries) and then fails with the
  candidates' reasons. A cut at --target_length or a refusal repeats itself, so those get at
  most one more try; at temperature 0 no reply that failed a check is retried (the same prompt
  gives the same answer, which can only fail the same way).

`shard_row` / `row_for_result` make the line of a finished record, `failure_of` and
`write_failures` those of failed ones, for every runner (this one and any other that finishes
records).

Files (names from realign.shards): finished records are appended to the shard output one line
at a time, so `kill -9` loses at most a torn last line. A rerun skips the records that have a
line made from their current input (id and input hash, in any shard file of the run: a record
that moved to another shard stays done), redoes those whose input changed, and retries the
rest, including earlier failures. The failures file is rewritten atomically at the end with
exactly the failures that still stand.
"""

import asyncio
import os
import time
from collections import Counter
from dataclasses import dataclass, field

from realign.bars import progress_bar
from realign.constant import DEFAULT_TASK, RAG_TASKS, REWRITE_TASKS
from realign.errors import DataError, first_n
from realign.files import JsonlAppender, atomic_open, dumps_line, read_jsonl_tolerant
from realign.limits import RetryPolicy
from realign.llm.base import Request, Sampling, Unusable
from realign.llm.runner import Stats, run_step
from realign.prompts import (FORMAT_DOES_NOT_FIT, REPLY_KEEP, REPLY_OK, REPLY_REFUSED, REPLY_TRUNCATED,
                             build_rewrite_messages, read_reply)
from realign.records import answer, category, input_hash, question
from realign.shards import (EMPTY_ORIGINAL, NO_CATEGORY, TASK_NOT_REWRITTEN, Failure, check_same_dataset, matches,
                            read_failures, read_shard)

_REWRITE_SET = frozenset(REWRITE_TASKS)
REWRITE, KEEP = "rewrite", "keep"


@dataclass
class Settings:
    top_k: int = 1
    temperature: float = 0.3
    top_p: float | None = None         # None: not sent (the server's default)
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
    passed_through: int = 0    # all records written unchanged, whatever the reason
    no_category: int = 0       # records without a category, treated as default
    empty_original: int = 0    # empty or whitespace-only originals, not sent
    does_not_fit: Counter = field(default_factory=Counter)  # task -> records the model kept (the valve)
    failed: int = 0
    stale: int = 0             # written before, but the record's input changed since: redone
    requests: int = 0          # calls the backend really made (a server ignoring n: k per record)
    throttled: int = 0
    seconds: float = 0.0
    failures: dict = field(default_factory=dict)  # id -> reason, everything still failed
    attempted: int | None = None   # --limit: records of the shard worked on this run
    later: int = 0             # records to rewrite that --limit left for a later run
    throttles: bool = True     # False for a model we run (local, vllm): no 429s, time per rewrite instead
    stopped: str | None = None  # why the circuit breaker stopped the run early, when it did
    batch: str | None = None   # batch mode's own figures (llm/batch.py), said instead of the online ones

    def line(self):
        head = (f"{self.attempted} of {self.total} records attempted (--limit)"
                if self.attempted is not None and self.attempted < self.total else f"{self.total} records")
        per = self.seconds / self.rewritten if self.rewritten else 0.0
        if self.batch:
            pace = f"{self.batch}; {self.seconds:.1f} s"
        elif self.throttles:
            rate = (self.rewritten / self.seconds) if self.seconds else 0.0
            pace = (f"{self.requests} requests, {self.throttled} answered 429; {self.seconds:.1f} s, "
                    f"{rate:.2f} rewritten/s")
        else:
            pace = f"{self.requests} model calls; {self.seconds:.1f} s" + (
                f", {per:.{1 if per >= 1 else 2}f} s per rewrite" if per else "")
        if self.later:
            pace += f"; {self.later} left to rewrite" + (f", about {duration(self.later * per)} at this pace" if per else "")
        return (f"{head}: {self.rewritten} rewritten, {self.passed_through} passed through "
                f"({self.no_category} without category{self.kept_counts()}), {self.failed} failed, "
                f"{self.skipped} already done"
                + (f", {self.stale} redone because their input changed" if self.stale else "") + f"; {pace}")

    def kept_counts(self):
        """', 2 empty original, 1 format does not fit': records kept on purpose, when there are any."""
        kept = ((self.empty_original, "empty original"), (sum(self.does_not_fit.values()), "format does not fit"))
        return "".join(f", {n} {what}" for n, what in kept if n)

    def does_not_fit_lines(self):
        """One line per task whose records the model kept as they were: a measure of how often the
        classifier's task (or its layout) does not suit the record."""
        return [f"  format does not fit: {n:6d}  {task}" for task, n in self.does_not_fit.most_common()]


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


def is_empty_original(rec):
    value = answer(rec)
    return not isinstance(value, str) or not value.strip()


def to_send(rec):
    """True when the record goes to the model: a rewritten task with something to rewrite."""
    return is_rewritten(rec) and not is_empty_original(rec)


def messages_for(rec, use_evidence=True):
    task = task_of(rec)
    evidence = rec["items"][0].get("evidence") if use_evidence and task in RAG_TASKS else None
    return build_rewrite_messages(task, question(rec), answer(rec), evidence, system=rec.get("system"))


def make_check(length_fn, original_of=None, max_tokens=None, temperature=0.3):
    """check(completions, request) -> (REWRITE, best, candidates) or (KEEP, reason, []).

    Every candidate is read by prompts.read_reply against the record's original
    (`original_of(request)`, "" when not given). The longest usable rewrite (by `length_fn`)
    wins unless at least as many candidates used the valve. Raises Unusable, with the
    candidates' reasons, when none is usable: retried only once more when every reason is a cut
    at the token limit or a refusal, and never at temperature 0, where the same prompt gives
    the same reply."""

    def check(completions, request=None):
        original = original_of(request) if original_of and request is not None else ""
        readings = [read_reply(c.text, original, c.finish_reason, c.refusal, max_tokens) for c in completions]
        candidates = [value for verdict, value in readings if verdict == REPLY_OK]
        keeps = sum(verdict == REPLY_KEEP for verdict, _ in readings)
        if keeps and keeps >= len(candidates):
            return KEEP, FORMAT_DOES_NOT_FIT, []
        if candidates:
            return REWRITE, max(candidates, key=length_fn), candidates
        reasons = list(dict.fromkeys(value for _, value in readings)) or ["no candidate returned"]
        repeats = all(verdict in (REPLY_TRUNCATED, REPLY_REFUSED) for verdict, _ in readings)
        of = f" (all {len(readings)} candidates)" if len(readings) > 1 and len(reasons) == 1 else ""
        raise Unusable("; ".join(reasons) + of, retries=0 if temperature == 0 else 1 if repeats else None)

    return check


# ---------------------------------------------------------------- the lines a finished record writes

def shard_row(rec, rewrite=None, candidates=(), kept_reason=None):
    """The shard line of a finished record: a copy of `rec` whose first gpt turn also holds
    `input_hash` (records.input_hash: what the line was made from) and either the rewrite
    (`revised_response`, with every usable candidate in `revised_response_list`) or why the
    original stays (`kept_original`). Every runner writes its lines through this function."""
    items = list(rec["items"])
    if rewrite is not None:
        made = {"revised_response": rewrite, "revised_response_list": list(candidates)}
    else:
        made = {"kept_original": kept_reason}
    items[1] = {**items[1], **made, "input_hash": input_hash(rec)}
    return {**rec, "items": items}


def row_for_result(rec, result):
    """The shard line for `rec` from make_check's result: (REWRITE, best, candidates) or
    (KEEP, reason, [])."""
    verdict, value, candidates = result
    if verdict == KEEP:
        return shard_row(rec, kept_reason=value)
    return shard_row(rec, rewrite=value, candidates=candidates)


def passing_reason(rec):
    """Why a record that is not sent keeps its original: no category, a task that is not
    rewritten, or an empty original."""
    if is_rewritten(rec):
        return EMPTY_ORIGINAL
    return NO_CATEGORY if category(rec) is None else TASK_NOT_REWRITTEN


def failure_of(rec, reason):
    """A record that failed for `reason`, as its failures-file line keeps it (write_failures)."""
    return Failure(reason, input_hash(rec))


# ---------------------------------------------------------------- resume

@dataclass
class Resume:
    """What earlier runs left for a shard: `done` ids have a line made from their current input
    (in this shard's file or another file of the run), `stale` ids only lines made from an older
    one, `failures` {id: Failure} is this shard's failures file as it stands, and `drop` holds
    the indexes of the lines of this shard's file that no longer count (see drop_stale)."""
    done: set
    stale: set
    failures: dict
    drop: set


def resume_state(shard, out_path, fail_path, records=None, other_shards=(), input_path=None):
    """The Resume of `shard` (its records), from its shard file `out_path`, its failures file
    `fail_path` and the other shard files of the run. Records are matched by id and input hash
    (shards.matches), never by position. Lines of records that are not in the shard (removed
    from the input, or now another shard's) are left alone. A folder whose lines share no
    record with the input (`records`, default the shard) holds another dataset's run:
    DataError, as parallel_data_merge.py refuses it."""
    by_id = {rec["id"]: rec for rec in shard}
    own = read_shard(out_path)
    others = [row for path in other_shards for row in read_shard(path)]
    everyone = by_id if records is None else {rec["id"]: rec for rec in records}
    check_same_dataset(own + others, everyone, os.path.dirname(out_path) or ".", input_path)
    digests = {}

    def current(row):
        rec = by_id[row.id]
        if row.id not in digests:
            digests[row.id] = input_hash(rec)
        return matches(row, rec, digests[row.id])

    elsewhere = {row.id for row in others if row.id in by_id and current(row)}
    kept, drop = set(), set()
    for k, row in enumerate(own):
        if row.id not in by_id:
            continue  # a removed record's line, or another shard's: not ours to judge
        if row.id in elsewhere or row.id in kept or not current(row):
            drop.add(k)
        else:
            kept.add(row.id)
    done = kept | elsewhere
    seen = {row.id for row in own + others if row.id in by_id}
    return Resume(done, seen - done, read_failures(fail_path), drop)


def drop_stale(out_path, resume):
    """Rewrite the shard output without the lines in `resume.drop`: this shard's lines made from
    an older input (their records are redone), a second line of one record, and a line of a
    record whose line in another shard's file already counts (one line per record in the run).
    Returns how many lines were dropped."""
    if not resume.drop:
        return 0
    written, _torn = read_jsonl_tolerant(out_path)
    with atomic_open(out_path) as f:
        for k, obj in enumerate(written):
            if k not in resume.drop:
                f.write(dumps_line(obj) + "\n")
    return len(resume.drop)


def write_failures(path, failures):
    """`failures` {id: Failure}, one line each, atomically."""
    with atomic_open(path) as f:
        for rid, failure in failures.items():
            f.write(dumps_line({"id": rid, "reason": failure.reason, "input_hash": failure.input_hash}) + "\n")


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
                  progress=True, records=None, other_shards=(), input_path=None):
    """Run the shard to completion; returns a Summary. `attempt_limit`: only the first N records
    (of the shard) are worked on this run (`--limit`). `records` (the whole input) and
    `other_shards` (the run's other shard files) let resume find records done in another shard's
    file and refuse a folder of another dataset (resume_state)."""
    return asyncio.run(_rewrite_shard(shard, backend, out_path, fail_path, settings, length_fn,
                                      attempt_limit, progress, records, other_shards, input_path))


class ShardWork:
    """One run's work on a shard, for every runner (the online one below; batch mode,
    llm/batch.py): what resume leaves to do, the request and check of each record, and the
    writing of each finished record (its shard line or its failure) with the summary's counts.

        with ShardWork(shard, out_path, fail_path, settings, length_fn, **resume_args) as work:
            for rec in work.to_send(): ... work.finish(rec["id"], result) or work.finish(rid, error=why)
            summary = work.summarize()   # the failures file, and the Summary

    Pass-through records (not sent) are written by write_passing(), which a runner calls once
    the endpoint has answered (or at the end), so a run the endpoint refuses (exit 2) leaves the
    shard as it was. `read_only`: only look at what is left (no stale line dropped)."""

    def __init__(self, shard, out_path, fail_path, settings, length_fn, attempt_limit=None, records=None,
                 other_shards=(), input_path=None, throttles=True, read_only=False):
        self.out_path, self.fail_path, self.settings, self.length_fn = out_path, fail_path, settings, length_fn
        self.start = time.monotonic()
        self.summary = summary = Summary(total=len(shard), throttles=throttles)
        resume = resume_state(shard, out_path, fail_path, records, other_shards, input_path)
        if not read_only:
            drop_stale(out_path, resume)
        done_ids = resume.done
        work = shard if attempt_limit is None else shard[:attempt_limit]
        if attempt_limit is not None:
            summary.attempted = len(work)
            summary.later = sum(to_send(r) and r["id"] not in done_ids for r in shard[len(work):])
        self.todo = [rec for rec in work if rec["id"] not in done_ids]
        summary.skipped = len(work) - len(self.todo)
        summary.stale = sum(rec["id"] in resume.stale for rec in self.todo)
        self.by_id = {rec["id"]: rec for rec in self.todo}
        # the failures file keeps other records' lines (a record that moved to another shard is retried
        # there) and this shard's failures that still stand: not done, and not tried again this run
        self.failures = {rid: f for rid, f in resume.failures.items() if rid not in self.by_id and rid not in done_ids}
        self._mine = {rec["id"] for rec in shard}
        # Empty originals of rewritten tasks are not sent either (nothing to stay faithful to).
        self._passing = [rec for rec in self.todo if not to_send(rec)]
        self._finished = set()
        self.out = JsonlAppender(out_path)
        self.bar = None  # a runner's progress bar, moved on by each record written
        self.check = make_check(length_fn, original_of=lambda request: answer(self.by_id[request.key]),
                                max_tokens=settings.target_length, temperature=settings.temperature)

    def request(self, rec):
        return make_request(rec, self.settings, self.length_fn)

    def to_send(self):
        """The records to send, in shard order, that are not finished yet."""
        return [rec for rec in self.todo if to_send(rec) and rec["id"] not in self._finished]

    def pending(self, rid):
        """Record `rid` while it is still to send and finish in this run, else None."""
        rec = self.by_id.get(rid)
        return rec if rec is not None and rid not in self._finished and to_send(rec) else None

    def write_passing(self):
        for rec in self._passing:
            reason = passing_reason(rec)
            self.out.write(shard_row(rec, kept_reason=reason))
            self.summary.empty_original += reason == EMPTY_ORIGINAL
            self.summary.no_category += reason == NO_CATEGORY
            self.summary.passed_through += 1
            if self.bar is not None:
                self.bar.update()
        self._passing.clear()

    def finish(self, rid, result=None, error=None):
        """Record `rid` is done: its shard line from make_check's `result`, or its failure for `error`."""
        rec = self.by_id[rid]
        if error is not None:
            self.failures[rid] = failure_of(rec, error)
            self.summary.failed += 1
        else:
            self.out.write(row_for_result(rec, result))
            if result[0] == KEEP:
                self.summary.passed_through += 1
                self.summary.does_not_fit[task_of(rec)] += 1
            else:
                self.summary.rewritten += 1
        self._finished.add(rid)
        if self.bar is not None:
            self.bar.update()

    def summarize(self):
        """Write the pass-through records left and the failures file; the Summary."""
        self.write_passing()
        self.out.touch()  # merge finds a shard by its file, even one whose records all failed
        write_failures(self.fail_path, self.failures)
        self.summary.failures = {rid: f.reason for rid, f in self.failures.items() if rid in self._mine}
        self.summary.failed = len(self.summary.failures)
        self.summary.seconds = time.monotonic() - self.start
        return self.summary

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.out.close()


async def _rewrite_shard(shard, backend, out_path, fail_path, settings, length_fn, attempt_limit, progress,
                         records, other_shards, input_path):
    with ShardWork(shard, out_path, fail_path, settings, length_fn, attempt_limit, records, other_shards,
                   input_path, throttles=backend.throttles) as work:
        summary = work.summary
        work.bar = bar = progress_bar(summary.attempted or summary.total, "rec", enabled=progress,
                                      initial=summary.skipped)
        stats = Stats()
        to_rewrite, rewrites_from = len(work.to_send()), time.monotonic()

        def pace():
            """Progress-bar figures: HTTP ones for a server, time per rewrite and ETA for a local model."""
            if backend.throttles:
                return {"in_flight": stats.in_flight, "conc": stats.concurrency, "http429": stats.throttled}
            finished = stats.succeeded + stats.failed
            per = (time.monotonic() - rewrites_from) / max(1, finished)
            return {"s_per_rewrite": f"{per:.1f}", "eta": duration(per * (to_rewrite - finished))}

        def on_done(outcome):
            work.write_passing()
            work.finish(outcome.request.key, outcome.result, outcome.error)
            bar.set_postfix(**pace(), failed=summary.failed, refresh=False)

        requests = (work.request(rec) for rec in work.to_send())
        try:
            await run_step(backend, requests, on_done, concurrency=settings.concurrency,
                           policy=RetryPolicy(max_retries=settings.max_retries), rpm=settings.rpm,
                           tpm=settings.tpm, check=work.check, stats=stats)
        finally:
            bar.close()
            await backend.aclose()
        summary.requests, summary.throttled, summary.stopped = backend.calls, stats.throttled, stats.stopped
        return work.summarize()


# ---------------------------------------------------------------- dry run

def estimate(shard, settings, length_fn):
    """What a run would do, without any request: counts per category and token estimates.

    Output is estimated per candidate as 1.3 x the original response plus 60 tokens of
    reasoning, capped at --target_length; input is the full prompt, counted once per record.
    """
    per_category = Counter(task_of(rec) if category(rec) else f"{DEFAULT_TASK} (no category)" for rec in shard)
    rewrite = [rec for rec in shard if to_send(rec)]
    tokens_in = sum(prompt_tokens(messages_for(rec, settings.use_evidence), length_fn) for rec in rewrite)
    tokens_out = sum(settings.top_k * min(settings.target_length, int(1.3 * length_fn(answer(rec))) + 60)
                     for rec in rewrite)
    unchanged = {task for task in per_category if task.split(" ")[0] not in _REWRITE_SET}
    return {"records": len(shard), "rewrite": len(rewrite), "pass_through": len(shard) - len(rewrite),
            "empty_original": sum(is_rewritten(rec) and is_empty_original(rec) for rec in shard),
            "per_category": dict(per_category.most_common()), "unchanged_tasks": unchanged,
            "tokens_in": tokens_in, "tokens_out": tokens_out}
