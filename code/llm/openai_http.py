"""Any OpenAI-compatible HTTP endpoint: OpenAI itself, vLLM serve, llama.cpp server, Ollama.

Uses the official `openai` async client (plain-dict bodies through its `post`, so auth,
timeouts, base_url and error classes are the SDK's) with its own retries switched off (the
runner in base.py owns retrying and pacing), and maps every failure to a BackendError: 429 is
"overloaded" with the server's Retry-After, 5xx/timeouts/connection errors are retryable,
401/403/404 are fatal (no request can succeed with that key or model), other 4xx fail the
one request. Messages pass through `scrub`, so a server echoing the key cannot leak it.
Each choice becomes a Completion (base.completion_from_choice): the message `content` only,
never a reasoning model's `reasoning_content`, with `finish_reason` and any `refusal`.
"""

import httpx
import openai
from openai import AsyncOpenAI

from realign.limits import RetryPolicy, retry_after_seconds
from realign.llm.base import Backend, BackendError, completion_from_choice

FATAL_STATUS = {401: "authentication failed (check OPENAI_API_KEY / --openai_key)",
                403: "permission denied for this key",
                404: "not found (check --model and --base_url)"}


def _server_message(err):
    """The server's own error message when it sent one, else the SDK's text; one line, short."""
    body = getattr(err, "body", None)
    msg = body.get("message") if isinstance(body, dict) else None
    msg = msg if isinstance(msg, str) else str(err)
    return " ".join(msg.split())[:200]


def _status_error(err):
    status = err.status_code
    if status in FATAL_STATUS:
        return BackendError(f"HTTP {status}: {FATAL_STATUS[status]}", status=status, fatal=True)
    reason = f"HTTP {status}: {_server_message(err)}"
    if status == 429:
        headers = err.response.headers if err.response is not None else None
        return BackendError(reason, status=status, overloaded=True, retry_after=retry_after_seconds(headers))
    return BackendError(reason, status=status, retryable=RetryPolicy().should_retry(status))


class OpenAIBackend(Backend):
    name = "openai"
    default_concurrency = 32
    key_env = "OPENAI_API_KEY"

    def __init__(self, config):
        super().__init__(config)
        # Local servers take any key; the SDK insists on a non-empty one.
        self.client = AsyncOpenAI(api_key=config.api_key or "not-needed", base_url=config.base_url,
                                  max_retries=0, timeout=config.request_timeout)
        self._one_choice_per_call = False  # set once the server has refused or ignored n > 1

    async def _call(self, request, n):
        self.calls += 1
        s = request.sampling
        body = dict(model=self.config.model, n=n, temperature=s.temperature, top_p=s.top_p)
        if s.max_tokens:
            body["max_tokens"] = s.max_tokens
        chat = request.messages is not None
        body["messages" if chat else "prompt"] = request.messages if chat else request.prompt
        try:
            # client.post is the SDK's documented route for raw calls: same auth, timeouts and
            # error classes as .create(), without re-validating our plain-dict body and reply
            # (which cost about 3 ms of CPU per request at high concurrency).
            resp = await self.client.post("/chat/completions" if chat else "/completions",
                                          body=body, cast_to=httpx.Response)
            return [completion_from_choice(c, chat) for c in resp.json()["choices"]]
        except openai.APIStatusError as e:
            raise _status_error(e) from None
        except openai.APITimeoutError:
            raise BackendError(f"HTTP request timed out after {self.config.request_timeout:g} s",
                               retryable=True) from None
        except openai.APIConnectionError as e:
            cause = type(e.__cause__).__name__ if e.__cause__ else "connection failed"
            raise BackendError(f"connection error ({cause})", retryable=True) from None
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
            raise BackendError(f"malformed response from server ({type(e).__name__})", retryable=True) from None

    async def generate(self, request):
        """n Completions in one call; servers that ignore `n` are topped up with further calls (at most n),
        and a server that refuses n > 1 with a 400 (llama.cpp's: "Only one completion choice is
        allowed") is asked for one choice per call from then on."""
        n = request.sampling.n
        texts = []
        for _ in range(n):
            want = 1 if self._one_choice_per_call else n - len(texts)
            try:
                got = await self._call(request, want)
            except BackendError as e:
                if e.status != 400 or want == 1:
                    raise
                got = await self._call(request, 1)  # the same 400 again: it was not about n
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
