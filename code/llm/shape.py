"""The request body a chat/completions server accepts, learned from its own answers.

    shape = RequestShape.for_model("gpt-5-mini")  # a first guess from KNOWN_FAMILIES
    body = shape.body("gpt-5-mini", sampling, n)   # what to send now
    note = shape.learn(message, param, body)       # a 400 about `body`: the change made, or None
    shape.notes                                    # every change, for the run's summary

A body carries only what the caller set: `n` (left out at 1), `temperature`, `top_p` (left out
at 1.0, every server's default), the token limit, and `"stream": false` (some servers stream
unless told not to). Models refuse different parts of that:

- OpenAI's reasoning models (o1, o3, o4-mini, gpt-5) refuse `max_tokens` (they want
  `max_completion_tokens`, which also pays for their reasoning: REASONING_ROOM is added) and any
  temperature or top_p but the default;
- Claude behind a gateway (Bedrock, LiteLLM, Vertex) refuses `temperature` and `top_p` together;
- llama.cpp's server, some gateways and Gemini refuse `n` above 1;
- older servers refuse `max_completion_tokens`, or any field they do not know (pydantic's
  "Extra inputs are not permitted");
- servers without structured output refuse `response_format` (the judge's JSON schema).

KNOWN_FAMILIES is a first guess by model name, so that the common cases cost no refused
request; the server's answer decides. A 400 (or 422) whose message, or `param` field, names a
parameter we sent is learned for the rest of the run: the token limit moves to the other field
(or down to the most the model says it allows), `temperature` falls back to the server's
default, `top_p` is dropped beside `temperature`, `n` becomes one choice per call, `stream` and
`response_format` are left out. Each change is made once and noted; a refusal naming nothing we
can change is not learned (it stays the caller's error).
"""

import re
from dataclasses import dataclass, field

# (pattern on the model name, what the family refuses, why) — names may carry a gateway's prefix
# ("openai/o3-mini", "azure/gpt-5", "bedrock/anthropic.claude-3-5-sonnet", "us.anthropic.claude-…").
# A reasoning model spends part of max_completion_tokens thinking before it answers: the limit
# sent is the answer's (--target_length) plus this many tokens of room to think, doubled (up to
# MAX_REASONING_ROOM) when a reply comes back cut with its budget gone on reasoning. Only the
# tokens used are paid for.
REASONING_ROOM = 8192
MAX_REASONING_ROOM = 32768
REASONING = {"tokens_field": "max_completion_tokens", "temperature": False, "top_p": False,
             "reasoning_room": REASONING_ROOM}
KNOWN_FAMILIES = (
    (re.compile(r"(?:^|/)o[134](?:-|$)", re.I), REASONING,
     "OpenAI reasoning models take max_completion_tokens and only the default temperature"),
    (re.compile(r"(?:^|/)gpt-5(?:-(?:mini|nano|pro|codex)|-20\d\d|$)", re.I), REASONING,
     "OpenAI reasoning models take max_completion_tokens and only the default temperature"),
    (re.compile(r"claude|anthropic", re.I), {"top_p_beside_temperature": False},
     "Claude refuses temperature and top_p together"),
)

PARAMS = ("max_completion_tokens", "max_tokens", "temperature", "top_p", "stream", "n", "response_format")
_RESPONSE_FORMAT = re.compile(r"response_format|json_schema|structured output|json mode|grammar", re.I)
# "temperature and top_p cannot both be specified" (Anthropic), "… are mutually exclusive"
_TOGETHER = re.compile(r"\bboth\b|together|only one|mutually exclusive|at the same time|cannot be used with|"
                       r"not both|either", re.I)
# "supports at most 16384 completion tokens", "must be less than or equal to 8192", "maximum value is 4096"
_MOST = re.compile(r"(?:at most|less than or equal to|<=|maximum(?: value)?(?: allowed)?(?: is| of)?:?)\s*(\d{2,7})",
                   re.I)
# n refused without naming it as a parameter: llama.cpp, Gemini
_N_REFUSED = re.compile(r"only one completion choice|multiple candidates|candidate_?count|\bn must be 1\b"
                        r"|\bn\s*(?:>|must be|should be|can only be|is not)\b", re.I)


# what leaving each of these out means, for the note
_DROPPED = {"temperature": "temperature left to the server's default",
            "top_p": "top_p left to the server's default",
            "n": "one choice per call (n above 1 refused)",
            "stream": "'stream' left out",
            "response_format": "response_format left out (no structured output: replies read leniently)"}


def _named(name, text):
    """Whether a refusal's text names parameter `name` (`n` only quoted: the letter is everywhere)."""
    if name == "n":
        return bool(re.search(r"['\"`]n['\"`]|\bparameter n\b|\bfield n\b", text) or _N_REFUSED.search(text))
    if name == "response_format":
        return bool(_RESPONSE_FORMAT.search(text))
    return bool(re.search(rf"(?<![\w.]){name}(?![\w])", text))


