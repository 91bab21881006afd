"""A fake OpenAI-compatible server: POST /v1/chat/completions (and /v1/completions).

Answers deterministically: candidate i of a request is a two-part reply whose revised response
names the request (a hash of its prompt) and has a known number of words, so tests can tell
which candidate is the longest. Knobs:

    latency          seconds to wait before each answer
    throttle_first   the first k requests get 429 with `Retry-After: retry_after`
    rpm_cap          a server-side rate limit (token bucket, 1 s burst); excess gets 429 with
                     Retry-After / retry-after-ms saying when a slot frees up
    fail_first       the first k requests get 500
    require_v1       serve only under /v1/: elsewhere LM Studio's HTTP 200 {"error": "Unexpected endpoint or
                     method. (POST /chat/completions)"}, or with require_v1="404" vLLM's 404 {"detail": "Not Found"}
    fail_during      (start, end): every request arriving between those seconds after the first
                     request gets 500 (a blip: at the start, or mid-run)
    malformed_first  the first k requests get replies without a "Revised response:" part
    ignore_n         always answer one choice, whatever n asks (like some local servers)
    refuse_n         answer 400 to any n other than 1 (like llama.cpp's server)
    api_key          when set, other keys get 401 whose message echoes the key it was sent
    echo_key         put the caller's key into 500 error messages (for redaction tests)
    refuse           (status, message, code): every request gets this error, like a misconfigured
                     endpoint: (404, "This is a chat model…"), (429, "…", "insufficient_quota")
    refuse_after     answer that many requests normally before `refuse` starts (a key revoked mid-run)
    html             answer every request with a 200 HTML login page (a proxy, a web UI)
    hang_all         never answer anything (accepts the connection, then silence)
    no_system_role   400 "System role not supported" for a chat with a system message (Gemma)
    ratelimit_headers  with rpm_cap: x-ratelimit-{limit,remaining,reset}-requests on every answer
    random_429       that share of requests, drawn at random (seeded), get 429 with Retry-After
    azure            serve Azure OpenAI's shape: POST /openai/deployments/{dep}/chat/completions
                     ?api-version=…, key in the `api-key` header; `deployment` names the one that exists

    replay           a recorded reply ({"status", "retry_after_header", "body"}, as in
                     tests/fixtures/cases/reply_*.json) sent back to every request
    faithful         the revised response is the original answer itself, restructured (its
                     sentences as a bulleted list): a rewrite every filter should accept

Servers as they really are, one knob per class (SERVER_CLASSES names them for the README table):

    reasoning        OpenAI's reasoning models (o1, o3, gpt-5): 400 unsupported_parameter for
                     max_tokens and top_p, 400 unsupported_value for any temperature but 1
    reasoning_tokens with reasoning: the model spends this many tokens thinking before it answers; when
                     max_completion_tokens leaves no room after them, the reply is empty and cut
                     ("length"); usage.completion_tokens_details.reasoning_tokens says what it spent
    exclusive_sampling  Claude behind a gateway (Bedrock via LiteLLM): 400 when temperature and top_p
                     come together
    content_parts    Mistral's Magistral: content is a list, a thinking part then a text part
    stream           "default": server-sent events unless the body says "stream": false (LM Studio and
                     some gateways); "always": events whatever the body says
    upper_finish     Gemini: finish reasons in upper case ("STOP", "MAX_TOKENS")
    context_chars    a small-context llama.cpp server: a prompt longer than this many characters gets
                     llama.cpp's "exceeds the available context size", as `context_status` (400, or 500
                     as older builds send it)
    context_tokens   vLLM with --max-model-len N: a prompt (len // 4 tokens) plus the token limit asked
                     over N gets vLLM's 400 naming the numbers ("… you requested 4573 tokens (477 in
                     the messages, 4096 in the completion)"; context_wording="new": "… and your request
                     has 477 input tokens (4096 > 4096 - 477)")
    prompt_filter    Azure OpenAI's prompt content filter: a prompt holding this word gets 400
                     content_filter (ResponsibleAIPolicyViolation); with filter_style="openrouter",
                     OpenRouter's moderation instead: 403 "… flagged by moderation" with
                     metadata.reasons and flagged_input
    max_body         nginx in front: a body over this many bytes gets nginx's 413 HTML page
    error_200        (code, message): every request gets HTTP 200 carrying {"error": …} (OpenRouter)
    gemini_rpm       (k, window): at most k requests per `window` s; the rest get Gemini's free-tier 429,
                     [{"error": {"status": "RESOURCE_EXHAUSTED", "message": "You exceeded your current quota
                     …", "details": [RetryInfo retryDelay]}}] with the seconds left in the window
    echo_auth        the revised response repeats the request's Authorization header (a proxy or model
                     echoing it)

Per-record faults ride in the prompt: a prompt containing [[hang]] is never answered,
[[malformed]] always gets a reply without the label, [[error500]] always gets a 500.
Misbehaviours of real models, one tag each (see MISBEHAVIOURS), planted around the faithful
rewrite: [[think]] a <think> block drafting its own "Revised response:" before the real reply,
[[think_open]] the opening <think> left to the chat template (only "</think>" in the reply),
[[think_unclosed]] a reply that is all thinking, [[truncate]] the reply cut mid-sentence with
finish_reason "length", [[fence]] the whole reply in a ``` fence, [[fence_revised]] only the
revised part fenced, [[refusal_field]] null content and a `refusal`, [[null_content]] null
content, [[refuse_label]] "Revised response: I'm sorry, but I can't help…", [[echo]] the tail
of the prompt handed back, [[new_number]] a number changed and one added, [[new_name]] an
invented person and year, [[same]] one short text whatever the record, [[keep]] the valve
line KEEP ORIGINAL, [[reasoning_content]] the answer as content and a draft in the separate
`reasoning_content` field, [[im_end]] the chat template's end token after the answer,
[[gemma_eos]], [[llama4_eot]], [[cohere_eot]] those families' end tokens after it (END_TOKENS),
[[run_on]] the model running past its turn into a new one, [[content_filter]] a reply cut by
the provider's filter (finish_reason content_filter), [[error200]] HTTP 200 carrying an error.
[[finish=REASON]] half the reply with that finish reason, as sent (OpenRouter's "error", vLLM's
"abort", Gemini's "OTHER", Cohere's "ERROR_TOXIC"); [[stream_cut]] half the reply as server-sent
events that end with neither a finish reason nor `data: [DONE]` (a proxy cut the stream);
[[no_choices]] HTTP 200 with `choices: []` (how a blocked prompt can look).
"""

