"""Any OpenAI-compatible HTTP endpoint: OpenAI itself, Azure OpenAI, vLLM serve, llama.cpp server,
Ollama, LM Studio, OpenRouter, LiteLLM and other gateways, Gemini's OpenAI-compatible endpoint.

Uses the official `openai` async client (plain-dict bodies through its `post`, so auth,
timeouts, base_url and error classes are the SDK's; `AsyncAzureOpenAI` for `api_type="azure"`,
where the model is the deployment name) with its own retries switched off (the runner in
llm/runner.py owns retrying and pacing), and maps every failure to a BackendError:

- transient (retried): 429 rate limits (with the server's Retry-After), 5xx, timeouts, dropped
  connections, a 200 carrying a transient error;
- fatal (no request can succeed): nothing listening, unknown host, a bad URL, an HTML page where
  JSON was expected, 401/403/404, a spent quota (429 `insufficient_quota`);
- one record refused (per_record, realign.endpoint.record_refusal): a prompt over the model's
  context, 413, a content filter or moderation on the prompt (OpenRouter's 403 "flagged"); that
  record fails at once, the run goes on;
- other 4xx fail the one request; the runner stops the run when every request gets the same one.

Each carries the endpoint (scheme://host:port/path), the server's own message and a hint where one
is known (realign.endpoint). Messages pass through `scrub`, so a server echoing the key cannot leak
it.

The request fits the model (llm/shape.py): the body carries only what was set, plus
`"stream": false`; a 400 naming a parameter or value the model refuses is learned for the rest of
the run and the request re-sent in the accepted shape (max_tokens -> max_completion_tokens,
temperature to the server default, top_p dropped beside temperature, n > 1 -> n calls,
`response_format` left out by a server without structured output, whose reply the caller then
reads leniently). A context refusal that states the numbers (vLLM: "maximum context length is
4096 tokens … 477 in the messages, 4096 in the completion") lowers the token limit to what the
context leaves for that prompt, and later requests are sized to fit before they are sent. So is a
chat template without a system role (Gemma: 400 "System role not supported"; o1-mini): the system
text is folded into the user turn. Every change is in `adaptations`, which the run's summary
prints once. Every response's x-ratelimit-* headers go to `self.pace` (set by the runner) so the
run paces by the server.

Replies are read as servers send them: JSON, or server-sent events from a server that streams
anyway; content as a string or a list of parts; an `{"error": …}` with HTTP 200. Each choice
becomes a Completion (base.completion_from_choice): the answer text only, never a reasoning
model's `reasoning_content` or thinking parts, with the finish reason lower-cased and any refusal.
"""

import json
import re

import httpx
import openai
from openai import AsyncAzureOpenAI, AsyncOpenAI

from realign.endpoint import connect_failure, is_html, record_refusal, status_hint, where
from realign.limits import RetryPolicy, retry_after_seconds
from realign.llm.base import STREAM_CUT, Backend, BackendError, completion_from_choice
from realign.llm.shape import RequestShape

DEFAULT_AZURE_API_VERSION = "2024-10-21"
PROBE_TIMEOUT = 5.0   # s for GET /models to answer anything, when no request has been answered yet
MAX_RESHAPES = 4      # a request is re-sent at most this many times while the shape is being learned
_SYSTEM_ROLE_REFUSED = re.compile(r"system role (is )?not supported|does not support (the )?['\"`]?system", re.I)
# error codes of a 200-with-error (or a choice's error) that are worth another try
_TRANSIENT_CODE = re.compile(r"rate|overload|unavailable|timeout|timed out|server_error|internal|temporar"
                             r"|capacity|busy|resource_exhausted|deadline|upstream|provider", re.I)


def _one_line(text, limit=200):
    return " ".join(str(text).split())[:limit]


def _html_title(text):
    m = re.search(r"<title[^>]*>(.*?)</title>", text or "", re.I | re.S)
    return f" titled {_one_line(m.group(1), 80)!r}" if m and m.group(1).strip() else ""


