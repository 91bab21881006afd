"""Batch mode: a shard's requests sent to a Batch API as files, a sibling of the online runner.

    run = BatchRun(backend, work, BatchSettings(poll_interval=60), state_path)
    asyncio.run(run.run())        # or run.cancel()

The online runner (llm/runner.py) drives one request at a time: pacing, retries, a circuit
breaker. A batch is a file: every request a line, sent at once, answered within 24 hours at
half the price (OpenAI's Batch API, Azure OpenAI's global batch), or run offline on a GPU by
`vllm run-batch`, which reads and writes the same lines. So batch mode is its own family beside
the runner, and shares with it only what a request and a reply are:

- a request line is `{"custom_id", "method": "POST", "url", "body"}`, where `body` is exactly what
  the online path would send (OpenAIBackend.request_body, in the shape learned for the model,
  n = --top_k) and `custom_id` is the record id as JSON. A model that refuses n > 1 gets k lines
  of n = 1 per record, custom_id "<id-json>#<part>";
- a reply is read by the online path's reader: its choices become Completions, which go through
  the same check (rewrite.make_check: think blocks, cuts, refusals, the KEEP ORIGINAL valve, the
  longest valid candidate) and the same shard-line writer (the `work` object, rewrite.ShardWork).

A run (BatchRun.run): lines of the records still to do go into files of at most
`max_requests` lines and MAX_BYTES each (OpenAI's limits: 50,000 requests, 200 MB); each is
uploaded (purpose=batch) and made a batch (24h window). Batch ids and input file ids go into a
state file beside the shard (BatchState, written atomically) *before* any waiting: after Ctrl-C,
kill -9 or a reboot the same command picks the same batches up and never pays twice (a batch
whose creation was cut short is found again by its input file). The batches are polled every
`poll_interval` seconds; a finished one's output and error files are downloaded and read:

- a usable reply finishes its record (a shard line);
- a reply that fails the check, an error-file line with a transient error (429, 5xx,
  batch_expired, batch_cancelled) and a request missing from an expired or cancelled batch go
  into a follow-up batch, up to `max_retries` times; then the record fails with the reason;
- a 400 naming a parameter or value the model refuses is learned as online (llm/shape.py via
  the backend) and the record is re-sent in the new shape; lessons are kept in the state file,
  so a later process sends the learned shape too;
- other errors (a prompt too long for the context, a content filter) fail the record at once;
- a batch that fails validation (a bad line, a token limit, a quota) raises BatchRejected:
  exit 2 with the server's code and message.

`read_output(path)` finishes a shard from an output file made elsewhere (`vllm run-batch`, or
one downloaded by hand), and `write_requests(path)` writes the request file and stops.
"""

import asyncio
import hashlib
import json
import os
import time
from dataclasses import dataclass, field

import httpx
import openai

from realign.bars import progress_bar
from realign.endpoint import where
from realign.errors import DataError, UsageError
from realign.files import JSON_ERRORS, atomic_open, dumps_line, new_temp, os_error
from realign.limits import RetryPolicy
from realign.llm.base import BackendError, Unusable
from realign.llm.openai_http import sdk_error, status_error
from realign.redact import scrub

MAX_REQUESTS = 50_000            # lines per batch (OpenAI; Azure allows 100,000)
MAX_BYTES = 200 * 1024 * 1024    # bytes per input file (OpenAI and Azure)
CHAT_URL = "/v1/chat/completions"
AZURE_CHAT_URL = "/chat/completions"   # Azure OpenAI's batch lines and endpoint: no /v1
FINISHED = ("completed", "failed", "expired", "cancelled")
API_TRIES = 8                    # retries of a Files/Batches call failing transiently (about 3 min)
FILE_TIMEOUT = 900.0             # seconds for an upload or download of up to 200 MB
STATE_VERSION = 1


class BatchRejected(UsageError):
    """A batch the server refused as a whole (failed validation): exit 2, its code and message."""


class BatchUnreachable(Exception):
    """The Batch API stopped answering while batches run on the server: exit 1, rerun to resume."""


