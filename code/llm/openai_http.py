"""Any OpenAI-compatible HTTP endpoint: OpenAI itself, Azure OpenAI, vLLM serve, llama.cpp server, Ollama.

Uses the official `openai` async client (plain-dict bodies through its `post`, so auth,
timeouts, base_url and error classes are the SDK's; `AsyncAzureOpenAI` for `api_type="azure"`,
where the model is the deployment name) with its own retries switched off (the runner in
llm/runner.py owns retrying and pacing), and maps every failure to a BackendError:

- transient (retried): 429 rate limits (with the server's Retry-After), 5xx, timeouts, dropped
  connections;
- fatal (no request can succeed): nothing listening, unknown host, a bad URL, an HTML page where
  JSON was expected, 401/403/404, a spent quota (429 `insufficient_quota`);
- other 4xx fail the one request; the runner stops the run when every request gets the same one.

Each carries the endpoint (scheme://host:port/path), the server's own message and a hint where one
is known (realign.endpoint). Messages pass through `scrub`, so a server echoing the key cannot leak
it. Three provider quirks are handled for the rest of the run once seen: a server that refuses or
ignores `n` gets one choice per call, a chat template without a system role (Gemma: 400 "System
role not supported") gets the system text folded into the user turn, and a server without
structured output (a 400 naming `response_format`) gets requests without that field. Every response's
x-ratelimit-* headers go to `self.pace` (set by the runner) so the run paces by the server.
Each choice becomes a Completion (base.completion_from_choice): the message `content` only,
never a reasoning model's `reasoning_content`, with `finish_reason` and any `refusal`.
"""

import re

import httpx
import openai
from openai import AsyncAzureOpenAI, AsyncOpenAI

from realign.endpoint import connect_failure, is_html, status_hint, where
from realign.limits import RetryPolicy, retry_after_seconds
from realign.llm.base import Backend, BackendError, completion_from_choice

DEFAULT_AZURE_API_VERSION = "2024-10-21"
_SYSTEM_ROLE_REFUSED = re.compile(r"system role (is )?not supported|does not support (the )?system", re.I)
_RESPONSE_FORMAT_REFUSED = re.compile(r"response_format|json_schema|structured output|json mode|grammar", re.I)


def _one_line(text, limit=200):
    return " ".join(str(text).split())[:limit]


def _html_title(text):
    m = re.search(r"<title[^>]*>(.*?)</title>", text or "", re.I | re.S)
    return f" titled {_one_line(m.group(1), 80)!r}" if m and m.group(1).strip() else ""


def _server_message(err):
    """(message, code): the server's own error text when it sent one, else the SDK's text."""
    body = getattr(err, "body", None)
    msg = body.get("message") if isinstance(body, dict) else None
    code = " ".join(str(body.get(k) or "") for k in ("code", "type")) if isinstance(body, dict) else ""
    return _one_line(msg if isinstance(msg, str) else str(err)), code


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


def status_error(err):
    """The BackendError for an HTTP error status from the SDK."""
    status, resp = err.status_code, err.response
    endpoint = where(resp.request.url) if resp is not None else None
    text = resp.text if resp is not None else ""
    if resp is not None and is_html(resp.headers.get("content-type"), text):
        return BackendError(f"HTTP {status}: an HTML page{_html_title(text)}, not an API reply", status=status,
                            fatal=True, cause=f"HTTP {status} html", endpoint=endpoint,
                            hint="--base_url must point at the API (it usually ends in /v1), not a web page")
    message, code = _server_message(err)
    reason = f"HTTP {status}: {message}"
    hint = status_hint(status, f"{message} {code}", endpoint or "")
    spent = f"{code} {message}".lower()
    if status == 429 and ("insufficient_quota" in spent or "exceeded your current quota" in spent):
        return BackendError(reason, status=status, fatal=True, cause="insufficient_quota", endpoint=endpoint,
                            hint=hint)
    if status == 429:
        headers = resp.headers if resp is not None else None
        return BackendError(reason, status=status, overloaded=True, retry_after=retry_after_seconds(headers),
                            endpoint=endpoint)
    if status in (401, 403, 404):
        return BackendError(reason, status=status, fatal=True, cause=f"HTTP {status}", endpoint=endpoint, hint=hint)
    retryable = RetryPolicy().should_retry(status)
    return BackendError(reason, status=status, retryable=retryable, cause=None if retryable else reason,
                        endpoint=endpoint, hint=hint)


def make_client(config):
    """The SDK client: AsyncAzureOpenAI when config.options["api_type"] == "azure", else AsyncOpenAI."""
    common = dict(max_retries=0, timeout=config.request_timeout)
    if config.options.get("api_type") == "azure":
        return AsyncAzureOpenAI(azure_endpoint=config.base_url, api_key=config.api_key or "not-set",
                                api_version=config.options.get("api_version") or DEFAULT_AZURE_API_VERSION, **common)
    # Local servers take any key; the SDK insists on a non-empty one.
    return AsyncOpenAI(api_key=config.api_key or "not-needed", base_url=config.base_url, **common)