def error_fields(body):
    """(message, code text, param) from an error body in any provider's shape: {"error": {...}},
    the error object itself (the SDK unwraps it), vLLM/Mistral's top-level message, Gemini's
    [{"error": {...}}], or plain text."""
    if isinstance(body, list) and body:
        body = body[0]
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    if not isinstance(body, dict):
        return (str(body) if body else ""), "", None
    message = body.get("message") or body.get("detail") or body.get("error") or ""
    if not isinstance(message, str):
        message = json.dumps(message, ensure_ascii=False)
    reasons = (body.get("metadata") or {}).get("reasons") if isinstance(body.get("metadata"), dict) else None
    if isinstance(reasons, list) and reasons:  # OpenRouter's moderation: what the input was flagged for
        message += f" (reasons: {', '.join(map(str, reasons))[:120]})"
    code = " ".join(str(body.get(k)) for k in ("code", "type", "status") if body.get(k) is not None)
    param = body.get("param") if isinstance(body.get("param"), str) else None
    return message, code, param


def _server_message(err):
    """(message, code, param): the server's own error text when it sent one, else the SDK's text."""
    message, code, param = error_fields(getattr(err, "body", None))
    return _one_line(message or str(err)), code, param


def fold_system(messages):
    """The chat with its system text moved to the front of the first user turn (for chat templates
    that have no system role); the same list when there is no system message."""
    system = "\n\n".join(m["content"] for m in messages if m.get("role") == "system")
    if not system:
        return messages
    rest = [dict(m) for m in messages if m.get("role") != "system"]
    for m in rest:
        if m.get("role") == "user":
            m["content"] = f"{system}\n\n{m['content']}"
            return rest
    return [{"role": "user", "content": system}, *rest]


# The model's context and the prompt's tokens, as a context refusal states them: vLLM/OpenAI
# ("maximum context length is 4096 tokens. However, you requested 4573 tokens (477 in the
# messages, 4096 in the completion)", "… and your request has 477 input tokens"), TGI ("must be
# <= 4096. Given: 3000 `inputs` tokens"), llama.cpp's error fields (n_ctx, n_prompt_tokens).
_CONTEXT_SIZE = re.compile(r"maximum context length is (\d+)|must be <= (\d+)|\"n_ctx\"\s*:\s*(\d+)", re.I)
_PROMPT_SIZE = re.compile(r"(\d+) in the messages|request has (\d+) input tokens|messages resulted in (\d+) tokens"
                          r"|Given: (\d+) `inputs` tokens|\"n_prompt_tokens\"\s*:\s*(\d+)", re.I)
MIN_ROOM = 64  # tokens: a prompt leaving less room than this in the context fails its record


def context_numbers(text):
    """(context tokens, prompt tokens) a context refusal states, or None when it does not say both."""
    c, p = _CONTEXT_SIZE.search(text or ""), _PROMPT_SIZE.search(text or "")
    if not (c and p):
        return None
    return int(next(g for g in c.groups() if g)), int(next(g for g in p.groups() if g))


def _per_record_error(what, status, reason, endpoint):
    hint = {"context size exceeded": "lower --target_length, or use a model with a longer context",
            "request too large": "the server or a proxy in front of it limits the request size"}.get(what)
    return BackendError(f"{what}: {reason}", status=status, per_record=what, endpoint=endpoint, hint=hint)


# Gemini's RetryInfo ("retryDelay": "9s", "1.5s") and its message's "Please retry in 7.96s."
_RETRY_DELAY = re.compile(r'"retryDelay"\s*:\s*"(\d+(?:\.\d+)?)s"|\bretry in (\d+(?:\.\d+)?)\s*s', re.I)
# a quota that no wait within the run brings back
_DAILY = re.compile(r"per ?day|perday|daily", re.I)


def retry_delay(text):
    """Seconds a 429's body asks us to wait (Gemini's RetryInfo.retryDelay, or "Please retry in
    7.96s" in its message), or None."""
    m = _RETRY_DELAY.search(text or "")
    return float(m.group(1) or m.group(2)) if m else None