import hashlib
import json
import math
import random
import re
import threading
import time

from tests.servers.base import FakeServer, Hang

CANDIDATE_WORDS = (3, 1, 4, 1, 5, 9, 2, 6)  # words in candidate i's revised response


def prompt_text(req):
    if "messages" in req:
        return "\n".join(str(m.get("content", "")) for m in req["messages"])
    return str(req.get("prompt", ""))


REFUSAL = "I'm sorry, but I can't help with that request."
SAME_TEXT = "Sure! Here is a clear, well-structured answer to your question."
MISBEHAVIOURS = ("think", "think_open", "think_unclosed", "truncate", "fence", "fence_revised", "refusal_field",
                 "null_content", "refuse_label", "echo", "new_number", "new_name", "same", "keep",
                 "reasoning_content", "im_end", "run_on", "content_filter", "gemma_eos", "llama4_eot", "cohere_eot")
END_TOKENS = {"gemma_eos": "<end_of_turn>\n<eos>", "llama4_eot": "<|eot|>", "cohere_eot": "<|END_OF_TURN_TOKEN|>"}
NGINX_413 = (b"<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n<center><h1>413 "
             b"Request Entity Too Large</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n</body>\r\n</html>\r\n")
CONTEXT_MESSAGE = "the request exceeds the available context size, try increasing it"
AZURE_FILTER_MESSAGE = ("The response was filtered due to the prompt triggering Azure OpenAI's content management "
                        "policy. Please modify your prompt and retry. To learn more about our content filtering "
                        "policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766")

# The server classes of the README's "Servers it has run against" table, as knobs of this fake.
SERVER_CLASSES = {
    "OpenAI reasoning model (o-series, gpt-5) under a name no table knows": dict(reasoning=True),
    "Claude behind a LiteLLM/Bedrock gateway": dict(exclusive_sampling=True),
    "llama.cpp server (n above 1 refused)": dict(refuse_n=True),
    "Magistral (content parts)": dict(content_parts=True),
    "streams unless told not to": dict(stream="default"),
    "Gemini's upper-case finish reasons": dict(upper_finish=True),
}