class OpenAIBackend(Backend):
    name = "openai"
    default_concurrency = 32
    key_env = "OPENAI_API_KEY"

    def __init__(self, config):
        super().__init__(config)
        self.client = make_client(config)
        self._one_choice_per_call = False  # set once the server has refused or ignored n > 1
        self.fold_system = False           # set once the server has refused the system role
        self.no_response_format = False    # set once the server has refused response_format
        self.pace = None                   # the runner's ServerPace: fed every response's headers

    def _observe(self, headers):
        if self.pace is not None and headers is not None:
            self.pace.observe(headers)

    def request_body(self, request, n):
        """The JSON body this backend sends now for `request` asking `n` choices, in the shape the
        server has accepted so far (e.g. the system text folded in). The Batch API request file uses
        the same body, so online and batch requests never differ."""
        s = request.sampling
        body = dict(model=self.config.model, n=n, temperature=s.temperature, top_p=s.top_p)
        if s.max_tokens:
            body["max_tokens"] = s.max_tokens
        if request.response_format is not None and not self.no_response_format:
            body["response_format"] = request.response_format
        if request.messages is not None:
            body["messages"] = fold_system(request.messages) if self.fold_system else request.messages
        else:
            body["prompt"] = request.prompt
        return body

    async def _call(self, request, n):
        self.calls += 1
        body = self.request_body(request, n)
        chat = request.messages is not None
        try:
            # client.post is the SDK's documented route for raw calls: same auth, timeouts and
            # error classes as .create(), without re-validating our plain-dict body and reply
            # (which cost about 3 ms of CPU per request at high concurrency).
            resp = await self.client.post("/chat/completions" if chat else "/completions",
                                          body=body, cast_to=httpx.Response)
        except openai.APIStatusError as e:
            self._observe(e.response.headers if e.response is not None else None)
            raise status_error(e) from None
        except openai.APITimeoutError:
            raise BackendError(f"HTTP request timed out after {self.config.request_timeout:g} s", retryable=True,
                               timed_out=True, endpoint=where(self.config.base_url or "")) from None
        except openai.APIConnectionError as e:
            endpoint = where(e.request.url) if getattr(e, "request", None) is not None else self.config.base_url
            refused = connect_failure(e.__cause__) if e.__cause__ is not None else None
            if refused:
                raise BackendError(refused[0], fatal=True, cause=refused[0], endpoint=endpoint,
                                   hint=refused[1]) from None
            cause = type(e.__cause__).__name__ if e.__cause__ else "connection failed"
            raise BackendError(f"connection error ({cause})", retryable=True, endpoint=endpoint) from None
        self._observe(resp.headers)
        return self._texts(resp, chat)

    def _texts(self, resp, chat):
        try:
            choices = resp.json()["choices"]
            return [completion_from_choice(c, chat) for c in choices]
        except ValueError:  # not JSON at all: a web page, a proxy, something that is not the API
            html = is_html(resp.headers.get("content-type"), resp.text)
            what = f"an HTML page{_html_title(resp.text)}" if html else "a reply that is not JSON"
            raise BackendError(f"HTTP {resp.status_code}: {what}, not an API reply", fatal=True,
                               cause="not JSON", endpoint=where(resp.request.url),
                               hint="--base_url must point at the API (it usually ends in /v1)") from None
        except (KeyError, IndexError, TypeError, AttributeError, RecursionError) as e:
            raise BackendError(f"malformed response from server ({type(e).__name__})", retryable=True) from None

    async def _call_folding(self, request, n):
        """_call, folding the system text into the user turn from the first "no system role" 400 on,
        and leaving response_format out from the first 400 that names it (a server without
        structured output: the caller reads the reply leniently)."""
        for _ in range(3):
            folded, formatted = self.fold_system, self.no_response_format
            try:
                return await self._call(request, n)
            except BackendError as e:
                if e.status not in (400, 422):
                    raise
                if not folded and _SYSTEM_ROLE_REFUSED.search(e.reason) \
                        and any(m.get("role") == "system" for m in request.messages or ()):
                    self.fold_system = True
                elif not formatted and request.response_format is not None \
                        and _RESPONSE_FORMAT_REFUSED.search(e.reason):
                    self.no_response_format = True
                else:
                    raise
        return await self._call(request, n)

    async def generate(self, request):
        """n Completions in one call; servers that ignore `n` are topped up with further calls (at most n),
        and a server that refuses n > 1 with a 400 (llama.cpp's: "Only one completion choice is
        allowed") is asked for one choice per call from then on."""
        n = request.sampling.n
        texts = []
        for _ in range(n):
            want = 1 if self._one_choice_per_call else n - len(texts)
            try:
                got = await self._call_folding(request, want)
            except BackendError as e:
                if e.status != 400 or want == 1:
                    raise
                got = await self._call_folding(request, 1)  # the same 400 again: it was not about n
                self._one_choice_per_call = True
            self._one_choice_per_call |= len(got) < want  # it ignores n: n calls a request from now on
            texts += got
            if len(texts) >= n:
                break
        return texts[:n]

    def calls_per_attempt(self, request):
        return request.sampling.n if self._one_choice_per_call else 1

    async def aclose(self):
        await self.client.close()