def quota_spent(code, message, wait, body=""):
    """Whether a 429 says the account's quota is spent (stop the run), not "slow down" (wait and
    retry). OpenAI's `insufficient_quota` code is; so is a per-day quota, and "exceeded your
    current quota" with nothing to wait for outside Gemini. Gemini words its per-minute limits the
    same way ("You exceeded your current quota … Please retry in 9s", RESOURCE_EXHAUSTED with a
    RetryInfo): those are rate limits, unless the body names a per-day quota (QuotaFailure's
    quotaId "…PerDay…"). `body`: the whole error body's text."""
    said = f"{code} {message}".lower()
    if "insufficient_quota" in said or "billing_hard_limit" in said:
        return True
    if _DAILY.search(f"{said} {body}") and "quota" in said:
        return True
    return "exceeded your current quota" in said and wait is None and "resource_exhausted" not in said


def status_error(err):
    """The BackendError for an HTTP error status from the SDK."""
    status, resp = err.status_code, err.response
    endpoint = where(resp.request.url) if resp is not None else None
    text = resp.text if resp is not None else ""
    if status == 413:  # often nginx's HTML page: about this request's size, not the endpoint
        page = f"an HTML page{_html_title(text)}" if is_html(resp.headers.get("content-type"), text) else \
            _server_message(err)[0]
        return _per_record_error("request too large", status, f"HTTP 413: {page}", endpoint)
    if resp is not None and is_html(resp.headers.get("content-type"), text):
        return BackendError(f"HTTP {status}: an HTML page{_html_title(text)}, not an API reply", status=status,
                            fatal=True, cause=f"HTTP {status} html", endpoint=endpoint,
                            hint="--base_url must point at the API (it usually ends in /v1), not a web page")
    message, code, param = _server_message(err)
    reason = f"HTTP {status}: {message}"
    what = record_refusal(status, f"{message} {code}")
    if what:
        refused = _per_record_error(what, status, reason, endpoint)
        refused.context = context_numbers(text) if what == "context size exceeded" else None
        return refused
    hint = status_hint(status, f"{message} {code}", endpoint or "")
    if status == 429:
        wait = retry_after_seconds(resp.headers if resp is not None else None)
        if wait is None:
            wait = retry_delay(text)
        if quota_spent(code, message, wait, text):
            return BackendError(reason, status=status, fatal=True, cause="insufficient_quota", endpoint=endpoint,
                                hint=hint)
        return BackendError(reason, status=status, overloaded=True, retry_after=wait, endpoint=endpoint)
    if status in (401, 403, 404):
        return BackendError(reason, status=status, fatal=True, cause=f"HTTP {status}", endpoint=endpoint, hint=hint)
    retryable = RetryPolicy().should_retry(status)
    return BackendError(reason, status=status, retryable=retryable, cause=None if retryable else reason,
                        endpoint=endpoint, hint=hint, param=param)


def reply_error(error, resp):
    """The BackendError for an error inside a 200 reply (OpenRouter, some gateways): the provider's
    own message; transient or not by its code."""
    message, code, param = error_fields(error)
    message = _one_line(message or error)
    status = next((int(c) for c in code.split() if c.isdigit()), None)
    reason = f"HTTP 200 carrying an error: {message}" + (f" (code {code})" if code else "")
    endpoint = where(resp.request.url)
    what = record_refusal(200, f"{message} {code}")
    if what:
        return _per_record_error(what, 200, reason, endpoint)
    if status == 429 or re.search(r"rate.?limit|too many requests", f"{code} {message}", re.I):
        return BackendError(reason, status=status, overloaded=True, endpoint=endpoint)
    transient = (status is not None and RetryPolicy().should_retry(status)) or bool(_TRANSIENT_CODE.search(code))
    return BackendError(reason, status=status, retryable=transient, endpoint=endpoint, param=param,
                        cause=None if transient else reason, hint=status_hint(200, f"{message} {code}", endpoint))


