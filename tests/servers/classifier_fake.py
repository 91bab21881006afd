"""A fake LLM that answers classifier prompts (the spec's template or ours) with a task name.

It is OpenAIFake (every knob of it: 429s, 500s, hangs, keys...), with the reply text replaced:
the query is cut out of the prompt and `answer(query)` says what the model replies, a task name
by default (see `TaskOracle`). Decorations ride in the query, one tag each, so tests can plant
the way real chat models answer:

    [[bold]]       **open_qa**                     [[sentence]]  The task is: open_qa.
    [[spaced]]     Open QA                         [[think]]     <think>…closed_qa?…</think> open_qa
    [[chatty]]     a paragraph naming no task      [[json]]      {"task": "open_qa"}
    [[empty]]      an empty reply                  [[abort]]     open_qa, finish_reason "error"
                                                   (the generation broke off upstream: OpenRouter)

Knobs: `answer` (query -> task name, or None for the fallback `default`), `schema_400` (answer
400 "response_format is not supported" to a request asking for structured output, as some
servers do), `schema_json` (honour structured output: reply {"task": ...} as JSON), `thinks`
(a reasoning model that spends this many tokens thinking: a smaller token limit gets an empty
reply cut at the limit). OpenAIFake's server classes (reasoning, exclusive_sampling,
content_parts, stream, error_200...) apply as they do there. Queries are recorded in `queries`,
in arrival order, so tests can check which records were sent.
"""

import json
import re

from tests.servers.openai_fake import OpenAIFake

_SPEC_QUERY = re.compile(r"\[User's query start\]\n(.*)\n\[User's query end\]", re.DOTALL)
_OUR_QUERY = re.compile(r"Request:\n<<<\n(.*)\n>>>", re.DOTALL)
CHATTY = ("This request is asking the assistant to produce something fairly open-ended, and several of the "
          "categories could plausibly apply here depending on how one reads it.")


def query_of(body):
    """The user's query inside a classifier request body (either prompt), or "" when none is found."""
    text = body.get("prompt") or "\n".join(str(m.get("content", "")) for m in body.get("messages") or ())
    match = _SPEC_QUERY.search(text) or _OUR_QUERY.search(text)
    return match.group(1) if match else ""


def decorate(task, query):
    """The reply text for `task`, dressed as the first tag in the query asks."""
    if "[[bold]]" in query:
        return f"**{task}**"
    if "[[sentence]]" in query:
        return f"The task is: {task}."
    if "[[spaced]]" in query:
        return task.replace("_", " ").title()
    if "[[think]]" in query:
        return f"<think>\nIt mentions a passage, so maybe closed_qa... no.\n</think>\n\n{task}"
    if "[[chatty]]" in query:
        return CHATTY
    if "[[json]]" in query:
        return json.dumps({"task": task})
    if "[[empty]]" in query:
        return ""
    return f" {task}\n"


class ClassifierFake(OpenAIFake):
    def __init__(self, answer=None, schema_400=False, schema_json=False, thinks=None, **kw):
        super().__init__(**kw)
        self.answer = answer or (lambda query: None)
        self.schema_400, self.schema_json, self.thinks = schema_400, schema_json, thinks
        self.queries = []

    def respond(self, method, path, headers, body):
        req = json.loads(body or b"{}") if method == "POST" else {}
        if self.schema_400 and req.get("response_format"):
            return self._error(400, "response_format is not supported by this model")
        status, hdrs, out = super().respond(method, path, headers, body)
        if status != 200 or method != "POST" or b'"error"' in out[:200]:
            return status, hdrs, out
        query = query_of(req)
        with self.lock:
            self.queries.append(query)
        task = self.answer(query) or "default"
        text = (json.dumps({"task": task}) if self.schema_json and req.get("response_format")
                else decorate(task, query))
        finish = "error" if "[[abort]]" in query else "stop"
        limit = req.get("max_completion_tokens") or req.get("max_tokens")
        if self.thinks and limit and limit < self.thinks:  # a reasoning model spent the budget thinking
            text, finish = "", "length"
        chat = "messages" in req
        choice = {"index": 0, "finish_reason": finish,
                  **({"message": {"role": "assistant", "content": self._content(text)}} if chat else {"text": text})}
        if "event-stream" in str(hdrs.get("Content-Type", "")):
            return self._events([choice], chat)
        reply = json.loads(out)
        reply["choices"] = [choice]
        return status, hdrs, json.dumps(reply).encode()
