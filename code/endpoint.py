"""What an HTTP endpoint's failure means: worth a retry or not, where it happened, and a hint.

Shared by the OpenAI-compatible backend (realign.llm.openai_http) and the Serper client, so a
misconfigured endpoint reads the same everywhere:

    where("http://user:pw@host:8000/v1/chat/completions?api-version=x")  # 'http://host:8000/v1/chat/completions'
    connect_failure(exc)   # (cause, hint) for an httpx error raised before any answer came
    status_hint(status, message, path)   # a hint for a refused status, or None
    is_html(content_type, text)          # an HTML page where JSON was expected (a login page, a proxy)
    record_refusal(status, text)         # "context size exceeded" etc. when the refusal is about one record
    breaker = Breaker(); breaker.failure(err); breaker.success()   # stop a run no retry can save

Transient (retried, backoff): timeouts, 5xx, 429 rate limits, dropped connections. Not transient
(no retry can fix them): connection refused, unknown host, a bad scheme or URL, HTML instead of
JSON, 401/403/404, a spent quota. The runner stops a run on those (realign.llm.runner).
Refusals of one record (record_refusal): a prompt longer than the model's context (llama.cpp says
so even as a 500), a request too large for the server or a proxy (413), a content filter on the
prompt (Azure's 400 content_filter, OpenRouter's 403 "flagged" by moderation). They fail that
record alone and say nothing about the endpoint.
"""

import re

import time
from urllib.parse import urlsplit

import httpx

from realign.redact import scrub

BREAKER_AT_START = 3   # the same non-transient failure this many times before any success: refused
BREAKER_LATER = 10     # ... this many times in a row later in a run: stop, keep what is done
BREAKER_DOWN_AFTER = 8      # transient failures (5xx, timeouts, dropped connections) with no success between:
                            # the server is down, requests go one probe at a time
BREAKER_START_SECONDS = 30  # down with no success at all yet for this long: stop (a blip at the start is not)
BREAKER_DOWN_SECONDS = 120  # later in a run: down with no success for this long: stop
PROBE_EVERY = (1.0, 5.0)    # s between probes while down: the first gap, doubling up to the second

class EndpointError(Exception):
    """A failed request. `cause` names a failure no retry fixes (None for transient ones), so a
    Breaker can tell "K requests in a row failed the same way"; `fatal`: no request can succeed
    (nothing listening, a bad URL, a rejected key), so a run without one success yet stops at
    once; `endpoint` (scheme://host:port/path) and `hint` make the one line a user sees."""

    def __init__(self, reason, *, cause=None, fatal=False, endpoint=None, hint=None):
        super().__init__(scrub(reason))
        self.reason = scrub(reason)
        self.cause = cause
        self.fatal = fatal
        self.endpoint = endpoint
        self.hint = hint

    def one_line(self):
        """'ENDPOINT: REASON (HINT)' for a stop message; secrets scrubbed."""
        text = f"{self.endpoint}: {self.reason}" if self.endpoint else self.reason
        return scrub(text + (f" ({self.hint})" if self.hint else ""))


