"""One interface for every LLM backend, and the registry that picks one by name.

A caller builds `Request`s (chat `messages`, or a raw `prompt` for completion-style use such as
the classifier's template) with `Sampling` parameters, picks a backend by name and hands both
to the runner (realign.llm.runner):

    backend = make_backend("openai", BackendConfig(model="gpt-4o-mini", base_url=url, api_key=key))
    stats = await run_all(backend, requests, on_done, concurrency=64, rpm=600, check=parse)
    await backend.aclose()

A backend only knows how to turn one Request into a list of `n` `Completion`s (`async generate`):
the text plus how the generation ended (`finish_reason`, "length" when it hit max_tokens, in
every backend's words mapped to OpenAI's) and a provider's `refusal`, so that callers decide about
cut-off or refused answers in one place. It raises `BackendError` saying whether a failure is
worth retrying. Everything about pacing lives in the runner. Every request ends in exactly one
`on_done(Outcome)` call, success or failure, unless a fatal error (bad key, unknown model) stops
the whole run by raising.
"""

import importlib
import os
from dataclasses import dataclass, field

from realign.endpoint import EndpointError
from realign.errors import UsageError
from realign.limits import CALL_TIMEOUT_SLACK
from realign.redact import add_secret, scrub


@dataclass(frozen=True)
class Sampling:
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int | None = None


@dataclass
class Completion:
    """One generated candidate. `text` is the answer only ("" when the server sent none); a
    reasoning model's separate `reasoning_content` is never put here."""
    text: str
    finish_reason: str | None = None   # "stop", "length" (cut at max_tokens), ... as reported
    refusal: str | None = None         # a provider's refusal message, when it sent one

    @property
    def truncated(self):
        return self.finish_reason == "length"


# How servers say "stopped at the token limit": OpenAI/vLLM/llama.cpp "length", Anthropic-style
# "max_tokens", llama.cpp's native stop_type "limit".
_LENGTH_REASONS = {"length", "max_tokens", "limit"}


def completion_from_choice(choice, chat=True):
    """A Completion from one OpenAI-shaped choice (HTTP servers and llama.cpp's in-process server).
    Raises KeyError/TypeError on a choice of the wrong shape."""
    if chat:
        message = choice["message"]
        text, refusal = message.get("content"), message.get("refusal")
    else:
        text, refusal = choice["text"], None
    reason = choice.get("finish_reason") or choice.get("stop_type")
    if reason in _LENGTH_REASONS or choice.get("truncated") is True:
        reason = "length"
    return Completion(text if isinstance(text, str) else "", reason,
                      refusal if isinstance(refusal, str) and refusal.strip() else None)


@dataclass
class Request:
    key: object                      # the caller's handle, e.g. a record id
    messages: list | None = None     # [{"role": ..., "content": ...}, ...]
    prompt: str | None = None        # or a raw prompt string
    sampling: Sampling = field(default_factory=Sampling)
    cost_tokens: int = 1             # what a --tpm cap charges for it (prompt + completion estimate)
    response_format: dict | None = None  # OpenAI's structured-output field, sent where the server takes it


@dataclass
class Outcome:
    request: Request
    result: object = None            # check(completions, request) on success (the Completions without a check)
    error: str | None = None         # one-line reason on failure, secrets scrubbed

    @property
    def ok(self):
        return self.error is None


class BackendError(EndpointError):
    """A failed call. `retryable`: transient, try again later; `overloaded`: the server said slow
    down (429); `fatal`: no request can succeed (bad key, unknown model, nothing listening), so a run
    that has not had one success yet stops at once. A failure that is not retryable has a `cause`
    (by default its reason) for the runner's circuit breaker (realign.endpoint.Breaker)."""

    def __init__(self, reason, *, status=None, retryable=False, overloaded=False, retry_after=None, fatal=False,
                 cause=None, endpoint=None, hint=None, timed_out=False):
        retryable = retryable or overloaded
        super().__init__(reason, cause=cause or (None if retryable else scrub(reason)), fatal=fatal,
                         endpoint=endpoint, hint=hint)
        self.status = status
        self.retryable = retryable
        self.overloaded = overloaded
        self.retry_after = retry_after
        self.timed_out = timed_out  # no answer in time: transient, unless nothing ever answers


class Unusable(Exception):
    """Raised by a caller's check() when the completions came back but cannot be used; retried,
    at most `retries` more times when given (a deterministic fault: a cut at max_tokens)."""

    def __init__(self, reason, retries=None):
        super().__init__(reason)
        self.retries = retries


@dataclass
class BackendConfig:
    model: str
    base_url: str | None = None
    api_key: str | None = None
    request_timeout: float = 120.0
    options: dict = field(default_factory=dict)  # backend-specific extras


class Backend:
    """What every backend provides. Subclasses set the class attributes and implement generate()."""

    name = "base"
    default_concurrency = 32   # a sensible --concurrency when the user gives none
    # All three off for in-process engines, where no HTTP timeouts or 429s apply:
    timed_calls = True         # whoever drives it (run_all, a Ray worker) bounds each call; see call_timeout
    slow_start = True          # run_all spreads the first wave until the first answer (realign.limits.ServerPace)
    throttles = True           # a server that may answer 429; False: a model run by us (summaries
                               # then speak of time per rewrite)
    key_env = None             # the environment variable holding its API key; None: it takes no key

    def __init__(self, config):
        self.config = config
        self.calls = 0         # calls really made to the server or engine, retries and top-ups included

    async def generate(self, request):
        """A list of request.sampling.n Completions (fewer only if the engine gives fewer)."""
        raise NotImplementedError

    def calls_per_attempt(self, request):
        """Requests one generate(request) sends to the server: what an --rpm cap charges for it."""
        return 1

    async def aclose(self):
        pass


def call_timeout(backend_class, config):
    """Seconds one call of this backend may take before its driver gives up, None for no bound."""
    return config.request_timeout + CALL_TIMEOUT_SLACK if backend_class.timed_calls else None


# ---------------------------------------------------------------- registry

# name -> "module:Class", imported only when chosen, so CPU installs never import vllm.
BACKENDS = {
    "openai": "realign.llm.openai_http:OpenAIBackend",
    "vllm": "realign.llm.vllm_engine:VLLMBackend",
    "local": "realign.llm.local_gguf:LocalGGUFBackend",
}


def backend_class(name):
    """The class registered as `name` (its module imported now; engines inside import lazily)."""
    if name not in BACKENDS:
        raise UsageError(f"--backend {name!r}: choose one of {', '.join(sorted(BACKENDS))}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_backend(name, config):
    return backend_class(name)(config)


def api_key(name, given=None, *, base_url=None, required=True, env=None):
    """The API key for backend `name`: `given` (--openai_key) wins over the environment variable the
    backend declares (key_env; `env` instead where a flavour of it keeps its key elsewhere, e.g.
    Azure OpenAI's AZURE_OPENAI_API_KEY). Registered with redact so no message shows it. UsageError
    when the backend takes a key, none is found, it is `required`, and no --base_url points at a
    local server (which may do without)."""
    env = env or backend_class(name).key_env
    key = given or (os.environ.get(env) if env else None)
    add_secret(key)
    if env and required and not key and not base_url:
        raise UsageError(f"no API key: set {env} (or pass --openai_key), or point --base_url at a local server")
    return key