def sse_reply(text):
    """A whole reply rebuilt from server-sent events (`data: {chunk}` lines, as a server that
    streams whatever it is asked sends them): {"choices": [...]} with each choice's content
    joined, or {"error": ...} when a chunk carried one. A choice whose stream ended with neither
    a finish reason nor `data: [DONE]` (a proxy or a timeout cut it) gets the finish reason
    base.STREAM_CUT, so that it is never used. ValueError when there is no chunk."""
    choices, chunks, done = {}, 0, False
    for line in text.splitlines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            done = True
            break
        chunk = json.loads(payload)
        chunks += 1
        if isinstance(chunk, dict) and chunk.get("error"):
            return {"error": chunk["error"]}
        for c in chunk.get("choices") or ():
            into = choices.setdefault(c.get("index", 0), {"index": c.get("index", 0), "parts": [], "text": []})
            delta = c.get("delta") or c.get("message") or {}
            content = delta.get("content")
            if isinstance(content, str):
                into["parts"].append({"type": "text", "text": content})
            elif isinstance(content, list):
                into["parts"] += content
            if isinstance(c.get("text"), str):
                into["text"].append(c["text"])
            if delta.get("refusal"):
                into["refusal"] = into.get("refusal", "") + delta["refusal"]
            if c.get("finish_reason"):
                into["finish_reason"] = c["finish_reason"]
    if not chunks:
        raise ValueError("no data: lines")
    return {"choices": [{"index": i, "finish_reason": c.get("finish_reason") or (None if done else STREAM_CUT),
                         "text": "".join(c["text"]),
                         "message": {"role": "assistant", "content": c["parts"], "refusal": c.get("refusal")}}
                        for i, c in sorted(choices.items())]}


def sdk_error(err, config):
    """The BackendError for an exception the SDK raised (any openai.APIError): an error status
    (status_error), a timeout, or a connection that failed, fatal where no retry can help
    (nothing listening, an unknown host, a bad URL: endpoint.connect_failure)."""
    if isinstance(err, openai.APIStatusError):
        return status_error(err)
    if isinstance(err, openai.APITimeoutError):
        return BackendError(f"HTTP request timed out after {config.request_timeout:g} s", retryable=True,
                            timed_out=True, endpoint=where(config.base_url or ""))
    endpoint = where(err.request.url) if getattr(err, "request", None) is not None else config.base_url
    refused = connect_failure(err.__cause__) if err.__cause__ is not None else None
    if refused:
        return BackendError(refused[0], fatal=True, cause=refused[0], endpoint=endpoint, hint=refused[1])
    cause = type(err.__cause__).__name__ if err.__cause__ else "connection failed"
    return BackendError(f"connection error ({cause})", retryable=True, endpoint=endpoint)


def make_client(config):
    """The SDK client: AsyncAzureOpenAI when config.options["api_type"] == "azure", else AsyncOpenAI."""
    common = dict(max_retries=0, timeout=config.request_timeout)
    if config.options.get("api_type") == "azure":
        return AsyncAzureOpenAI(azure_endpoint=config.base_url, api_key=config.api_key or "not-set",
                                api_version=config.options.get("api_version") or DEFAULT_AZURE_API_VERSION, **common)
    # Local servers take any key; the SDK insists on a non-empty one.
    return AsyncOpenAI(api_key=config.api_key or "not-needed", base_url=config.base_url, **common)


def _reasoning_tokens(data):
    """The reasoning tokens a reply's usage reports (OpenAI's completion_tokens_details), or 0."""
    usage = data.get("usage") if isinstance(data, dict) else None
    details = usage.get("completion_tokens_details") if isinstance(usage, dict) else None
    used = details.get("reasoning_tokens") if isinstance(details, dict) else None
    return used if isinstance(used, int) else 0


def _prompt_chars(request):
    """Characters of a request's prompt (its messages' text)."""
    if request.messages is None:
        return len(request.prompt or "")
    return sum(len(m["content"]) if isinstance(m.get("content"), str) else len(json.dumps(m.get("content")))
               for m in request.messages)