class Breaker:
    """Stops a run that no retry can save.

    Before the first success, a fatal failure is raised at once, and so is any other failure with
    a cause (a 400 every request gets, silence) once `at_start` requests in a row got it: the
    caller reports "the endpoint refused the run" and exits 2. After a success, `later` requests
    in a row failing with the same cause set `stopped`: the caller sends nothing more and keeps
    what is finished (exit 1; a rerun resumes). A success resets the count.

    Transient failures (5xx, timeouts, dropped connections; not 429s, which pace the run) are
    counted apart (`transient`). `down_after` of them with no success between mean the server is
    down: from then on `may_send` lets one request through at a time as a probe, PROBE_EVERY
    apart (the rest wait, spending none of their retries), until one succeeds. Down with no
    success at all for `start_seconds` sets `stopped` (a server answering 500 to everything costs
    half a minute and a few dozen requests, a blip of some seconds at the start is ridden out);
    later in a run, down for `down_seconds` does (a server that died). Failures of one record
    (per_record) count nowhere.
    """

    def __init__(self, at_start=BREAKER_AT_START, later=BREAKER_LATER, down_after=BREAKER_DOWN_AFTER,
                 start_seconds=BREAKER_START_SECONDS, down_seconds=BREAKER_DOWN_SECONDS, probe_every=PROBE_EVERY,
                 clock=time.monotonic):
        self.at_start, self.later = at_start, later
        self.down_after, self.start_seconds, self.down_seconds = down_after, start_seconds, down_seconds
        self.probe_every, self.clock = probe_every, clock
        self.succeeded = False
        self.cause, self.count = None, 0
        self.transients, self.down_since = 0, None  # transient failures since the last success, and since when
        self.probes, self.next_probe = 0, 0.0
        self.stopped = None

    @property
    def down(self):
        """Whether the server looks down (transient failures only since the last success)."""
        return self.transients >= self.down_after

    def may_send(self):
        """Whether a request may be sent now: always, unless the server is down; then one probe
        at a time, spaced out (this call takes the probe's turn when it says True)."""
        if not self.down:
            return True
        now = self.clock()
        if now < self.next_probe:
            return False
        first, most = self.probe_every
        self.next_probe = now + min(most, first * 2 ** self.probes)
        self.probes += 1
        return True

    def success(self):
        self.succeeded = True
        self.cause, self.count = None, 0
        self.transients, self.down_since = 0, None
        self.probes, self.next_probe = 0, 0.0

    def failure(self, err):
        """Count one failed attempt (an EndpointError); raises it when the run must not go on."""
        if err.cause is None:
            return
        if not self.succeeded and err.fatal:
            raise err
        self.count = self.count + 1 if err.cause == self.cause else 1
        self.cause = err.cause
        if not self.succeeded and self.count >= self.at_start:
            raise err
        if self.succeeded and self.count >= self.later and self.stopped is None:
            self.stopped = f"{self.count} requests in a row failed: {err.one_line()}"

    def transient(self, err):
        """Count one transient failed attempt (`err`, an EndpointError); may set `stopped`."""
        now = self.clock()
        self.transients += 1
        if self.down_since is None:
            self.down_since = now
        if self.stopped is not None or not self.down:
            return
        for_long = now - self.down_since
        if not self.succeeded and for_long >= self.start_seconds:
            self.stopped = (f"no request has succeeded, {self.transients} attempts failed in {for_long:.0f} s, "
                            f"the last: {err.one_line()}")
        elif self.succeeded and for_long >= self.down_seconds:
            self.stopped = (f"no request has succeeded for {for_long:.0f} s, {self.transients} "
                            f"attempts failed, the last: {err.one_line()}")


# A prompt the model's context cannot hold, in the words of llama.cpp ("the request exceeds the
# available context size"), llama-cpp-python ("exceed context window"), OpenAI/vLLM ("maximum context
# length", context_length_exceeded), Anthropic ("prompt is too long"), Bedrock ("Input is too long"),
# Gemini ("input token count … exceeds"), TGI ("`inputs` tokens + `max_new_tokens` must be <="),
# Mistral and LM Studio ("context length").
_CONTEXT = re.compile(
    r"context[ _-]?(?:size|length|window)|exceed_context|prompt is too long|input is too long"
    r"|too many (?:input |prompt )?tokens|input token count.{0,40}exceeds|max_new_tokens`? must be", re.I)
# A content filter on the prompt: Azure OpenAI's 400 content_filter (ResponsibleAIPolicyViolation),
# OpenAI's invalid_prompt, LiteLLM's ContentPolicyViolationError.
_FILTER = re.compile(r"content[_ ]?filter|content management policy|responsibleaipolicyviolation"
                     r"|content[_ ]?policy[_ ]?violation|flagged as potentially violating|invalid_prompt"
                     r"|rejected as a result of our safety system", re.I)