@dataclass
class RequestShape:
    """What to send: which token-limit field, and which sampling fields the model accepts."""
    tokens_field: str | None = "max_tokens"  # or "max_completion_tokens"; None: both refused, send none
    max_tokens_cap: int | None = None         # the most the model said it allows
    temperature: bool = True
    top_p: bool = True
    top_p_beside_temperature: bool = True
    n: bool = True                            # False: one choice per call
    stream: bool = True                       # send "stream": false
    response_format: bool = True              # send a request's response_format (structured output)
    reasoning_room: int = 0                   # tokens added to max_completion_tokens for a reasoning model
    notes: list = field(default_factory=list)
    _refused_fields: set = field(default_factory=set)

    @classmethod
    def for_model(cls, model):
        """The first guess for `model` by its family (KNOWN_FAMILIES), noted when it changes anything."""
        shape = cls()
        for pattern, changes, why in KNOWN_FAMILIES:
            if pattern.search(model or ""):
                for key, value in changes.items():
                    setattr(shape, key, value)
                shape.notes.append(f"{model}: {_describe(changes)} (known family: {why}); a refusal would correct it")
                break
        return shape

    def body(self, model, sampling, n):
        """The JSON body (without messages/prompt) for `sampling`, asking `n` choices."""
        body = {"model": model}
        if n != 1 and self.n:  # refused: one choice per call (the caller asks again for the rest)
            body["n"] = n
        if sampling.temperature is not None and self.temperature:
            body["temperature"] = sampling.temperature
        if sampling.top_p is not None and sampling.top_p != 1.0 and self.top_p \
                and (self.top_p_beside_temperature or "temperature" not in body):
            body["top_p"] = sampling.top_p
        if sampling.max_tokens and self.tokens_field:
            cap = self.max_tokens_cap
            want = sampling.max_tokens + (self.reasoning_room if self.tokens_field == "max_completion_tokens" else 0)
            body[self.tokens_field] = min(want, cap) if cap else want
        if self.stream:
            body["stream"] = False
        return body

    def learn(self, message, param, body):
        """Learn from a refusal (400/422) of `body`: `message` is the server's text, `param` its
        `param` field if any. Returns the note of the change made, or None when the refusal names
        nothing of `body` that can change."""
        text = f"{param or ''} {message or ''}"
        if _named("temperature", text) and _named("top_p", text) and _TOGETHER.search(text):  # about the pair
            if "temperature" in body and "top_p" in body and self.top_p_beside_temperature:
                self.top_p_beside_temperature = False
                return self._note("top_p left out beside temperature", message)
            return None
        named = [p for p in PARAMS if p == param or (param is None and _named(p, text))]
        limits = [p for p in named if p in ("max_tokens", "max_completion_tokens")]
        if len(limits) > 1:  # "'max_tokens' is not supported … use 'max_completion_tokens' instead"
            named.remove(max(limits, key=lambda p: text.find(p)))
        for p in named:
            change = self._change(p, text, body) if p in body else None
            if change:
                return self._note(change, message)
        return None

    def _change(self, p, text, body):
        """Change what `p` refused, when the shape still sends it as `body` did; the change's words."""
        if p in ("max_tokens", "max_completion_tokens"):
            most = _MOST.search(text)
            if most:  # about the value: "supports at most 16384 completion tokens"
                if not 0 < int(most.group(1)) < body[p]:
                    return None
                self.max_tokens_cap = int(most.group(1))
                return f"{p} lowered to {self.max_tokens_cap}, the most the model allows"
            if self.tokens_field != p:
                return None
            self._refused_fields.add(p)
            other = "max_tokens" if p == "max_completion_tokens" else "max_completion_tokens"
            self.tokens_field = None if other in self._refused_fields else other
            if self.tokens_field == "max_completion_tokens" and not self.reasoning_room:
                self.reasoning_room = REASONING_ROOM  # only OpenAI's reasoning models ask for it
                return f"{p} sent as {other}, with {REASONING_ROOM} tokens of room to reason"
            return f"{p} sent as {other}" if self.tokens_field else "no token limit sent (both fields refused)"
        if p in _DROPPED and getattr(self, p):  # the shape's flag of the same name
            setattr(self, p, False)
            return _DROPPED[p]
        return None

    def more_reasoning_room(self, used, limit):
        """A reply came back cut after `used` reasoning tokens of the `limit` sent: double the room
        to reason (up to MAX_REASONING_ROOM). The note of the change, or None when at the most."""
        if self.tokens_field != "max_completion_tokens" or self.reasoning_room >= MAX_REASONING_ROOM:
            return None
        self.reasoning_room = min(MAX_REASONING_ROOM, max(REASONING_ROOM, 2 * self.reasoning_room))
        note = (f"room to reason raised to {self.reasoning_room} tokens on top of --target_length (a reply was cut "
                f"after {used} of its {limit} tokens went on reasoning)")
        self.notes.append(note)
        return note

    def _note(self, change, message):
        note = f"{change} (the server said: {' '.join(str(message).split())[:160]})"
        self.notes.append(note)
        return note


def _describe(changes):
    said = []
    if changes.get("tokens_field"):
        said.append(f"token limit sent as {changes['tokens_field']}"
                    + (f" with {changes['reasoning_room']} tokens of room to reason" if changes.get("reasoning_room")
                       else ""))
    if changes.get("temperature") is False:
        said.append("temperature and top_p left to the server's default")
    if changes.get("top_p_beside_temperature") is False:
        said.append("top_p left out beside temperature")
    return ", ".join(said)
