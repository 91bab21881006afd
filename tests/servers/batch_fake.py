"""A fake of OpenAI's Files and Batches endpoints (and its online chat/completions), on 127.0.0.1.

    POST /v1/files                  multipart upload (purpose=batch) -> a File object
    GET  /v1/files/{id}             the File object;  GET /v1/files/{id}/content: its bytes
    POST /v1/batches                {input_file_id, endpoint, completion_window, metadata} -> a Batch
    GET  /v1/batches/{id}           the Batch as it stands now;  GET /v1/batches: the list, newest first
    POST /v1/batches/{id}/cancel    cancelling, then cancelled (partial output kept)
    POST /v1/chat/completions       the online endpoint, answered by OpenAIFake (counted in `online_calls`)

Each request line of a batch is answered by OpenAIFake.respond, the same code that answers online
calls, so every knob and planted misbehaviour of openai_fake.py ([[think]], [[truncate]], refuse_n,
api_key, faithful ...) acts in batch mode as it does online. A reply other than 200 goes to the
batch's error file with its status and body, as OpenAI writes it.

A batch moves with the clock: `validating` for steps[0] seconds, `in_progress` for steps[1]
(request_counts.completed rising), `finalizing` for steps[2], then its outcome. Outcomes are given
per batch, in the order batches are created (`outcomes`, then "completed" for the rest):

    "completed"  every line answered (output file; error file for the lines that got an error)
    "failed"     validation fails: errors.data = [{code, message, line}] (`validation_error`, else the
                 first bad line found: not JSON, a duplicate custom_id, another url, no model ...)
    "expired"    the completion window ran out with `answered_share` of the lines answered; the rest
                 are in the error file with code batch_expired (or missing: `expired_in_error_file`)
    "hold"       stays in_progress until cancelled (a batch that takes a day)

`error_share` of the lines of the first `error_batches` batches (chosen by a hash of custom_id)
get `line_error` (status, message, type[, param]) in the error file instead of an answer.
Requests and lines past `max_batch_requests` fail validation as OpenAI's 50,000 limit does.
`azure=True` serves Azure OpenAI's shape instead: /openai/files and /openai/batches with an
api-version, the key in the `api-key` header, lines for `/chat/completions` whose model is a
deployment (OpenAIFake's `deployment`).

`python -m tests.servers.batch_fake --steps 1 2 1` serves until stdin closes, printing its base URL
(for bench/batch_throughput.py, which runs it in its own process).
"""

import hashlib
import itertools
import json
import threading
import time
from email import policy
from email.parser import BytesParser
from urllib.parse import parse_qs, urlsplit

from tests.servers.openai_fake import OpenAIFake

SERVER_ERROR = (500, "The server had an error while processing your request. Sorry about that!", "server_error")
EXPIRED = ("batch_expired", "This request could not be executed before the completion window expired.")
CANCELLED = ("batch_cancelled", "This request was not executed because the batch was cancelled.")