def original_answer(prompt):
    """The [Original answer] block of a rewrite prompt ("" when the prompt has none)."""
    _, found, rest = prompt.partition("[Original answer]\n")
    if not found:
        return ""
    end = min(i for i in (rest.find("\n[Evidence]"), rest.find("\nYour job:"), len(rest)) if i >= 0)
    return rest[:end].strip()


def faithful_text(prompt):
    """The original answer's sentences as bullets: new layout, nothing added, nothing lost."""
    sentences = [s for s in re.split(r"(?<=[.!?])\s+|\n+", original_answer(prompt)) if s.strip()]
    return "\n".join(f"- {s.strip()}" for s in sentences)


def misbehaviour(prompt):
    """The first [[tag]] of MISBEHAVIOURS in the prompt, or None."""
    return next((tag for tag in MISBEHAVIOURS if f"[[{tag}]]" in prompt), None)


def planted_reply(tag, prompt):
    """(content, extra message fields, finish_reason) of a reply showing misbehaviour `tag`."""
    good = faithful_text(prompt)
    reply = f"Reasoning: the layout asks for a list, so each sentence becomes a bullet.\n\nRevised response: {good}"
    if tag == "think":
        return (f"<think>\nThe user wants a list. Let me draft it.\nRevised response: DRAFT-NOT-FINAL\n"
                f"Hmm, better keep every sentence.\n</think>\n\n{reply}", {}, "stop")
    if tag == "think_open":
        return f"Let me draft.\nRevised response: DRAFT-NOT-FINAL\n</think>\n{reply}", {}, "stop"
    if tag == "think_unclosed":
        return "<think>\nThe user wants a list. Revised response: DRAFT-NOT-FINAL and then", {}, "stop"
    if tag == "truncate":
        return reply[: len(reply) - max(3, len(good) // 2)], {}, "length"
    if tag == "fence":
        return f"```\n{reply}\n```", {}, "stop"
    if tag == "fence_revised":
        return f"Reasoning: bullets.\n\nRevised response:\n```markdown\n{good}\n```", {}, "stop"
    if tag == "refusal_field":
        return None, {"refusal": "I'm sorry, I cannot assist with that request."}, "stop"
    if tag == "null_content":
        return None, {}, "stop"
    if tag == "refuse_label":
        return f"Reasoning: I should not answer this.\n\nRevised response: {REFUSAL}", {}, "stop"
    if tag == "echo":
        return prompt[-400:], {}, "stop"
    if tag == "new_number":
        changed = re.sub(r"\d+", lambda m: str(int(m.group()) * 2 + 6), good, count=1)
        return f"Reasoning: bullets.\nRevised response: {changed}\n- Budget: $50.", {}, "stop"
    if tag == "new_name":
        return f"{reply}\n- This was first described by Margaret Holloway in 1931.", {}, "stop"
    if tag == "same":
        return f"Reasoning: short.\nRevised response: {SAME_TEXT}", {}, "stop"
    if tag == "keep":
        return "KEEP ORIGINAL", {}, "stop"
    if tag == "reasoning_content":
        return reply, {"reasoning_content": "Revised response: DRAFT-NOT-FINAL"}, "stop"
    if tag == "im_end":
        return f"{reply}<|im_end|>\n<|endoftext|>", {}, "stop"
    if tag in END_TOKENS:
        return f"{reply}{END_TOKENS[tag]}", {}, "stop"
    if tag == "run_on":
        return f"{reply}<|im_end|>\n<|im_start|>user\nThanks! Now add a joke.<|im_end|>", {}, "stop"
    if tag == "content_filter":
        return reply[: len(reply) - max(3, len(good) // 2)], {}, "content_filter"
    raise ValueError(tag)


_FINISH_TAG = re.compile(r"\[\[finish=([\w-]+)\]\]")


def cut_reply(prompt):
    """The faithful reply cut in half (what a provider that stops mid-answer sends)."""
    good = faithful_text(prompt)
    reply = f"Reasoning: the layout asks for a list, so each sentence becomes a bullet.\n\nRevised response: {good}"
    return reply[: len(reply) - max(3, len(good) // 2)]


def revised_text(prompt, i):
    tag = hashlib.sha1(prompt.encode()).hexdigest()[:10]
    return f"rewrite-{tag}-{i}" + " word" * CANDIDATE_WORDS[i % len(CANDIDATE_WORDS)]


class OpenAIFake(FakeServer):
    def __init__(self, latency=0.0, throttle_first=0, retry_after=1, rpm_cap=None, fail_first=0,
                 malformed_first=0, ignore_n=False, refuse_n=False, api_key=None, echo_key=False, refuse=None,
                 refuse_after=0, html=False, hang_all=False, no_system_role=False, ratelimit_headers=False,
                 random_429=0.0, azure=False, deployment="gpt-4o-dep", faithful=False, replay=None,
                 reasoning=False, exclusive_sampling=False, content_parts=False, stream=None, upper_finish=False,
                 context_chars=None, context_status=400, prompt_filter=None, max_body=None, error_200=None,
                 echo_auth=False, filter_style="azure", gemini_rpm=None, fail_during=None, context_tokens=None,
                 context_wording="old", require_v1=False,
                 reasoning_tokens=0, **kw):
        super().__init__(**kw)
        self.reasoning, self.exclusive_sampling, self.content_parts = reasoning, exclusive_sampling, content_parts
        self.stream, self.upper_finish = stream, upper_finish
        self.context_chars, self.context_status, self.prompt_filter = context_chars, context_status, prompt_filter
        self.filter_style, self.gemini_rpm, self._window = filter_style, gemini_rpm, [time.monotonic(), 0]
        self.fail_during, self._born = fail_during, None  # blip times count from the first request
        self.context_tokens, self.context_wording, self.require_v1 = context_tokens, context_wording, require_v1
        self.reasoning_tokens = reasoning_tokens
        self.max_body, self.error_200, self.echo_auth = max_body, error_200, echo_auth
        self.refuse, self.refuse_after, self.html, self.hang_all = refuse, refuse_after, html, hang_all
        self.no_system_role, self.ratelimit_headers = no_system_role, ratelimit_headers
        self.random_429, self._rng = random_429, random.Random(13)
        self.azure, self.deployment = azure, deployment
        self.latency = latency
        self.throttle_first = throttle_first
        self.retry_after = retry_after
        self.fail_first = fail_first
        self.malformed_first = malformed_first
        self.ignore_n = ignore_n
        self.refuse_n = refuse_n
        self.api_key = api_key
        self.echo_key = echo_key
        self.faithful = faithful
        self.replay = replay
        self.rpm_cap = rpm_cap
        self._rate = (rpm_cap or 0) / 60.0
        self._tokens = max(1.0, self._rate)
        self._stamp = time.monotonic()
        self._rate_lock = threading.Lock()
        self._arrivals = 0
        self.status_counts = {}
        self.ok_times = []  # monotonic time of every 200

    # ------------------------------------------------------------ helpers

    def _count(self, status):
        with self.lock:
            self.status_counts[status] = self.status_counts.get(status, 0) + 1
            if status == 200:
                self.ok_times.append(time.monotonic())

    def _reply(self, status, obj, headers=None):
        self._count(status)
        return self.json_body(obj, status, headers)

    def _error(self, status, message, headers=None):
        return self._reply(status, {"error": {"message": message, "type": "fake", "code": status}}, headers)

    def _rate_wait(self):
        """(0 when a request may pass the rpm cap now (and takes a slot), else seconds to wait;
        the x-ratelimit headers that answer carries when ratelimit_headers is on)."""
        with self._rate_lock:
            now = time.monotonic()
            cap = max(1.0, self._rate)
            self._tokens = min(cap, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            wait = 0.0
            if self._tokens >= 1.0:
                self._tokens -= 1.0
            else:
                wait = (1.0 - self._tokens) / self._rate
            headers = {}
            if self.ratelimit_headers:
                headers = {"x-ratelimit-limit-requests": int(self.rpm_cap),
                           "x-ratelimit-remaining-requests": int(self._tokens),
                           "x-ratelimit-reset-requests": f"{(cap - self._tokens) / self._rate:.3f}s"}
            return wait, headers

    # ------------------------------------------------------------ the endpoint

    def _azure_route(self, path, headers):
        """None when an Azure-shaped request is fine, else the error answer Azure would give."""
        route, _, query = path.partition("?")
        parts = route.strip("/").split("/")  # openai deployments DEP chat completions
        if parts[:2] != ["openai", "deployments"] or len(parts) < 4 or "api-version=" not in query:
            return self._error(404, "Resource not found")
        if parts[2] != self.deployment:
            return self._reply(404, {"error": {"code": "DeploymentNotFound", "message":
                                               f"The API deployment for this resource does not exist: {parts[2]}"}})
        sent = {k.lower(): v for k, v in headers.items()}.get("api-key")
        if self.api_key is not None and sent != self.api_key:
            return self._reply(401, {"error": {"code": "401", "message": "Access denied due to invalid subscription "
                                               "key or wrong API endpoint."}})
        return None

    def respond(self, method, path, headers, body):
        if method == "GET" and path == "/stats":  # for benches running the server in another process
            with self.lock:
                return self.json_body({"status_counts": self.status_counts, "ok_times": self.ok_times})
        if self.hang_all:
            raise Hang()
        if self.html:
            self._count(200)
            return 200, {"Content-Type": "text/html; charset=utf-8"}, (
                b"<!DOCTYPE html><html><head><title>Sign in - Example Portal</title></head>"
                b"<body><form>user <input name=u> password <input type=password></form></body></html>")
        if self.azure:
            refused = self._azure_route(path, headers)
            if refused:
                return refused
        elif method != "POST" or not path.rstrip("/").endswith(("/chat/completions", "/completions")):
            return self._error(404, f"no route {method} {path}")
        elif self.require_v1 and not path.startswith("/v1/"):
            if self.require_v1 == "404":
                return self._reply(404, {"detail": "Not Found"})
            return self._reply(200, {"error": f"Unexpected endpoint or method. ({method} {path})"})
        sent_key = (headers.get("Authorization") or headers.get("authorization") or "").removeprefix("Bearer ")
        if self.api_key is not None and not self.azure and sent_key != self.api_key:
            return self._error(401, f"Incorrect API key provided: {sent_key}.")
        with self.lock:
            self._arrivals += 1
            nth = self._arrivals  # 1-based arrival number of this request
        if self.refuse and nth > self.refuse_after:
            status, message, *code = self.refuse
            return self._reply(status, {"error": {"message": message, "type": code[0] if code else "invalid_request_error",
                                                  "code": code[0] if code else None}})
        if self.gemini_rpm:
            refused = self._gemini_rpm()
            if refused:
                return refused
        if nth <= self.throttle_first:
            return self._error(429, "Rate limit reached (test)", {"Retry-After": self.retry_after})
        if self.random_429:
            with self.lock:
                unlucky = self._rng.random() < self.random_429
            if unlucky:
                return self._error(429, "Rate limit reached (random)", {"Retry-After": self.retry_after})
        limit_headers = {}
        if self.rpm_cap:
            wait, limit_headers = self._rate_wait()
            if wait:
                return self._error(429, "Rate limit reached (rpm cap)",
                                   {"Retry-After": math.ceil(wait), "retry-after-ms": int(wait * 1000) + 1,
                                    **limit_headers})
        if self.replay:
            headers = {"Retry-After": self.replay["retry_after_header"]} if self.replay.get("retry_after_header") else {}
            return self._reply(self.replay["status"], self.replay["body"], headers)
        if self.max_body and len(body or b"") > self.max_body:
            self._count(413)
            return 413, {"Content-Type": "text/html"}, NGINX_413
        req = json.loads(body or b"{}")
        prompt = prompt_text(req)
        refused = self._refuses(req, prompt)
        if refused:
            return refused
        if self.no_system_role and any(m.get("role") == "system" for m in req.get("messages") or ()):
            return self._error(400, "System role not supported")
        if self.refuse_n and int(req.get("n") or 1) != 1:
            return self._error(400, "Only one completion choice is allowed")
        if "[[hang]]" in prompt:
            raise Hang()
        if self.fail_during:
            with self.lock:
                self._born = self._born or time.monotonic()
        blip = self.fail_during and self.fail_during[0] <= time.monotonic() - self._born < self.fail_during[1]
        if nth <= self.fail_first or "[[error500]]" in prompt or blip:
            detail = f" (key {sent_key})" if self.echo_key else ""
            return self._error(500, f"Internal server error{detail}")
        if self.latency:
            time.sleep(self.latency)
        malformed = nth <= self.malformed_first or "[[malformed]]" in prompt
        chat = "messages" in req
        if "[[no_choices]]" in prompt:
            return self._reply(200, {"id": f"fake-{nth}", "object": "chat.completion", "choices": []})
        odd_finish = _FINISH_TAG.search(prompt)
        if odd_finish or "[[stream_cut]]" in prompt:
            finish = odd_finish.group(1) if odd_finish else None
            choices = [{"index": i, "finish_reason": finish,
                        "message": {"role": "assistant", "content": cut_reply(prompt)}}
                       for i in range(int(req.get("n") or 1))]
            if odd_finish:
                return self._reply(200, {"id": f"fake-{nth}", "object": "chat.completion", "choices": choices})
            return self._events(choices, chat, done=False)
        n = 1 if self.ignore_n else int(req.get("n") or 1)
        tag = misbehaviour(prompt)
        replies = [planted_reply(tag, prompt) if tag else
                   ("Here is a better answer, but I forgot the label." if malformed else
                    "Reasoning: the layout asks for a list, so each sentence becomes a bullet.\n\n"
                    f"Revised response: {faithful_text(prompt)}" if self.faithful else
                    f"Reasoning: the layout asks for a direct answer first.\nRevised response: {revised_text(prompt, i)}",
                    {}, "stop")
                   for i in range(n)]
        if self.echo_auth:
            replies = [(f"{t}\n(sent with {headers.get('Authorization') or headers.get('authorization')})", extra, f)
                       for t, extra, f in replies]
        if self.upper_finish:
            replies = [(t, extra, {"length": "MAX_TOKENS"}.get(f, f.upper())) for t, extra, f in replies]
        choices = [{"index": i, "finish_reason": finish,
                    **({"message": {"role": "assistant", "content": self._content(t), **extra}} if chat
                       else {"text": t or ""})}
                   for i, (t, extra, finish) in enumerate(replies)]
        usage_details = {}
        if self.reasoning_tokens:
            budget = req.get("max_completion_tokens") or 0
            spent = min(budget, self.reasoning_tokens)
            usage_details = {"completion_tokens_details": {"reasoning_tokens": spent}}
            if budget < self.reasoning_tokens + 200:  # no room left to answer
                choices = [{**c, "finish_reason": "length", "message": {"role": "assistant", "content": ""}}
                           for c in choices]
        if self.stream == "always" or (self.stream == "default" and req.get("stream") is not False):
            return self._events(choices, chat)
        return self._reply(200, {"id": f"fake-{nth}", "object": "chat.completion" if chat else "text_completion",
                                 "created": int(time.time()), "model": req.get("model", "fake"),
                                 "choices": choices,
                                 "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": 10 * n,
                                           "total_tokens": len(prompt.split()) + 10 * n, **usage_details}},
                           limit_headers)

    def _gemini_rpm(self):
        """Gemini's per-minute 429 (worded as a spent quota) beyond k requests a window, else None."""
        k, window = self.gemini_rpm
        with self.lock:
            now = time.monotonic()
            if now - self._window[0] >= window:
                self._window[:] = [now, 0]
            self._window[1] += 1
            if self._window[1] <= k:
                return None
            left = max(1, math.ceil(window - (now - self._window[0])))
        return self._reply(429, [{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": (
            "You exceeded your current quota, please check your plan and billing details. For more information on "
            "this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."), "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                 "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{left}s"}]}}])

    def _refuses(self, req, prompt):
        """The refusal of a server class for this request (see the knobs), or None."""
        def unsupported(param, message, code="unsupported_parameter"):
            return self._reply(400, {"error": {"message": message, "type": "invalid_request_error", "param": param,
                                               "code": code}})
        if self.reasoning:
            if "max_tokens" in req:
                return unsupported("max_tokens", "Unsupported parameter: 'max_tokens' is not supported with this "
                                                 "model. Use 'max_completion_tokens' instead.")
            if req.get("temperature", 1) != 1:
                return unsupported("temperature", f"Unsupported value: 'temperature' does not support "
                                                  f"{req['temperature']} with this model. Only the default (1) value "
                                                  f"is supported.", "unsupported_value")
            if req.get("top_p", 1) != 1:
                return unsupported("top_p", "Unsupported parameter: 'top_p' is not supported with this model.")
        if self.exclusive_sampling and "temperature" in req and "top_p" in req:
            return self._reply(400, {"error": {"message": 'litellm.BadRequestError: BedrockException - {"message":'
                                               '"The model returned the following errors: `temperature` and `top_p` '
                                               'cannot both be specified for this model. Please use only one."}',
                                               "type": None, "param": None, "code": "400"}})
        if self.context_chars and len(prompt) > self.context_chars:
            return self._reply(self.context_status, {"error": {
                "code": self.context_status, "message": CONTEXT_MESSAGE, "type": "exceed_context_size_error",
                "n_prompt_tokens": len(prompt) // 4, "n_ctx": self.context_chars // 4}})
        if self.context_tokens:
            size, prompt_tokens = self.context_tokens, len(prompt) // 4
            want = req.get("max_tokens") or req.get("max_completion_tokens") or 0
            if prompt_tokens > size:
                message = (f"This model's maximum context length is {size} tokens. However, your request has "
                           f"{prompt_tokens} input tokens. Please reduce the length of the input messages.")
            elif prompt_tokens + want > size and self.context_wording == "new":
                message = (f"'max_tokens' or 'max_completion_tokens' is too large: {want}. This model's maximum "
                           f"context length is {size} tokens and your request has {prompt_tokens} input tokens "
                           f"({want} > {size} - {prompt_tokens}). None")
            elif prompt_tokens + want > size:
                message = (f"This model's maximum context length is {size} tokens. However, you requested "
                           f"{prompt_tokens + want} tokens ({prompt_tokens} in the messages, {want} in the "
                           f"completion). Please reduce the length of the messages or completion.")
            else:
                message = None
            if message:
                return self._reply(400, {"object": "error", "message": message, "type": "BadRequestError",
                                         "param": None, "code": 400})
        if self.prompt_filter and self.prompt_filter in prompt and self.filter_style == "openrouter":
            return self._reply(403, {"error": {"code": 403, "message": "openai/gpt-4o-mini requires moderation on "
                                               "OpenRouter. Your input was flagged for \"violence\"", "metadata": {
                                                   "reasons": ["violence"], "flagged_input": prompt[-100:],
                                                   "provider_name": "OpenAI", "model_slug": "openai/gpt-4o-mini"}}})
        if self.prompt_filter and self.prompt_filter in prompt:
            return self._reply(400, {"error": {"message": AZURE_FILTER_MESSAGE, "type": None, "param": "prompt",
                                               "code": "content_filter", "status": 400, "innererror": {
                                                   "code": "ResponsibleAIPolicyViolation",
                                                   "content_filter_result": {"violence": {"filtered": True,
                                                                                          "severity": "medium"}}}}})
        if self.error_200 or "[[error200]]" in prompt:
            code, message = self.error_200 or (502, "Provider returned error")
            return self._reply(200, {"error": {"message": message, "code": code,
                                               "metadata": {"provider_name": "Example"}}})
        return None

    def _content(self, text):
        if not self.content_parts or text is None:
            return text
        return [{"type": "thinking", "thinking": [{"type": "text", "text": "Revised response: DRAFT-NOT-FINAL"}]},
                {"type": "text", "text": text}]

    def _events(self, choices, chat, done=True):
        """The choices as server-sent events: a role chunk, the content in pieces, the finish reason
        (none when it is None), then `data: [DONE]` (not when `done` is False: a cut stream)."""
        self._count(200)
        events = []
        for c in choices:
            text = c["message"]["content"] if chat else c["text"]
            pieces = [text[k:k + 7] for k in range(0, len(text or ""), 7)]
            for piece in pieces:
                delta = {"delta": {"content": piece}} if chat else {"text": piece}
                events.append({"choices": [{"index": c["index"], **delta, "finish_reason": None}]})
            if c["finish_reason"] is not None:
                events.append({"choices": [{"index": c["index"], "delta": {}, "finish_reason": c["finish_reason"]}]})
        body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + ("data: [DONE]\n\n" if done else "")
        return 200, {"Content-Type": "text/event-stream"}, body.encode()


def main():
    """`python -m tests.servers.openai_fake --latency 1 --rpm_cap 600`: serve until stdin closes,
    printing the base URL on the first line (benches run it in its own process, as a real
    endpoint would be)."""
    import argparse
    import sys

    p = argparse.ArgumentParser()
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--rpm_cap", type=float, default=None)
    p.add_argument("--ratelimit_headers", action="store_true")
    p.add_argument("--random_429", type=float, default=0.0)
    p.add_argument("--retry_after", type=float, default=1)
    args = p.parse_args()
    with OpenAIFake(latency=args.latency, rpm_cap=args.rpm_cap, ratelimit_headers=args.ratelimit_headers,
                    random_429=args.random_429, retry_after=args.retry_after,
                    max_requests=1_000_000, max_seconds=3600) as srv:
        print(srv.url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