@dataclass
class BatchSettings:
    poll_interval: float = 60.0      # seconds between two looks at the batches
    max_retries: int = 5             # follow-up batches a record may be sent in after its first
    max_requests: int = MAX_REQUESTS
    max_bytes: int = MAX_BYTES
    url: str = CHAT_URL
    progress: bool = True
    api_retries: int = API_TRIES     # a failed Files/Batches call is tried again this often


# ---------------------------------------------------------------- request lines

def custom_id(rid, part=None):
    """The custom_id of record `rid` (its id as JSON), of its `part`-th line when split."""
    text = json.dumps(rid, ensure_ascii=False)
    return text if part is None else f"{text}#{part}"


def parse_custom_id(cid):
    """(record id, part or None) of a custom_id made by custom_id(); ValueError otherwise. The two
    forms cannot be confused: no JSON value ends in '#<digits>'."""
    if not isinstance(cid, str):
        raise ValueError("custom_id is not a string")
    try:
        rid, part = json.loads(cid), None
    except ValueError:
        head, sep, tail = cid.rpartition("#")
        if not sep or not tail.isdigit():
            raise ValueError(f"custom_id {cid[:60]!r} was not made by realign") from None
        rid, part = json.loads(head), int(tail)
    if isinstance(rid, bool) or not isinstance(rid, (int, str)):
        raise ValueError(f"custom_id {cid[:60]!r} does not hold a record id")
    return rid, part


def shape_of(body):
    """A request body's fields but its messages (or prompt): what a refusal can be about."""
    return {k: v for k, v in body.items() if k not in ("messages", "prompt")}


