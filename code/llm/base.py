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
from dataclasses import dataclass, field

from realign.apikeys import find_key
from realign.endpoint import EndpointError
from realign.errors import UsageError
from realign.limits import CALL_TIMEOUT_SLACK
from realign.redact import scrub, scrub_secrets


@dataclass(frozen=True)
class Sampling:
    n: int = 1
    temperature: float | None = 0.0  # None: the server's default
    top_p: float | None = None       # None (or 1.0, every server's default): not sent
    max_tokens: int | None = None


@dataclass
class Completion:
    """One generated candidate. `text` is the answer only ("" when the server sent none); a
    reasoning model's separate `reasoning_content`, or its thinking parts, are never put here."""
    text: str
    finish_reason: str | None = None   # "stop", "length" (cut at max_tokens), "content_filter", ... (normal_finish)
    refusal: str | None = None         # a provider's refusal message, when it sent one

    @property
    def truncated(self):
        return self.finish_reason == "length"

    @property
    def filtered(self):
        return self.finish_reason == "content_filter"

    @property
    def finished(self):
        """Whether the reply is a whole answer (see `finished`): not cut by a limit, a filter, an
        error upstream or a stream that broke off."""
        return finished(self.finish_reason)

    @property
    def cut_reason(self):
        """Why the reply is not a whole answer, on one line (see `cut_reason`); None when it is."""
        return cut_reason(self.finish_reason)


# How servers say "the answer is finished": OpenAI/vLLM/llama.cpp/Ollama/Mistral "stop" (Gemini
# "STOP": matched in any case), Anthropic/Bedrock "end_turn" and "stop_sequence", TGI "eos_token",
# llama.cpp's native stop_type "eos" and "word", Cohere "complete". Only these (and no reason at
# all in a whole JSON reply: minimal servers send none) count as a finished answer.
_STOP_REASONS = {"stop", "end_turn", "stop_sequence", "eos", "eos_token", "word", "complete"}
# How servers say "stopped at the token limit": OpenAI/vLLM/llama.cpp "length", Anthropic-style
# "max_tokens" (Gemini "MAX_TOKENS"), llama.cpp's native stop_type "limit", Mistral "model_length".
_LENGTH_REASONS = {"length", "max_tokens", "limit", "model_length"}
# ... and "a filter cut the reply": OpenAI/Azure "content_filter", Gemini's block reasons, Bedrock's
# guardrails, Cohere's ERROR_TOXIC, Anthropic's "refusal".
_FILTER_REASONS = {"content_filter", "safety", "recitation", "prohibited_content", "blocklist", "spii",
                   "image_safety", "language", "guardrail_intervened", "content_filtered", "error_toxic", "refusal"}
# Anything else ("error" and "abort" from OpenRouter and vLLM, Gemini's "OTHER", "incomplete",
# "cancelled", "tool_calls", a stream that ended without its last event: STREAM_CUT) is a cut
# reply: never used, its reason named (see `finished`).
STREAM_CUT = "stream ended early"
# Content parts (Mistral's Magistral, gateways, Anthropic-shaped replies): text parts are the answer,
# thinking/reasoning parts never are.
_TEXT_PARTS = {"text", "output_text"}


def content_text(content):
    """(text, refusal) of a message's `content`: a string as it is; a list of parts gives its
    text parts joined (as one answer cut into pieces: citations split sentences) and any
    `refusal` part; thinking, reasoning and other parts are left out. Text None when there is none."""
    if isinstance(content, str) or content is None:
        return content, None
    if not isinstance(content, list):
        return None, None
    texts, refusals = [], []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict):
            kind = part.get("type", "text")
            if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind == "refusal" and isinstance(part.get("refusal"), str):
                refusals.append(part["refusal"])
    return ("".join(texts) if texts else None), ("\n".join(refusals) or None)


def normal_finish(reason):
    """A finish reason in OpenAI's words: lower-cased, "stop" for every way of saying the answer
    is finished, "length" for a cut at the token limit, "content_filter" for a filter's cut, any
    other reason as it is (lower-cased); None for none."""
    if reason is None:
        return None
    reason = str(reason).strip().lower()
    if reason in _STOP_REASONS:
        return "stop"
    if reason in _LENGTH_REASONS:
        return "length"
    if reason in _FILTER_REASONS:
        return "content_filter"
    return reason or None