class OpenAIBackend(Backend):
    name = "openai"
    default_concurrency = 32
    key_env = "OPENAI_API_KEY"

    def __init__(self, config):
        super().__init__(config)
        self.client = make_client(config)
        self.shape = RequestShape.for_model(config.model)  # what the model accepts, learned as we go
        self.fold_system = False           # set once the server has refused the system role
        self._fold_note = []
        self.context = None                # the model's context in tokens, once a refusal has said it
        self.tokens_per_char = 0.0         # the most tokens per prompt character a refusal has shown
        self._reasoning_tokens = 0         # what the last reply read spent reasoning (its usage)
        self.pace = None                   # the runner's ServerPace: fed every response's headers

    @property
    def adaptations(self):
        """What was changed to fit the server, one line each, for the run's summary."""
        return self._fold_note + self.shape.notes

    def _observe(self, headers):
        if self.pace is not None and headers is not None:
            self.pace.observe(headers)

    def _fit_context(self, body, request, room=None):
        """Lower the body's token limit to what the model's context leaves after this prompt:
        `room` when a refusal stated it exactly, else an estimate from the prompt's length once
        a refusal has told the context size (never below MIN_ROOM: such a prompt is refused)."""
        field = self.shape.tokens_field
        if not field or field not in body or (room is None and not self.context):
            return body
        if room is None:
            room = self.context - int(_prompt_chars(request) * self.tokens_per_char * 1.05) - 8
        if MIN_ROOM <= room < body[field]:
            body[field] = room
        return body

    def request_body(self, request, n, room=None):
        """The JSON body this backend sends now for `request` asking `n` choices, in the shape the
        server has accepted so far (llm/shape.py; the system text folded in where refused). The
        Batch API request file uses the same body, so online and batch requests never differ.
        The token limit is lowered to what the model's context leaves (`room` tokens when a
        refusal said so for this request; see _learn_context).
        (`n` as given: generate() asks 1 a call once the server has refused n > 1, shape.n False.)"""
        body = self._fit_context(self.shape.body(self.config.model, request.sampling, n), request, room)
        if request.response_format is not None and self.shape.response_format:
            body["response_format"] = request.response_format
        if request.messages is not None:
            body["messages"] = fold_system(request.messages) if self.fold_system else request.messages
        else:
            body["prompt"] = request.prompt
        return body

    async def _post(self, body, chat):
        """One HTTP call with `body`; the Completions, or a BackendError."""
        self.calls += 1
        try:
            # client.post is the SDK's documented route for raw calls: same auth, timeouts and
            # error classes as .create(), without re-validating our plain-dict body and reply
            # (which cost about 3 ms of CPU per request at high concurrency).
            resp = await self.client.post("/chat/completions" if chat else "/completions",
                                          body=body, cast_to=httpx.Response)
        except openai.APIStatusError as e:
            self._observe(e.response.headers if e.response is not None else None)
            raise status_error(e) from None
        except openai.APIConnectionError as e:  # timeouts included
            raise sdk_error(e, self.config) from None
        self._observe(resp.headers)
        got = self.completions(resp, chat)
        limit = body.get("max_completion_tokens")
        used = self._reasoning_tokens
        if limit and used and used >= limit // 2 and any(c.truncated for c in got):
            self.shape.more_reasoning_room(used, limit)  # the retry gets more room to think
        return got

    def completions(self, resp, chat):
        """The Completions of a reply (JSON, or server-sent events); BackendError for one that is
        not an API reply or carries an error. Batch mode reads its output lines with it too."""
        text = resp.text
        try:
            streamed = "event-stream" in resp.headers.get("content-type", "") or text.lstrip().startswith("data:")
            data = sse_reply(text) if streamed else json.loads(text)
        except (ValueError, RecursionError):  # not JSON at all: a web page, a proxy, something that is not the API
            html = is_html(resp.headers.get("content-type"), text)
            what = f"an HTML page{_html_title(text)}" if html else "a reply that is not JSON"
            raise BackendError(f"HTTP {resp.status_code}: {what}, not an API reply", fatal=True,
                               cause="not JSON", endpoint=where(resp.request.url),
                               hint="--base_url must point at the API (it usually ends in /v1)") from None
        if isinstance(data, dict) and data.get("error") and not data.get("choices"):
            raise reply_error(data["error"], resp)
        self._reasoning_tokens = _reasoning_tokens(data)
        try:
            choices = data["choices"]
            failed = [c["error"] for c in choices if isinstance(c, dict) and c.get("error")]
            if failed and len(failed) == len(choices):  # OpenRouter: an upstream error inside the choice
                raise reply_error(failed[0], resp)
            return [completion_from_choice(c, chat) for c in choices if not (isinstance(c, dict) and c.get("error"))]
        except (KeyError, IndexError, TypeError, AttributeError, RecursionError) as e:
            raise BackendError(f"malformed response from server ({type(e).__name__})", retryable=True) from None

    def learn(self, err, request, body):
        """Learn from a 400/422 refusing `body`: fold the system role, or change the shape.
        Returns whether anything changed. Batch mode learns from its error files with it too."""
        if _SYSTEM_ROLE_REFUSED.search(err.reason) and not self.fold_system \
                and any(m.get("role") == "system" for m in request.messages or ()):
            self.fold_system = True
            self._fold_note.append(f"system prompt folded into the user turn (the server said: {err.reason[:160]})")
            return True
        return self.shape.learn(err.reason, err.param, body) is not None

    async def _send(self, request, n):
        """One call in the shape the server accepts: a 400 that names a parameter or value of the
        body is learned and the request re-sent (a request another one's refusal already reshaped
        is simply re-sent), at most MAX_RESHAPES times."""
        room = None
        for _ in range(MAX_RESHAPES):
            body = self.request_body(request, n, room)
            try:
                return await self._post(body, request.messages is not None)
            except BackendError as e:
                if e.per_record == "context size exceeded":
                    room = self._learn_context(e, request, body)
                    if room is None:
                        raise
                    continue
                if e.status not in (400, 422) or e.per_record:
                    raise
                if not self.learn(e, request, body) and self.request_body(request, n, room) == body:
                    raise
        return await self._post(self.request_body(request, n, room), request.messages is not None)

    def _learn_context(self, err, request, body):
        """From a context refusal that states the numbers (vLLM: "maximum context length is 4096
        tokens … 477 in the messages, 4096 in the completion"): the token limit that fits this
        prompt (context − prompt), or None when the prompt alone leaves less than MIN_ROOM or the
        limit sent was not the problem. Learns the context and the tokens per character for the
        rest of the run (requests are sized to fit before they are sent), noted once."""
        numbers = getattr(err, "context", None)
        field = self.shape.tokens_field
        if not numbers or not field or field not in body:
            return None
        context, prompt = numbers
        room = context - prompt
        if room < MIN_ROOM or room >= body[field]:
            return None
        chars = _prompt_chars(request)
        if chars:
            self.tokens_per_char = max(self.tokens_per_char, prompt / chars)
        if self.context is None:
            self.shape.notes.append(
                f"{field} lowered per request to what the model's {context}-token context leaves after the prompt "
                f"(the server said: {err.reason.removeprefix('context size exceeded: ')[:160]})")
        self.context = min(self.context or context, context)
        return room

    async def generate(self, request):
        """n Completions in one call; servers that ignore `n` are topped up with further calls (at most n),
        and a server that refuses n > 1 with a 400 that does not name it (llama.cpp's: "Only one
        completion choice is allowed") is asked for one choice per call from then on."""
        n = request.sampling.n
        texts = []
        for _ in range(n):
            want = 1 if not self.shape.n else n - len(texts)
            try:
                got = await self._send(request, want)
            except BackendError as e:
                if e.status not in (400, 422) or e.per_record or want == 1:
                    raise
                got = await self._send(request, 1)  # the same 400 again: it was not about n
                self._one_choice_per_call(f"the server refused n={want}: {e.reason[:160]}")
            if 0 < len(got) < want:  # it ignores n: n calls a request from now on (no choice at all is no
                # answer about n: a blocked prompt can look like that)
                self._one_choice_per_call(f"the server answered {len(got)} choice(s) when asked for {want}")
            texts += got
            if len(texts) >= n:
                break
        return texts[:n]

    def _one_choice_per_call(self, why):
        if self.shape.n:
            self.shape.n = False
            self.shape.notes.append(f"one choice per call ({why})")

    def calls_per_attempt(self, request):
        return request.sampling.n if not self.shape.n else 1

    async def probe(self, timeout=PROBE_TIMEOUT):
        """Whether the server answers anything at all (any HTTP status) to GET /models within
        `timeout` s: True, or False for silence. The runner asks when no request has been answered
        yet, to tell a server that never answers from one that is only slow."""
        try:
            await self.client.get("/models", cast_to=httpx.Response, options={"timeout": timeout})
        except openai.APIStatusError:
            return True
        except (openai.APITimeoutError, openai.APIConnectionError):
            return False
        return True

    async def aclose(self):
        await self.client.close()