def _digest(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def fingerprint(request, lines):
    """(digest of what the record asks, digest of the bodies sent): an answer is for the record
    only while the first is the same; a refusal was learned when the second changed."""
    return _digest(request.messages), _digest([line["body"] for line in lines])


def record_lines(backend, request, url=CHAT_URL):
    """The request lines of one Request: one asking n choices, or n of one choice each when the
    backend sends one choice per call (a model that refuses n > 1)."""
    n, rid = request.sampling.n, request.key
    if backend.calls_per_attempt(request) == 1:
        return [{"custom_id": custom_id(rid), "method": "POST", "url": url, "body": backend.request_body(request, n)}]
    body = backend.request_body(request, 1)
    return [{"custom_id": custom_id(rid, k), "method": "POST", "url": url, "body": body} for k in range(n)]


def write_requests(path, backend, requests, url=CHAT_URL):
    """Write every request's lines to `path` (atomically); returns (requests, lines, bytes)."""
    count = lines = size = 0
    with atomic_open(path) as f:
        for request in requests:
            for line in record_lines(backend, request, url):
                text = dumps_line(line) + "\n"
                f.write(text)
                lines += 1
                size += len(text.encode("utf-8"))
            count += 1
    return count, lines, size


# ---------------------------------------------------------------- reading replies

@dataclass
class Reply:
    """One line of an output or error file, read: `completions` on success, else `error` (a
    BackendError from the server's status and body, or a batch-level error such as batch_expired)."""
    rid: object
    part: int | None
    completions: list | None = None
    error: BackendError | None = None
    usage: dict = field(default_factory=dict)


def _status_error(status, body, url):
    """The BackendError the online path raises for this status and error body (openai_http.status_error)."""
    response = httpx.Response(status, json=body if isinstance(body, (dict, list)) else {"error": body},
                              request=httpx.Request("POST", url))
    inner = body.get("error", body) if isinstance(body, dict) else body
    message = inner.get("message") if isinstance(inner, dict) else str(body)
    return status_error(openai.APIStatusError(str(message), response=response, body=inner))


def read_reply_line(obj, backend):
    """A Reply from one parsed output/error line, its body read by `backend` as an online reply
    is; ValueError when it is not a batch output line."""
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    rid, part = parse_custom_id(obj.get("custom_id"))
    response, error = obj.get("response"), obj.get("error")
    url = f"{where(backend.config.base_url or 'http://batch/v1')}/chat/completions"
    if isinstance(response, dict) and response.get("status_code") == 200:
        body = response.get("body")
        try:
            # the online reader itself: content parts, a 200 carrying an error, choices with errors
            completions = backend.completions(httpx.Response(200, json=body, request=httpx.Request("POST", url)), True)
        except BackendError as e:
            return Reply(rid, part, error=e)
        return Reply(rid, part, completions=completions,
                     usage=(body.get("usage") if isinstance(body, dict) else None) or {})
    if isinstance(response, dict) and isinstance(response.get("status_code"), int):
        # OpenAI puts the error in the body; vllm run-batch leaves the body empty and puts it in
        # `error` (an error object, or a plain message)
        body = response.get("body") or error
        if isinstance(body, str):
            body = {"error": {"message": body}}
        return Reply(rid, part, error=_status_error(response["status_code"], body, url))
    if isinstance(error, dict):
        code, message = error.get("code") or "error", " ".join(str(error.get("message") or "").split())[:200]
        return Reply(rid, part, error=BackendError(f"{code}: {message}", retryable=True))
    raise ValueError("neither a response nor an error")


def iter_output_file(path, backend):
    """Yield the Replies of an output or error file; DataError naming the line that is not one."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise os_error(e, path, "read") from None
    with f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield read_reply_line(json.loads(line), backend)
            except (JSON_ERRORS + (ValueError,)) as e:
                raise DataError(f"{path}: line {n}: not a batch output line ({scrub(str(e))[:120]}); expected "
                                '{"custom_id", "response": {"status_code", "body"}} as the Batch API and '
                                "vllm run-batch write them") from None


# ---------------------------------------------------------------- the state file

class BatchState:
    """What a shard's batch run has in flight, beside the shard (`<shard>.batches.json`), so any
    later process picks it up. Plain JSON, rewritten atomically at each change:

        endpoint, model     where the batches run (another --base_url cannot see them)
        batches             [{"id" (None until created), "input_file_id", "ids": [record ids],
                              "parts" (lines per record), "shape" (the body's fields but the
                              messages), "status", "collected", "counts"}]
        sent                {custom_id: [times sent, input digest, body digest]}
        failed              {custom_id: reason}: records done trying (written to the failures file at the end)
        lessons             [[status, message, param, shape]]: refusals the request shape was learned
                            from, with the fields of the request they refused (replayed on load)
        waited_s, tokens    time spent waiting and tokens used, over every process of the run
    """

    def __init__(self, path, endpoint=None, model=None):
        self.path = path
        self.endpoint, self.model = endpoint, model
        self.batches, self.sent, self.failed, self.lessons = [], {}, {}, []
        self.waited_s = 0.0
        self.tokens = {"prompt": 0, "completion": 0}

    @classmethod
    def load(cls, path, endpoint=None, model=None):
        """The state at `path`, or a fresh one when there is none (or no path: kept in memory only).
        DataError when the file is not one we wrote, or belongs to batches on another endpoint or model."""
        state = cls(path, endpoint, model)
        if path is None or not os.path.lexists(path):
            return state
        if os.path.islink(path) or not os.path.isfile(path):
            raise DataError(f"{path}: not a regular file; move it away")
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            assert data.get("version") == STATE_VERSION
            state.batches, state.sent, state.failed = data["batches"], data["sent"], data["failed"]
            state.lessons, state.waited_s, state.tokens = data["lessons"], float(data["waited_s"]), data["tokens"]
            saved_endpoint, saved_model = data.get("endpoint"), data.get("model")
            for b in state.batches:
                assert isinstance(b["ids"], list) and isinstance(b["input_file_id"], str)
                assert b["id"] is None or isinstance(b["id"], str)
                assert isinstance(b["parts"], int) and b["parts"] >= 1 and isinstance(b["collected"], bool)
                assert b["counts"] is None or (isinstance(b["counts"], list) and len(b["counts"]) == 3
                                               and all(isinstance(c, int) for c in b["counts"]))
            assert all(isinstance(v, list) and len(v) == 3 for v in state.sent.values())
        except OSError as e:
            raise os_error(e, path, "read") from None
        except (ValueError, KeyError, TypeError, AssertionError, AttributeError):
            raise DataError(f"{path}: not a batch state file of this version of reformat.py (damaged?); "
                            "move it away (batches it names keep running on the server)") from None
        pending = [b["id"] or b["input_file_id"] for b in state.batches if not b["collected"]]
        if pending and endpoint is not None and (saved_endpoint, saved_model) != (endpoint, model):
            raise UsageError(f"{path}: batch {pending[0]} runs on {saved_endpoint} with --model {saved_model}; "
                             "rerun with that --base_url and --model to pick it up (or --cancel_batch with them)")
        return state

    def save(self):
        if self.path is None:
            return
        data = {"version": STATE_VERSION, "endpoint": self.endpoint, "model": self.model,
                "batches": self.batches, "sent": self.sent, "failed": self.failed, "lessons": self.lessons,
                "waited_s": round(self.waited_s, 3), "tokens": self.tokens}
        with atomic_open(self.path) as f:
            f.write(dumps_line(data) + "\n")

    def remove(self):
        if self.path is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def active(self):
        return [b for b in self.batches if not b["collected"]]

    def in_flight(self):
        return {rid for b in self.active() for rid in b["ids"]}


def state_path(shard_file):
    return f"{shard_file}.batches.json"


def running_batches(path):
    """Ids (input file ids for batches whose creation a crash cut short) of the batches a state
    file says are still running; [] when there is no state file."""
    if not os.path.lexists(path):
        return []
    state = BatchState.load(path)
    state.path = None
    return [b["id"] or b["input_file_id"] for b in state.active()]


# ---------------------------------------------------------------- the run

class BatchRun:
    """One shard's batch run. `backend`: an OpenAIBackend (its client, request_body, learned shape);
    `work`: the shard's ShardWork (what is left to do, how a finished record is written)."""

    def __init__(self, backend, work, settings, state_path):
        self.backend, self.work, self.settings = backend, work, settings
        self.client = backend.client
        self.state = BatchState.load(state_path, where(backend.config.base_url or "https://api.openai.com/v1"),
                                     backend.config.model)
        first = next(iter(work.to_send()), None)
        for status, message, param, shape in self.state.lessons if first else ():  # what earlier processes learned
            self._learn(BackendError(message, status=status, param=param), first, shape, replay=True)
        self.bar = None

    # ------------------------------------------------------------ the API, transient failures retried

    async def _api(self, what, call):
        """`call()`'s result; transient failures (429, 5xx, timeouts, dropped connections) retried
        with backoff. A refusal (401, 404, a bad request) is a UsageError, and so is nothing
        listening before any batch runs (a misconfigured --base_url); once batches run on the
        server, a lost connection is retried too and then BatchUnreachable (exit 1: rerun)."""
        tries = self.settings.api_retries
        policy = RetryPolicy(max_retries=tries)
        endpoint = where(self.backend.config.base_url or "https://api.openai.com/v1")
        for attempt in range(tries + 1):
            try:
                return await call()
            except openai.APIError as e:
                err = sdk_error(e, self.backend.config)
            if err.fatal and err.status is None and any(b["id"] for b in self.state.active()):
                err = BackendError(err.reason, retryable=True)  # the connection, not the setup: batches run
            if not err.retryable:
                raise UsageError(f"the Batch API refused to {what}: {endpoint}: {err.reason}"
                                 + (f" ({err.hint})" if err.hint else ""))
            if attempt == tries:
                raise BatchUnreachable(f"could not {what} ({endpoint}: {err.reason}; {tries + 1} tries)")
            await asyncio.sleep(policy.delay(attempt, err.retry_after))

    # ------------------------------------------------------------ sending

    def _fingerprint(self, rec):
        request = self.work.request(rec)
        return fingerprint(request, record_lines(self.backend, request))

    def _request_files(self, records):
        """Write the lines of `records` into request files of at most max_requests lines and
        max_bytes (a record's lines never split), one at a time: yields each as a dict (its temp
        `path`, record `ids`, `parts` per record, the body's `shape`, each record's `fingerprints`)
        once it is full, and writes the next only when asked; one record's lines in memory at a time."""
        chunk, out, where = None, None, f"{self.state.path or self.work.out_path}.input.jsonl"
        for rec in records:
            request = self.work.request(rec)
            lines = record_lines(self.backend, request, self.settings.url)
            text = "".join(dumps_line(line) + "\n" for line in lines)
            size = len(text.encode("utf-8"))
            if chunk is not None and (chunk["lines"] + len(lines) > self.settings.max_requests
                                      or chunk["bytes"] + size > self.settings.max_bytes):
                out.close()
                yield chunk
                chunk = None
            if chunk is None:
                fd, path = new_temp(where)
                out = os.fdopen(fd, "w", encoding="utf-8")
                chunk = {"path": path, "ids": [], "parts": len(lines), "shape": shape_of(lines[0]["body"]),
                         "fingerprints": [], "lines": 0, "bytes": 0}
            try:
                out.write(text)
            except OSError as e:
                out.close()
                os.unlink(path)
                raise os_error(e, where) from None
            chunk["ids"].append(rec["id"])
            chunk["fingerprints"].append(fingerprint(request, lines))
            chunk["lines"] += len(lines)
            chunk["bytes"] += size
        if chunk is not None:
            out.close()
            yield chunk

    async def _submit(self, records):
        for chunk in self._request_files(records):
            try:
                uploaded = await self._upload(chunk["path"])
            finally:
                os.unlink(chunk["path"])
            entry = {"id": None, "input_file_id": uploaded.id, "ids": chunk["ids"], "parts": chunk["parts"],
                     "shape": chunk["shape"], "status": "uploaded", "collected": False, "counts": None}
            for rid, (input_digest, body_digest) in zip(chunk["ids"], chunk["fingerprints"]):
                cid = custom_id(rid)
                self.state.sent[cid] = [self.state.sent.get(cid, [0])[0] + 1, input_digest, body_digest]
            self.state.batches.append(entry)
            self.state.save()  # before the batch exists: a crash now is found again by its input file
            await self._create(entry)

    async def _upload(self, path):
        with open(path, "rb") as f:
            return await self._api("upload the request file", lambda: self.client.files.create(
                    file=(os.path.basename(self.work.out_path) + ".requests.jsonl", f, "application/jsonl"),
                    purpose="batch", timeout=max(FILE_TIMEOUT, self.backend.config.request_timeout)))

    async def _create(self, entry):
        batch = await self._api("create the batch", lambda: self.client.batches.create(
            input_file_id=entry["input_file_id"], endpoint=self.settings.url, completion_window="24h",
            metadata={"realign_shard": os.path.basename(self.work.out_path)[:500]}))
        entry["id"], entry["status"] = batch.id, batch.status
        self.state.save()

    async def _adopt(self):
        """Give every batch whose creation a crash cut short its id: the batch made from its input
        file if the server has one, else a new one (never two for one file)."""
        orphans = {b["input_file_id"]: b for b in self.state.active() if b["id"] is None}
        if not orphans:
            return
        page = await self._api("list batches", lambda: self.client.batches.list(limit=100))
        for _ in range(20):  # the newest 2,000 batches: a crash minutes ago is among them
            for batch in page.data:
                entry = orphans.pop(batch.input_file_id, None)
                if entry is not None:
                    entry["id"], entry["status"] = batch.id, batch.status
            if not orphans or not page.has_next_page():
                break
            page = await self._api("list batches", page.get_next_page)
        self.state.save()
        for entry in orphans.values():
            await self._create(entry)

    def _unsent(self):
        """Records to send now: still to do, not in a running batch, not given up on."""
        busy = self.state.in_flight()
        return [rec for rec in self.work.to_send() if rec["id"] not in busy
                and custom_id(rec["id"]) not in self.state.failed]

    # ------------------------------------------------------------ waiting

    async def _wait(self):
        """Poll the running batches until at least one is finished; returns [(entry, Batch)]."""
        while True:
            done = []
            for entry in self.state.active():
                batch = await self._api(f"look at batch {entry['id']}",
                                        lambda entry=entry: self.client.batches.retrieve(entry["id"]))
                entry["status"] = batch.status
                rc = batch.request_counts
                entry["counts"] = [rc.completed, rc.failed, rc.total] if rc and rc.total else None
                if batch.status in FINISHED:
                    done.append((entry, batch))
            self._draw()
            if done:
                self.state.save()
                return done
            t0 = time.monotonic()
            await asyncio.sleep(self.settings.poll_interval)
            self.state.waited_s += time.monotonic() - t0
            self.state.save()

    def _draw(self):
        """The progress bar: request lines answered (or failed) of all the run's batches, by the
        server's counts."""
        done = sum(b["counts"][0] + b["counts"][1] for b in self.state.batches if b["counts"])
        total = sum(b["counts"][2] if b["counts"] else len(b["ids"]) * b["parts"] for b in self.state.batches)
        if self.bar is None:
            self.bar = progress_bar(total, "req", desc="batch", enabled=self.settings.progress)
        self.bar.total = max(total, 1)
        self.bar.n = done
        statuses = sorted({b["status"] for b in self.state.active()})
        self.bar.set_postfix(batches=len(self.state.active()), status="/".join(statuses), refresh=False)
        self.bar.refresh()

    # ------------------------------------------------------------ collecting

    async def _download(self, file_id, name):
        path = f"{self.state.path}.{name}.jsonl"

        async def fetch():
            timeout = max(FILE_TIMEOUT, self.backend.config.request_timeout)
            async with self.client.files.with_streaming_response.content(file_id, timeout=timeout) as resp:
                with atomic_open(path, "wb") as f:
                    async for chunk in resp.iter_bytes():
                        f.write(chunk)

        await self._api(f"download file {file_id}", fetch)
        return path

    async def _collect(self, entry, batch, follow_up=True):
        """Read a finished batch: finish, retry or fail each of its records. BatchRejected when the
        batch failed validation."""
        if batch.status == "failed":
            self.state.batches.remove(entry)
            for rid in entry["ids"]:  # nothing ran: those sends do not count
                self._resend(custom_id(rid))
            if self.state.batches:
                self.state.save()
            else:
                self.state.remove()  # nothing ran at all: leave nothing behind
            errors = (batch.errors.data if batch.errors and batch.errors.data else None) or []
            first = errors[0] if errors else None
            what = (f"{first.code}: {' '.join(str(first.message).split())[:300]}"
                    + (f" (request file line {first.line})" if first.line else "")) if first else "no reason given"
            more = f" (+{len(errors) - 1} more errors)" if len(errors) > 1 else ""
            raise BatchRejected(f"batch {batch.id} failed validation: {scrub(what)}{more}")
        paths = []
        try:
            for file_id, name in ((batch.output_file_id, "output"), (batch.error_file_id, "errors")):
                if file_id:
                    paths.append(await self._download(file_id, f"{entry['id']}.{name}"))
            missing = f"no reply: batch {batch.id} {batch.status} before answering it"
            self.settle(paths, entry["ids"], entry["parts"], missing, follow_up, entry.get("shape"))
        finally:
            for path in paths:
                os.unlink(path)
        entry["collected"], entry["status"] = True, batch.status
        self.state.save()

    def settle(self, paths, ids, parts, missing, follow_up=True, shape=None):
        """Finish the records `ids` from the replies in the files `paths` (output, then errors),
        each as soon as all its lines are read, so that only records whose lines are still
        scattered are held in memory; those without a reply are settled with `missing`. `parts`:
        lines per record (None: as the replies say). `shape`: the request fields they were sent
        with (shape_of), which a refusal is learned against."""
        left = {rid: {} for rid in ids}
        for path in paths:
            for reply in iter_output_file(path, self.backend):
                got = left.get(reply.rid)
                if got is None:
                    continue  # another record's (another shard's), or settled already
                got[reply.part] = reply
                wanted = self._wanted(reply.rid, got, parts)
                if wanted is not None and all(k in got for k in wanted):
                    self._settle_one(reply.rid, [got[k] for k in wanted], missing, follow_up, shape)
                    del left[reply.rid]
        for rid, got in left.items():
            wanted = self._wanted(rid, got, parts) or [None]
            self._settle_one(rid, [got.get(k) for k in wanted], missing, follow_up, shape)

    def _wanted(self, rid, got, parts):
        """The parts record `rid` has lines for: [None] (one line asking n), or 0..n-1; None when
        the record is no longer to do."""
        rec = self.work.pending(rid)
        if rec is None:
            return None
        if parts is None:  # a file made elsewhere: as its lines say
            parts = 1 if not got or None in got else self.work.request(rec).sampling.n
        return [None] if parts == 1 else list(range(parts))

    def _settle_one(self, rid, answers, missing, follow_up, shape):
        """Record `rid` from its answers (a Reply or None per line): a shard line, or left for a
        follow-up batch, or given up (state.failed) with the reason."""
        rec = self.work.pending(rid)
        if rec is None:
            return  # written already (an earlier pass over this batch), or no longer in the input
        cid = custom_id(rid)
        sent = self.state.sent.get(cid)
        for reply in answers:
            if reply is not None:
                self.state.tokens["prompt"] += int(reply.usage.get("prompt_tokens") or 0)
                self.state.tokens["completion"] += int(reply.usage.get("completion_tokens") or 0)
        if sent is not None and sent[1] != self._fingerprint(rec)[0]:
            self._resend(cid)  # the record changed while the batch ran: that answer is not for it
            return
        if all(a is not None and a.error is None for a in answers):
            completions = [c for a in answers for c in a.completions]
            try:
                self.work.finish(rid, self.work.check(completions, self.work.request(rec)))
            except Unusable as e:
                self._retry_or_fail(cid, scrub(str(e)), e.retries, follow_up)
            return
        err = next((a.error for a in answers if a is not None and a.error is not None), None)
        if err is None:
            self._retry_or_fail(cid, missing, None, follow_up)
            return
        if err.status in (400, 422) and not err.per_record and shape is not None:
            self._learn(err, rec, shape, replay=False)
            if sent is not None and self._fingerprint(rec)[1] != sent[2]:
                self._resend(cid)  # the request is sent in a new shape now: not an attempt of its own
                return
        if err.retryable:
            self._retry_or_fail(cid, err.reason, None, follow_up)
        else:
            self.state.failed[cid] = err.reason

    def _resend(self, cid):
        if cid in self.state.sent:
            self.state.sent[cid][0] -= 1

    def _retry_or_fail(self, cid, reason, retries, follow_up):
        """Leave the record for a follow-up batch while its sends allow, else give it up."""
        tries = self.state.sent.get(cid, [1])[0]
        attempt = tries - 1
        if follow_up and attempt < self.settings.max_retries and (retries is None or attempt < retries):
            return
        self.state.failed[cid] = reason + (f" (after {tries} attempts)" if tries > 1 else "")

    def _learn(self, err, rec, shape, replay):
        """Teach the backend the refusal `err` of `rec`'s request sent with `shape`, as online (the
        system role folded, the request shape changed: llm/shape.py); kept in the state when it
        changed anything, so that a later process sends the learned shape too."""
        request = self.work.request(rec)
        changed = self.backend.learn(err, request, {**shape, "messages": request.messages})
        if changed and not replay:
            self.state.lessons.append([err.status, err.reason, err.param, shape])
        return changed

    # ------------------------------------------------------------ the whole run

    async def run(self):
        """Send, wait, collect and follow up until every record is written or given up; then the
        failures file, and the state file is removed. Returns the BatchReport."""
        start = time.monotonic()
        try:
            await self._adopt()
            while True:
                fresh = self._unsent()
                if fresh:
                    await self._submit(fresh)
                if not self.state.active():
                    break
                for entry, batch in await self._wait():
                    await self._collect(entry, batch)
                    self.work.write_passing()  # the endpoint has answered: pass-through records now too
        finally:
            if self.bar is not None:
                self.bar.close()
        return self._finish(start)

    async def cancel(self):
        """Cancel every running batch of the shard, keep what they answered, and fail the rest
        ("batch cancelled"); the state file is removed."""
        start = time.monotonic()
        for entry in self.state.active():
            if entry["id"] is None:
                entry["collected"] = True  # never created: nothing runs, nothing to pay
                continue
            await self._api(f"cancel batch {entry['id']}", lambda entry=entry: self.client.batches.cancel(entry["id"]))
        self.state.save()
        try:
            while self.state.active():
                for entry, batch in await self._wait():
                    await self._collect(entry, batch, follow_up=False)
        finally:
            if self.bar is not None:
                self.bar.close()
        return self._finish(start)

    def read_output(self, path):
        """Finish the shard from an output file made elsewhere (`vllm run-batch -o`, or one
        downloaded by hand): no follow-up, a record without a usable reply there fails."""
        start = time.monotonic()
        ids = [rec["id"] for rec in self.work.to_send()]
        todo, lines, ours = set(ids), 0, 0
        for reply in iter_output_file(path, self.backend):  # a first look: is this file for this shard?
            lines += 1
            ours += reply.rid in todo
        if lines and ids and not ours:
            raise DataError(f"{path}: none of its {lines} replies is for a record this shard has still to do "
                            "(the output of another shard, or of another dataset?)")
        self.settle([path], ids, None, f"no reply in {path}", follow_up=False)
        return self._finish(start, read_from=(path, lines))

    def _finish(self, start, read_from=None):
        self.work.write_passing()
        for cid, reason in self.state.failed.items():
            rid, _ = parse_custom_id(cid)
            if self.work.pending(rid) is not None:
                self.work.finish(rid, error=reason)
        report = BatchReport(batches=[(b["id"], b["status"]) for b in self.state.batches if b["id"]],
                             lines=sum(len(b["ids"]) * b["parts"] for b in self.state.batches),
                             tokens=dict(self.state.tokens), waited_s=self.state.waited_s,
                             seconds=time.monotonic() - start, read_from=read_from)
        self.work.summary.batch = report.pace()
        self.work.summarize()
        self.state.remove()
        return report

    def interrupted_hint(self, command="the same command"):
        """What Ctrl-C leaves: the batches keep running; how to pick them up or cancel them."""
        running = [b["id"] for b in self.state.active() if b["id"]]
        if not running:
            return None
        return (f"batch {', '.join(running)} keeps running on the server (state in {self.state.path}); "
                f"rerun {command} to pick it up, or add --cancel_batch to cancel it")


@dataclass
class BatchReport:
    batches: list            # [(batch id, status)], every batch of the run
    lines: int               # request lines sent in all of them
    tokens: dict             # {"prompt", "completion"} from the replies' usage
    waited_s: float          # time spent waiting for the server, over every process of the run
    seconds: float = 0.0     # this process
    read_from: tuple | None = None  # (path, lines) for --read_batch_output

    def pace(self):
        """The summary line's figures: what was sent and how, instead of online requests and 429s."""
        if self.read_from:
            return f"{self.read_from[1]} replies read from a file, 0 online calls"
        n = len(self.batches)
        return f"{self.lines} request lines in {n} batch{'es' if n != 1 else ''}, 0 online calls"

    def line(self):
        if self.read_from:
            return (f"batch output: {self.read_from[1]} replies read from {self.read_from[0]}; tokens "
                    f"{self.tokens['prompt']:,} in, {self.tokens['completion']:,} out")
        shown = ", ".join(f"{bid} ({status})" for bid, status in self.batches[:6])
        more = f" (+{len(self.batches) - 6} more)" if len(self.batches) > 6 else ""
        return (f"batch: {shown or 'none sent'}{more}; tokens {self.tokens['prompt']:,} in, "
                f"{self.tokens['completion']:,} out; {self.waited_s:.0f} s waiting for the server")