def finished(reason):
    """Whether a reply that ended with `reason` is a whole answer: only a natural stop is, and no
    reason at all (a whole JSON reply from a server that sends none); "error", "abort", "other",
    "incomplete", a cut stream (STREAM_CUT) and every reason we do not know are not."""
    return normal_finish(reason) in (None, "stop")


def cut_reason(reason):
    """Why a reply that ended with `reason` is not a whole answer, on one line: "cut at the token
    limit", "cut by the provider's content filter" or "cut by the server (finish_reason 'error')";
    None when it is finished (`finished`). Every step that reads replies (rewrites, the judge, the
    classifier's LLM) names a cut this way."""
    if finished(reason):
        return None
    kind = normal_finish(reason)
    if kind == "length":
        return "cut at the token limit"
    if kind == "content_filter":
        return "cut by the provider's content filter"
    return f"cut by the server (finish_reason {reason!r})"


def finish_reason(choice):
    """A choice's finish reason in OpenAI's words (normal_finish); None when it gave none."""
    if choice.get("truncated") is True:
        return "length"
    return normal_finish(choice.get("finish_reason") or choice.get("stop_type"))


def completion_from_choice(choice, chat=True):
    """A Completion from one OpenAI-shaped choice (HTTP servers and llama.cpp's in-process server).
    Any registered secret in the text (a proxy or model echoing the key) is masked here, where
    every reply is read, so that no file we write can hold it. Raises KeyError/TypeError on a
    choice of the wrong shape."""
    if chat:
        message = choice["message"]
        text, part_refusal = content_text(message.get("content"))
        refusal = message.get("refusal") or part_refusal
    else:
        text, refusal = choice["text"], None
    text = scrub_secrets(text) if isinstance(text, str) else ""
    return Completion(text, finish_reason(choice),
                      scrub_secrets(refusal) if isinstance(refusal, str) and refusal.strip() else None)


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
    that has not had one success yet stops at once; `per_record`: the server refused this request
    for what it holds (too long for the context, too large, caught by a content filter), so it
    fails alone, at once, and says nothing about the endpoint. A failure that is neither retryable
    nor per_record has a `cause` (by default its reason) for the runner's circuit breaker
    (realign.endpoint.Breaker). `param`: the parameter a 400 named (its `param` field), if any."""

    def __init__(self, reason, *, status=None, retryable=False, overloaded=False, retry_after=None, fatal=False,
                 cause=None, endpoint=None, hint=None, timed_out=False, per_record=None, param=None):
        retryable = (retryable or overloaded) and not per_record
        super().__init__(reason, cause=None if per_record else cause or (None if retryable else scrub(reason)),
                         fatal=fatal and not per_record, endpoint=endpoint, hint=hint)
        self.status = status
        self.retryable = retryable
        self.overloaded = overloaded and not per_record
        self.retry_after = retry_after
        self.timed_out = timed_out  # no answer in time: transient, unless nothing ever answers
        self.per_record = per_record  # what about this record the server refused, e.g. "context size exceeded"
        self.param = param


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

    @property
    def adaptations(self):
        """What the backend changed in its requests to fit the server, one line each (the run's
        summary prints them once); see llm/shape.py."""
        return []

    async def probe(self):
        """Whether the server answers anything at all: True, False for silence, None when the
        backend cannot tell (the runner then waits for the request timeouts)."""
        return None

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


def api_key(name, given=None, *, key_file=None, base_url=None, required=True, env=None, flag="--openai_key",
            url_flag="--base_url"):
    """The API key for backend `name`: `given` (--openai_key) or the file `key_file`
    (--openai_key_file) win over the environment variable the backend declares (key_env; `env`
    instead where a flavour of it keeps its key elsewhere, e.g. Azure OpenAI's
    AZURE_OPENAI_API_KEY). Stripped, checked and registered with redact (realign.apikeys).
    UsageError when the backend takes a key, none is found, it is `required`, and no --base_url
    points at a local server (which may do without). `flag`, `url_flag`: the script's names for
    the key and URL flags (the filter's judge has its own), for the messages."""
    env = env or backend_class(name).key_env
    key = find_key(flag, given, key_file=key_file, env=env)
    if env and required and not key and not base_url:
        raise UsageError(f"no API key: set {env} (or pass {flag}_file), or point {url_flag} at a local server")
    return key
