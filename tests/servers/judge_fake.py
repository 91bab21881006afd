"""A fake faithfulness judge: an OpenAI-compatible POST /v1/chat/completions that reads the
judge prompt of realign.judge and answers with a verdict.

It judges by words, deterministically: a sentence (headings are not claims) of the [Edited answer] with a content word
(4 letters or more, outside a small list of layout words) that the question, the original and
the evidence never use is "unsupported"; a sentence of the [Original answer] with a content
word the edited answer does not use is "lost". Knobs:

    structured     True: takes `response_format`; False: answers 400 "response_format is not
                   supported" to a request carrying it (llama.cpp builds, some gateways)
    style          how the verdict is written: "json" (the object alone), "fenced" (in a ```json
                   fence), "prose" (a sentence, then the object, then a sentence), "think" (a
                   <think> block first), "strings" (items as plain strings)
    throttle_first the first k requests get 429 with Retry-After: 1
    malformed_first the first k requests get a reply with no JSON in it
    truncate_first the first k requests get half a verdict and finish_reason "length"
    abort_first    the next k requests get a verdict finding nothing wrong and finish_reason "error"
                   (OpenRouter's word for a generation that broke off upstream)
    api_key        when set, other keys get 401
    latency        seconds before each answer

A prompt containing [[error500]] always gets a 500 (a record the judge never judges).
`self.formats` lists, per request, whether it carried response_format.
"""

import json
import re
import threading
import time

from tests.servers.base import FakeServer

LAYOUT = frozenset("""this that with from have will your into than then they them their there these those what
which when where step steps first next finally answer summary note here also more most such each about should
would could must just only very much many some answer original edited question overview""".split())


def _block(prompt, name):
    m = re.search(r"\[" + re.escape(name) + r"\]\n(.*?)(?=\n\[[A-Z][a-z]+(?: [a-z]+)*\]\n|\nThe edited answer was made|\Z)",
                  prompt, re.S)
    return m.group(1).strip() if m else ""


def _words(text):
    return {w for w in re.findall(r"[a-z]{4,}", text.lower()) if w not in LAYOUT}


def _stem(w):
    return w[:5]


def _sentences(text):
    """The sentences of `text`, headings left out (they are layout, not claims)."""
    lines = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return [s.strip(" -*>\t") for s in re.split(r"(?<=[.!?])\s+|\n+", lines) if len(s.strip(" -*>\t")) > 3]


def judge_text(prompt):
    """{"unsupported": [...], "lost": [...]} for one judge prompt."""
    question, original = _block(prompt, "Question"), _block(prompt, "Original answer")
    evidence, edited = _block(prompt, "Evidence"), _block(prompt, "Edited answer")
    source = {_stem(w) for w in _words(" ".join((question, original, evidence)))}
    target = {_stem(w) for w in _words(edited)}
    unsupported = [{"claim": s, "why": f"the original never mentions {w!r}"}
                   for s in _sentences(edited) for w in sorted(_words(s)) if _stem(w) not in source][:1]
    lost = [{"fact": s, "why": f"the edited answer drops {w!r}"}
            for s in _sentences(original) for w in sorted(_words(s)) if _stem(w) not in target][:1]
    return {"unsupported": unsupported, "lost": lost}


class JudgeFake(FakeServer):
    def __init__(self, structured=True, style="json", throttle_first=0, malformed_first=0, truncate_first=0,
                 abort_first=0, api_key=None, latency=0.0, **kw):
        super().__init__(**kw)
        self.structured, self.style, self.api_key, self.latency = structured, style, api_key, latency
        self.throttle_first, self.malformed_first, self.truncate_first = throttle_first, malformed_first, truncate_first
        self.abort_first = abort_first
        self.formats = []
        self._n = 0
        self._count_lock = threading.Lock()

    def _error(self, status, message, headers=None):
        return self.json_body({"error": {"message": message, "type": "invalid_request_error", "code": status}},
                              status, headers)

    def _verdict_text(self, verdict):
        body = json.dumps(verdict if self.style != "strings" else
                          {"unsupported": [x["claim"] for x in verdict["unsupported"]],
                           "lost": [x["fact"] for x in verdict["lost"]]})
        return {"json": body, "strings": body, "fenced": f"```json\n{body}\n```",
                "prose": f"Here is my verdict after reading both answers.\n{body}\nI hope this helps.",
                "think": f"<think>Let me list the claims {{\"draft\": 1}} one by one.</think>\n{body}"}[self.style]

    def respond(self, method, path, headers, body):
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            return self._error(404, f"no route {method} {path}")
        sent = (headers.get("Authorization") or headers.get("authorization") or "").removeprefix("Bearer ")
        if self.api_key is not None and sent != self.api_key:
            return self._error(401, "Incorrect API key provided.")
        req = json.loads(body or b"{}")
        with self._count_lock:
            self._n += 1
            nth = self._n
            self.formats.append("response_format" in req)
        if nth <= self.throttle_first:
            return self._error(429, "Rate limit reached (test)", {"Retry-After": 1})
        if "response_format" in req and not self.structured:
            return self._error(400, "'response_format' is not supported by this server")
        prompt = "\n".join(str(m.get("content", "")) for m in req.get("messages", []))
        if "[[error500]]" in prompt:
            return self._error(500, "Internal server error")
        if self.latency:
            time.sleep(self.latency)
        text, finish = self._verdict_text(judge_text(prompt)), "stop"
        if nth <= self.malformed_first:
            text = "The edited answer looks fine to me overall."
        elif nth <= self.malformed_first + self.truncate_first:
            text, finish = text[: len(text) // 2], "length"
        elif nth <= self.malformed_first + self.truncate_first + self.abort_first:
            text, finish = self._verdict_text({"unsupported": [], "lost": []}), "error"
        return self.json_body({"id": f"judge-{nth}", "object": "chat.completion", "created": int(time.time()),
                               "model": req.get("model", "fake-judge"),
                               "choices": [{"index": 0, "finish_reason": finish,
                                            "message": {"role": "assistant", "content": text}}],
                               "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": 40}})