def _share_pick(custom_id, share):
    digest = hashlib.sha256(custom_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share


class BatchFake(OpenAIFake):
    def __init__(self, steps=(0.2, 0.5, 0.2), outcomes=(), answered_share=0.5, expired_in_error_file=True,
                 error_share=0.0, error_batches=1, line_error=SERVER_ERROR, validation_error=None,
                 max_batch_requests=50_000, **kw):
        super().__init__(**kw)
        # latency is the online endpoint's: a batch's lines are answered at its timeline's end
        self.online_latency, self.latency = self.latency, 0.0
        self.steps = steps
        self.outcomes = list(outcomes)
        self.answered_share = answered_share
        self.expired_in_error_file = expired_in_error_file
        self.error_share, self.error_batches, self.line_error = error_share, error_batches, line_error
        self.validation_error = validation_error
        self.max_batch_requests = max_batch_requests
        self.files = {}        # id -> {"meta": File object, "data": bytes}
        self.batches = {}      # id -> {"batch": Batch object, "t0", "outcome", "lines", "cancelled_at"}
        self.online_calls = 0
        self.lines_answered = 0  # batch lines run through the model (what a provider bills)
        self._ids = itertools.count(1)
        self._state = threading.Lock()  # files and batches (OpenAIFake's own lock guards its counters)

    # ------------------------------------------------------------ helpers

    def _new_id(self, prefix):
        return f"{prefix}-fake{next(self._ids):05d}"

    def _not_found(self, what):
        return self._error(404, f"No such {what}")

    def _add_file(self, data, filename, purpose):
        fid = self._new_id("file")
        meta = {"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                "filename": filename, "purpose": purpose, "status": "processed"}
        self.files[fid] = {"meta": meta, "data": data}
        return meta

    # ------------------------------------------------------------ routes

    def respond(self, method, path, headers, body):
        route = urlsplit(path).path.rstrip("/")
        if route == "/stats" and method == "GET":
            with self.lock:
                return self.json_body({"online_calls": self.online_calls, "batches": len(self.batches),
                                       "lines_answered": self.lines_answered, "http_requests": self.request_count})
        if route.endswith("/chat/completions") or route.endswith("/completions"):
            with self.lock:
                self.online_calls += 1
            if self.online_latency:
                time.sleep(self.online_latency)
            return super().respond(method, path, headers, body)
        low = {k.lower(): v for k, v in headers.items()}
        sent_key = low.get("api-key") if self.azure else (low.get("authorization") or "").removeprefix("Bearer ")
        if self.api_key is not None and sent_key != self.api_key:
            return self._error(401, "Incorrect API key provided.")
        if self.azure and not (route.startswith("/openai/") and "api-version=" in path):
            return self._error(404, "Resource not found")
        parts = route.removeprefix("/openai" if self.azure else "/v1").strip("/").split("/")
        with self._state:
            if parts == ["files"] and method == "POST":
                return self._upload(headers, body)
            if parts[0] == "files" and len(parts) in (2, 3) and method == "GET":
                f = self.files.get(parts[1])
                if f is None:
                    return self._not_found("file")
                if len(parts) == 3 and parts[2] == "content":
                    return 200, {"Content-Type": "application/octet-stream"}, f["data"]
                return self.json_body(f["meta"])
            if parts == ["batches"] and method == "POST":
                return self._create(json.loads(body or b"{}"), headers)
            if parts == ["batches"] and method == "GET":
                return self._list(parse_qs(urlsplit(path).query))
            if parts[0] == "batches" and len(parts) >= 2:
                entry = self.batches.get(parts[1])
                if entry is None:
                    return self._not_found("batch")
                if len(parts) == 3 and parts[2] == "cancel" and method == "POST":
                    return self.json_body(self._cancel(entry))
                if len(parts) == 2 and method == "GET":
                    return self.json_body(self._advance(entry))
        return self._error(404, f"no route {method} {path}")

    def _upload(self, headers, body):
        ctype = headers.get("Content-Type") or headers.get("content-type") or ""
        if not ctype.startswith("multipart/form-data"):
            return self._error(400, "expected a multipart/form-data upload")
        msg = BytesParser(policy=policy.HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + body)
        fields, data, filename = {}, None, None
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name == "file":
                data, filename = part.get_payload(decode=True), part.get_filename()
            else:
                fields[name] = part.get_payload(decode=True).decode()
        if data is None or fields.get("purpose") != "batch":
            return self._error(400, "a file and purpose=batch are required")
        return self.json_body(self._add_file(data, filename or "upload.jsonl", "batch"))

    def _create(self, req, headers):
        f = self.files.get(req.get("input_file_id"))
        if f is None:
            return self._error(400, f"Invalid 'input_file_id': '{req.get('input_file_id')}'.")
        if req.get("completion_window") != "24h":
            return self._error(400, "Invalid 'completion_window': only '24h' is supported.")
        bid = self._new_id("batch")
        now = int(time.time())
        outcome = self.outcomes[len(self.batches)] if len(self.batches) < len(self.outcomes) else "completed"
        lines = [line for line in f["data"].decode("utf-8", "replace").splitlines() if line.strip()]
        batch = {"id": bid, "object": "batch", "endpoint": req.get("endpoint"), "errors": None,
                 "input_file_id": f["meta"]["id"], "completion_window": "24h", "status": "validating",
                 "output_file_id": None, "error_file_id": None, "created_at": now, "in_progress_at": None,
                 "expires_at": now + 86400, "finalizing_at": None, "completed_at": None, "failed_at": None,
                 "expired_at": None, "cancelling_at": None, "cancelled_at": None,
                 "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": req.get("metadata")}
        self.batches[bid] = {"batch": batch, "t0": time.monotonic(), "outcome": outcome, "lines": lines,
                             "index": len(self.batches), "cancel_t": None,
                             "auth": {k: v for k, v in headers.items() if k.lower() in ("authorization", "api-key")}}
        return self.json_body(batch)

    def _list(self, query):
        limit = int(query.get("limit", ["20"])[0])
        after = query.get("after", [None])[0]
        ordered = [e["batch"] for e in reversed(self.batches.values())]
        if after:
            ids = [b["id"] for b in ordered]
            ordered = ordered[ids.index(after) + 1:] if after in ids else []
        page = [self._advance(self.batches[b["id"]]) for b in ordered[:limit]]
        return self.json_body({"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                               "last_id": page[-1]["id"] if page else None, "has_more": len(ordered) > limit})

    def _cancel(self, entry):
        batch = self._advance(entry)
        if batch["status"] in ("validating", "in_progress", "finalizing"):
            entry["cancel_t"] = time.monotonic()
            batch["status"], batch["cancelling_at"] = "cancelling", int(time.time())
        return batch

    # ------------------------------------------------------------ the clock

    def _advance(self, entry):
        """The batch as it stands now, moved along its timeline (and finished, once, at its end)."""
        batch = entry["batch"]
        if batch["status"] in ("completed", "failed", "expired", "cancelled"):
            return batch
        now = time.monotonic()
        validating, running, finalizing = self.steps
        if entry["cancel_t"] is not None:
            if now - entry["cancel_t"] >= finalizing:
                share = min(1.0, max(0.0, (entry["cancel_t"] - entry["t0"] - validating) / running))
                self._finish(entry, "cancelled", answered=share)
            return batch
        age = now - entry["t0"]
        if age < validating:
            return batch
        if batch["in_progress_at"] is None:
            problem = self._validate(entry)
            if problem:
                batch.update(status="failed", failed_at=int(time.time()),
                             errors={"object": "list", "data": [problem]})
                return batch
            batch.update(status="in_progress", in_progress_at=int(time.time()))
            batch["request_counts"]["total"] = len(entry["lines"])
        total = len(entry["lines"])
        if entry["outcome"] == "hold" or age < validating + running:
            share = min(1.0, (age - validating) / running) if entry["outcome"] != "hold" else 0.3
            batch["request_counts"]["completed"] = int(total * share * (1 - self._error_rate(entry)))
            batch["request_counts"]["failed"] = int(total * share * self._error_rate(entry))
            return batch
        if entry["outcome"] == "expired":
            self._finish(entry, "expired", answered=self.answered_share)
            return batch
        if age < validating + running + finalizing:
            batch.update(status="finalizing", finalizing_at=batch["finalizing_at"] or int(time.time()))
            return batch
        self._finish(entry, "completed", answered=1.0)
        return batch

    def _error_rate(self, entry):
        return self.error_share if entry["index"] < self.error_batches else 0.0

    def _validate(self, entry):
        """The first problem OpenAI's validation would report, as an errors.data item, or None."""
        if entry["index"] == 0 and self.validation_error or entry["outcome"] == "failed":
            code, message = self.validation_error or ("invalid_request", "The batch failed validation.")
            return {"code": code, "message": message, "param": None, "line": None}
        if len(entry["lines"]) > self.max_batch_requests:
            return {"code": "too_many_requests", "message": f"The batch input file has {len(entry['lines'])} "
                    f"requests; at most {self.max_batch_requests} are allowed.", "param": None, "line": None}
        seen = set()
        for n, line in enumerate(entry["lines"], 1):
            try:
                obj = json.loads(line)
            except ValueError:
                return {"code": "invalid_json_line", "message": "This line is not parseable as valid JSON.",
                        "param": None, "line": n}
            cid = obj.get("custom_id") if isinstance(obj, dict) else None
            if not isinstance(cid, str):
                return {"code": "missing_required_parameter", "message": "custom_id is required.",
                        "param": "custom_id", "line": n}
            if cid in seen:
                return {"code": "duplicate_custom_id", "message": "The custom_id for this request is a "
                        "duplicate of another request. The custom_id parameter must be unique for each request "
                        "in a batch.", "param": "custom_id", "line": n}
            seen.add(cid)
            if obj.get("method") != "POST" or obj.get("url") != entry["batch"]["endpoint"]:
                return {"code": "mismatched_endpoint", "message": "The url of this request does not match the "
                        "batch's endpoint.", "param": "url", "line": n}
            if not isinstance(obj.get("body"), dict) or not obj["body"].get("model"):
                return {"code": "missing_required_parameter", "message": "body.model is required.",
                        "param": "body.model", "line": n}
        return None

    def _finish(self, entry, status, answered):
        """Run the answered share of the lines through the model; write the output and error files."""
        batch = entry["batch"]
        lines = [json.loads(line) for line in entry["lines"]]
        cut = round(len(lines) * answered)
        out, err = [], []
        for n, line in enumerate(lines):
            cid = line["custom_id"]
            if n >= cut:
                if status == "expired" and self.expired_in_error_file:
                    err.append({"id": f"batch_req_{n}", "custom_id": cid, "response": None,
                                "error": {"code": EXPIRED[0], "message": EXPIRED[1]}})
                elif status == "cancelled":
                    err.append({"id": f"batch_req_{n}", "custom_id": cid, "response": None,
                                "error": {"code": CANCELLED[0], "message": CANCELLED[1]}})
                continue
            if self._error_rate(entry) and _share_pick(cid, self._error_rate(entry)):
                code, message, kind, *param = self.line_error
                reply = (code, {"error": {"message": message, "type": kind, "param": param[0] if param else None,
                                          "code": None}})
            else:
                path = (f"/openai/deployments/{line['body'].get('model')}{batch['endpoint']}?api-version=fake"
                        if self.azure else batch["endpoint"])
                code, _, raw = super().respond("POST", path, entry["auth"], json.dumps(line["body"]).encode())
                self.lines_answered += 1
                reply = (code, json.loads(raw))
            row = {"id": f"batch_req_{n}", "custom_id": cid,
                   "response": {"status_code": reply[0], "request_id": f"req_{n}", "body": reply[1]}, "error": None}
            (out if reply[0] == 200 else err).append(row)
        stamp = int(time.time())
        if out:
            batch["output_file_id"] = self._add_file(_jsonl(out), "batch_output.jsonl", "batch_output")["id"]
        if err:
            batch["error_file_id"] = self._add_file(_jsonl(err), "batch_errors.jsonl", "batch_output")["id"]
        usage = [r["response"]["body"].get("usage") or {} for r in out]
        batch["usage"] = {"input_tokens": sum(u.get("prompt_tokens", 0) for u in usage),
                          "output_tokens": sum(u.get("completion_tokens", 0) for u in usage)}
        batch["usage"]["total_tokens"] = batch["usage"]["input_tokens"] + batch["usage"]["output_tokens"]
        batch["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(err)}
        batch["status"] = status
        batch[{"completed": "completed_at", "expired": "expired_at", "cancelled": "cancelled_at"}[status]] = stamp


def _jsonl(rows):
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def main():
    """Serve until stdin closes, printing the base URL on the first line."""
    import argparse
    import sys

    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=float, nargs=3, default=(0.5, 2.0, 0.5),
                   help="seconds validating, in_progress, finalizing")
    p.add_argument("--latency", type=float, default=0.0, help="seconds per online chat/completions answer")
    args = p.parse_args()
    with BatchFake(steps=tuple(args.steps), latency=args.latency, max_requests=1_000_000,
                   max_seconds=3600) as srv:
        print(srv.url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