# A moderation refusal of the prompt: OpenRouter's 403 "… requires moderation … Your input was
# flagged for …" (metadata.reasons, flagged_input), and gateways' "flagged by moderation". A 403
# otherwise means the key may not use the model, which every request gets.
_MODERATION = re.compile(r"\bflagged\b|flagged_input|moderation", re.I)


def record_refusal(status, text):
    """What about one record a refusal names ("context size exceeded", "request too large",
    "prompt caught by a content filter"), or None when it is not about the record. `text`: the
    server's message with its error code and type."""
    if status == 413:
        return "request too large"
    if status in (200, 400, 422, 500) and _CONTEXT.search(text or ""):
        return "context size exceeded"
    if status in (200, 400, 422) and _FILTER.search(text or ""):
        return "prompt caught by a content filter"
    if status in (200, 400, 403, 422) and _MODERATION.search(text or ""):
        return "prompt caught by a content filter"
    return None


def where(url):
    """scheme://host:port/path of a URL: no user info, no query (keys hide there), no fragment."""
    try:
        u = urlsplit(str(url))
        host = u.hostname or ""
        port = u.port
    except ValueError:
        return str(url).split("?")[0].split("@")[-1]
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(u.scheme)
    port = port or default
    return f"{u.scheme}://{host}{f':{port}' if port else ''}{u.path}"


def connect_failure(exc):
    """(cause, hint) for an httpx exception raised before any answer, or None when it is transient
    (a timeout, a dropped connection: retry those)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return f"bad URL ({text})", "the URL must start with http:// or https://"
    if isinstance(exc, httpx.ConnectError):
        low = text.lower()
        if "name or service not known" in low or "nodename nor servname" in low or "no address" in low \
                or "temporary failure in name resolution" in low or "getaddrinfo" in low:
            return "unknown host", "check the host name in the URL"
        if "certificate" in low or "ssl" in low:
            return f"TLS failed ({text[:120]})", "http:// vs https://? a self-signed certificate?"
        return "connection refused", "is the server running, and on this port?"
    return None


def is_html(content_type, text):
    """True for an HTML page (a login page, a proxy's error page) where a JSON reply was expected."""
    head = (text or "")[:200].lstrip().lower()
    return "html" in (content_type or "").lower() or head.startswith(("<!doctype", "<html"))


def status_hint(status, message, path):
    """A hint for a refused status, from the server's own message where it says more; or None."""
    low = (message or "").lower()
    if "chat/completions" in low and not path.rstrip("/").endswith("chat/completions"):
        return "this is a chat model: did you mean v1/chat/completions? try --chat"
    if "insufficient_quota" in low or "exceeded your current quota" in low:
        return "the account's quota is spent: add credit, or use another key"
    if status == 401:
        return "authentication failed: check OPENAI_API_KEY / --openai_key (AZURE_OPENAI_API_KEY with --api_type azure)"
    if status == 403:
        return "permission denied: this key may not use this model or endpoint"
    if status == 404 or (status == 200 and _NO_ROUTE.search(low)):
        return missing_v1(path) or ("check --model and --base_url" if status == 404 else None)
    return None


# how servers say "no such route": LM Studio's 200 {"error": "Unexpected endpoint or method."},
# Express's "Cannot POST", plain 404 texts
_NO_ROUTE = re.compile(r"unexpected endpoint|cannot post|no route|not found|unknown (?:endpoint|route|url)", re.I)


def missing_v1(path):
    """'did you mean …/v1?' when `path` (scheme://host:port/path of the request) has no /v1 and no
    Azure /openai/ part, else None."""
    if not path or "/v1/" in path or "/openai/" in path:
        return None
    base = re.sub(r"/(?:chat/)?completions/?$", "", path.rstrip("/"))
    return f"did you mean --base_url {base}/v1? OpenAI-compatible servers (LM Studio, vLLM, llama.cpp, Ollama) " \
           f"serve the API under /v1"
