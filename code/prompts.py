"""Every prompt we send a model, and how we read its answer: the rewrite prompt, then the classifier's.

The rewrite prompt carries the task's format (from constant.py), the question, the original
response and, for knowledge tasks, the evidence. The model answers in two labelled parts,
`Reasoning:` then `Revised response:`; `parse_reply` pulls out the second part leniently
(any case, markdown bold or headings around the label, extra whitespace) but refuses an
answer that has no `Revised response:` label at all.

The safety valve of the method: when the task's layout does not suit the request (a record
put under the wrong task, say), the model is told to answer with the line `KEEP ORIGINAL`
(KEEP_MARKER) instead, and the record keeps its original answer ("format does not fit").

`read_reply` is what reformat applies to every candidate, from any backend. In order:
a candidate cut at the token limit, by a content filter, or in any other way (only a natural
stop is a finished answer: llm.base.finished) is not used, and neither is an empty reply (both
retried once at most, rewrite.make_check); a provider's refusal is named as such; `<think>` blocks of reasoning models are removed (an
unclosed one at the start is all thinking, no answer); chat-template end tokens trailing the
reply are stripped, and a reply still holding a template token (the model ran past its turn)
is not used; a reply wrapped whole in a code fence is unwrapped when the original has no
fence; the KEEP ORIGINAL line is recognised; then the `Revised response:` part is taken,
unwrapped from a fence the same way, and refused when it is a refusal the original was not,
or a piece of our own prompt echoed back.

Our protocol's markers inside the data are data: an original that itself holds "Revised
response:" lines, a KEEP ORIGINAL line or <think> tags is rewritten faithfully when the reply
carries them, and only the reply's own markers (one label more than the original has; the
marker alone as the revised part) are read as the protocol.

The classifier prompt is the one the 13B GAIR/ReAlign-Task-Classifier was fine-tuned with; it
only works well when it sees exactly that prompt, so the wording is the original project's,
kept byte for byte (trailing space after "below:" included). Its task list is built from
`constant.TASKS`, which holds the same names in the same order; tests compare the result with
a fixture copy of the original template. For other models (the cascade's fallback LLM, a general
chat model) there is our own prompt, `build_task_messages`: every task with its description
from constant.py. `read_task` reads either model's reply leniently and says when it names no task.
"""

import re

from realign.constant import DEFAULT_TASK, TASK_DESCRIPTIONS, TASK_FORMATS, TASK_SET, TASKS
from realign.llm.base import cut_reason, finished
from realign.textchecks import (echoed_prompt, refusal_phrase, repeats_itself, strip_end_tokens, template_token,
                                whole_fence)

MAX_EVIDENCE_CHARS = 6000  # keep the prompt within small context windows
KEEP_MARKER = "KEEP ORIGINAL"  # the valve: the model's whole reply when the layout does not fit
FORMAT_DOES_NOT_FIT = "format does not fit"

SYSTEM_PROMPT = (
    "You edit answers in an instruction-tuning dataset. You change how an answer is laid out "
    "and explained, never what it claims: the facts, numbers, code and conclusion of the "
    "original answer must all survive your edit."
)

# The material comes first and the instructions last: models, small ones above all, follow
# what they read most recently, and an answer placed last tends to be copied back unchanged.
REWRITE_TEMPLATE = """\
Below are a user's request and the answer it received{evidence_intro}.
{system_block}
[Request]
{question}

[Original answer]
{response}
{evidence_block}
Your job: rewrite the original answer so that it follows the layout expected for this kind of \
request, keeping its content.

Kind of request: {task}
What such requests look like: {description}

Layout the rewritten answer must follow:
{format}

Rules:
- Apply the layout for real: restructure the answer even when it is short or already correct. \
Returning it unchanged is not a rewrite.
- Only if this layout clearly does not suit the request (the request is really of another kind, \
or the answer cannot take this layout without inventing content), do not rewrite: reply with \
the single line {keep_marker} and nothing else.
- Keep every fact, number, name, piece of code and the final answer of the original. If the \
original reaches a conclusion, the rewrite reaches the same one.
- Add explanation or structure where the layout asks for it, but no new claims{evidence_rule}.
- Speak directly to the user. Do not mention the original answer, the layout or these rules.{system_rule}

Reply in exactly two parts, in this order and with these labels:
Reasoning: two or three sentences naming what the original lacks compared with the layout \
and how the rewrite adds it.
Revised response: the complete rewritten answer, with nothing after it."""

_EVIDENCE_RULE = " beyond what the evidence above supports"
_EVIDENCE_BLOCK = "\n[Evidence]\n{evidence}\n"
_EVIDENCE_INTRO = ", with evidence retrieved for it"
# The record's own system prompt ("Always answer in French", "Reply only with JSON") binds the
# rewrite as it bound the original answer; where it and the layout disagree, it wins.
_SYSTEM_BLOCK = "\n[System prompt the answer was written under]\n{system}\n"
_SYSTEM_RULE = ("\n- The rewrite must keep obeying the system prompt above (its language, tone, length and "
                "output format). Where it and the layout disagree, follow the system prompt.")


def format_evidence(evidence, limit=MAX_EVIDENCE_CHARS):
    """Numbered evidence passages (blank ones skipped), cut off after `limit` characters in total."""
    lines, used = [], 0
    for passage in evidence:
        if used >= limit:
            break
        passage = " ".join(passage.split())[: limit - used]
        if passage:
            lines.append(f"{len(lines) + 1}. {passage}")
            used += len(passage)
    return "\n".join(lines)


# Every text the rewrite prompt is made of, besides the task's description and layout
# (constant.py): textchecks.echoed_prompt looks for these in replies. A new piece of the rewrite
# prompt belongs here; other prompts (the classifier's) do not.
REWRITE_PROMPT_PARTS = (SYSTEM_PROMPT, REWRITE_TEMPLATE, _EVIDENCE_RULE, _EVIDENCE_BLOCK, _EVIDENCE_INTRO,
                        _SYSTEM_BLOCK, _SYSTEM_RULE, KEEP_MARKER)


def build_rewrite_messages(task, question, response, evidence=None, system=None):
    """Chat messages asking to rewrite `response` into `task`'s format (evidence and the
    record's own system prompt optional)."""
    block = format_evidence(evidence) if evidence else ""
    system = system.strip() if isinstance(system, str) else ""
    user = REWRITE_TEMPLATE.format(
        task=task,
        description=" ".join(TASK_DESCRIPTIONS[task].split()),
        format=TASK_FORMATS[task],
        evidence_rule=_EVIDENCE_RULE if block else "",
        question=question,
        response=response,
        evidence_intro=_EVIDENCE_INTRO if block else "",
        evidence_block=_EVIDENCE_BLOCK.format(evidence=block) if block else "",
        keep_marker=KEEP_MARKER,
        system_block=_SYSTEM_BLOCK.format(system=system) if system else "",
        system_rule=_SYSTEM_RULE if system else "",
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


# ---------------------------------------------------------------- reading the reply

_LABEL = r"revised[ _-]*response\s*[*_]*\s*:\s*[*_]*"  # "Revised response:", "**Revised Response**:" …
_LABEL_AT_LINE_START = re.compile(r"^[ \t>#*_]*" + _LABEL, re.IGNORECASE | re.MULTILINE)
_LABEL_ANYWHERE = re.compile(r"\b" + _LABEL, re.IGNORECASE)
_REASONING_LABEL = re.compile(r"^[\s>#*_]*reasoning\s*[*_]*\s*:\s*[*_]*", re.IGNORECASE)

_THINK_BLOCK = re.compile(r"<(think|thinking)>.*?</\1>", re.IGNORECASE | re.DOTALL)
_THINK_OPEN = re.compile(r"<(?:think|thinking)>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</(?:think|thinking)>", re.IGNORECASE)
# KEEP ORIGINAL on a line of its own, allowing markdown or quotes around it and a full stop
_KEEP_LINE = re.compile(r"^[\s>#*_`\"'\[(]*keep[ _-]+original[\s*_`\"'\]).!]*$", re.IGNORECASE | re.MULTILINE)

REPLY_OK, REPLY_KEEP, REPLY_TRUNCATED, REPLY_REFUSED, REPLY_BAD = "ok", "keep", "truncated", "refused", "bad"
REPEATS_ITSELF = ": the reply repeats itself, a larger limit only makes it longer"  # added to a cut's reason


def strip_think(text, original=""):
    """The text without reasoning-model `<think>…</think>` blocks. A closing tag with no opening
    one (the chat template opened it) drops everything before it; an opening tag never closed
    drops everything after it. Left alone when the original itself talks about <think> tags."""
    if "<think" in original.lower():
        return text
    text = _THINK_BLOCK.sub("", text)
    close = _THINK_CLOSE.search(text)
    if close:
        text = text[close.end():]
    opened = _THINK_OPEN.search(text)
    if opened:
        text = text[:opened.start()]
    return text


def unwrap_fence(text, original=""):
    """The inside of a text wrapped whole in one ``` fence, when the original has no fence."""
    fence = whole_fence(text)
    if fence and "```" not in original:
        return fence[1]
    return text


def quote(text, limit=60):
    """The start of `text` on one line, for a reason string."""
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[:limit] + "…")


def parse_reply(text):
    """(reasoning, revised_response) from a model reply, or None when there is no usable
    `Revised response:` part. A label at the start of a line wins over one inside a sentence."""
    if not isinstance(text, str):
        return None
    match = _LABEL_AT_LINE_START.search(text) or _LABEL_ANYWHERE.search(text)
    if not match:
        return None
    revised = text[match.end():].strip()
    if not revised:
        return None
    reasoning = _REASONING_LABEL.sub("", text[: match.start()], count=1).strip()
    return reasoning, revised


def read_reply(text, original="", finish_reason=None, refusal=None, max_tokens=None):
    """How one candidate reads: (verdict, value).

    (REPLY_OK, revised response) a usable rewrite; (REPLY_KEEP, FORMAT_DOES_NOT_FIT) the model
    used the valve; otherwise (verdict, reason) with REPLY_TRUNCATED (cut at max_tokens or by the
    server in another way, or empty),
    REPLY_REFUSED (a refusal, as a field or as the answer, or a reply a content filter cut) or
    REPLY_BAD (anything else). `finish_reason` as backends give it (llm.base.finish_reason)."""
    if finish_reason == "length":
        limit = f"--target_length {max_tokens}" if max_tokens else "the token limit"
        loop = isinstance(text, str) and repeats_itself(text)
        return REPLY_TRUNCATED, f"truncated at {limit}" + (REPEATS_ITSELF if loop else "")
    if finish_reason == "content_filter":
        return REPLY_REFUSED, "cut by the provider's content filter (finish_reason content_filter)"
    if refusal:
        return REPLY_REFUSED, f"the model refused: {quote(refusal)}"
    if not finished(finish_reason):  # "error", "abort", "other", a stream cut off: a cut reply
        return REPLY_TRUNCATED, f"{cut_reason(finish_reason)}, not used"
    if not isinstance(text, str) or not text.strip():  # retried once at most, like a cut
        return REPLY_TRUNCATED, "empty reply (no content)"
    answer = strip_end_tokens(strip_think(text, original), original)
    if not answer.strip():
        return REPLY_BAD, "the reply is only a <think> block, no answer after it"
    token = template_token(answer)
    if token and token not in original:
        # the server's chat template, not chance: it would happen again, so retried once at most like a cut
        return REPLY_TRUNCATED, f"the reply holds the chat-template token {token!r} (the model ran past its turn)"
    answer = unwrap_fence(answer, original)
    own = len(_LABEL_AT_LINE_START.findall(original))  # the original's own "Revised response:" lines: data
    labels = len(_LABEL_AT_LINE_START.findall(answer))
    keep_is_data = bool(_KEEP_LINE.search(original))
    if _KEEP_LINE.search(answer) and not (keep_is_data and labels > own):
        return REPLY_KEEP, FORMAT_DOES_NOT_FIT
    if labels > own + 1:
        return REPLY_BAD, f"{labels - own} 'Revised response:' parts in one reply (a draft and a final?)"
    if labels <= own and (own or _LABEL_ANYWHERE.search(original)):
        return REPLY_BAD, "no 'Revised response:' part (the original's own are part of the answer)"
    parsed = parse_reply(answer)
    if parsed is None:
        return REPLY_BAD, "no 'Revised response:' part"
    revised = unwrap_fence(parsed[1], original).strip()
    if not revised:
        return REPLY_BAD, "no 'Revised response:' part"
    valve = _KEEP_LINE.fullmatch(revised) if keep_is_data else _KEEP_LINE.search(revised)
    if valve:  # "Revised response: KEEP ORIGINAL"
        return REPLY_KEEP, FORMAT_DOES_NOT_FIT
    if refusal_phrase(revised) and not refusal_phrase(original):
        return REPLY_REFUSED, f"the model refused: {quote(revised)}"
    echo = echoed_prompt(revised, exclude=original)
    if echo:
        return REPLY_BAD, f"the revised response echoes the rewrite prompt: {quote(echo)}"
    return REPLY_OK, revised


# ---------------------------------------------------------------- the classifier prompt

_CLASSIFIER_HEAD = (
    "\n"
    "You will receive a user's query. Additionally, you are given some pre-defined tasks below: \n"
    "\n"
    "[Existing tasks start]\n"
)

_CLASSIFIER_TAIL = (
    "[Existing tasks end]\n"
    "\n"
    "You objective is to choose the most appropriate task that can reflect the high-level "
    "intention of this query. You should first clearly give out your choice. Your choice should "
    "exactly match one of the task names provided above, without any modification. Do not "
    "include the task description in your choice.\n"
    "\n"
    "Your output should be just the task name.\n"
    "\n"
    "User's query is below:\n"
    "[User's query start]\n"
    "{input}\n"
    "[User's query end]\n"
    "\n"
    "Task name:\n"
    "\n"
)

PROMPT_INPUT_FOR_TASK_CLS = _CLASSIFIER_HEAD + "".join(task + "\n" for task in TASKS) + _CLASSIFIER_TAIL

# Sampling settings of the original example: greedy, short answer.
CLASSIFIER_TEMPERATURE = 0.0
CLASSIFIER_TOP_P = 1.0
CLASSIFIER_MAX_TOKENS = 50


def build_classifier_prompt(query):
    """The full classifier prompt for one user query (str.format, as the original does)."""
    return PROMPT_INPUT_FOR_TASK_CLS.format(input=query)


# ---------------------------------------------------------------- our classifier prompt (any instruction model)

# For models that were not trained on the template above (the cascade's fallback LLM, a general
# chat model as --backend openai): every task with our description, the boundary rules of the
# taxonomy, and the answer asked for as the bare task name. The fixed part is the system
# message and the query comes last, so servers that cache a prompt's prefix (llama.cpp, vLLM,
# OpenAI) evaluate the long part once.
_TASKS_SYSTEM_HEAD = """\
You sort requests from an instruction-tuning dataset into tasks. Read the user's request and \
choose the one task below that best describes what the user wants produced.

Tasks:
"""

_TASKS_SYSTEM_RULES = """
How to choose:
- Go by what the user wants produced, not by the topic: a question about Python is \
language_learning_questions, a word problem about money is math_puzzles.
- A persona that only frames an ordinary request ("you are a recruiter, write an email...") is \
labelled by the request underneath; roleplay is for "act as X and talk to me as X".
- A request with pasted material is labelled by what it asks about the material.
- rejecting is for requests an assistant cannot or should not carry out, not for sensitive topics.
- default is a real task: choose it for requests no other task fits well, such as making something \
up, writing an example of something, designing something, describing or discussing a topic in \
free form, or chatting.

Answer with the task name only, exactly as written above."""

TASKS_PROMPT_MAX_QUERY_CHARS = 4000  # head and tail of a longer query are sent, the middle cut
TASK_ANSWER_SCHEMA = {  # structured output, where the server has it: {"task": one of the 46 names}
    "type": "object",
    "properties": {"task": {"type": "string", "enum": list(TASKS)}},
    "required": ["task"],
    "additionalProperties": False,
}


def tasks_system_prompt():
    """The system message of our classifier prompt: every task with its description, then the rules."""
    lines = [f"- {task}: {' '.join(TASK_DESCRIPTIONS[task].split())}" for task in TASKS]
    return _TASKS_SYSTEM_HEAD + "\n".join(lines) + "\n" + _TASKS_SYSTEM_RULES


TASKS_SYSTEM_PROMPT = tasks_system_prompt()


def build_task_messages(query):
    """Chat messages asking an instruction model for the task of `query` (our prompt, not the
    spec's); a query over TASKS_PROMPT_MAX_QUERY_CHARS keeps its first three quarters and its end."""
    if len(query) > TASKS_PROMPT_MAX_QUERY_CHARS:
        head = TASKS_PROMPT_MAX_QUERY_CHARS * 3 // 4
        query = query[:head] + "\n[...]\n" + query[-(TASKS_PROMPT_MAX_QUERY_CHARS - head):]
    return [{"role": "system", "content": TASKS_SYSTEM_PROMPT},
            {"role": "user", "content": f"Request:\n<<<\n{query}\n>>>\n\nTask name:"}]


# ---------------------------------------------------------------- reading a classifier's reply

_SPELLINGS = {}  # "open_qa", "open qa", "open-qa" -> "open_qa"; one-word names only as written
for _task in TASKS:
    for _form in {_task, _task.replace("_", " "), _task.replace("_", "-")}:
        _SPELLINGS[_form] = _task
_ANY_NAME = re.compile(r"(?<![\w-])(" + "|".join(sorted(map(re.escape, _SPELLINGS), key=len, reverse=True))
                       + r")(?![\w-])", re.IGNORECASE)
_MARKED = re.compile(r"(?:task(?:\s+name)?|category|answer|label|choice|classification)\s*(?:is|:|=)"
                     r"[\s*_`\"'“”:]*$", re.IGNORECASE)
_JSON_TASK = re.compile(r'"(?:task|category|label)"\s*:\s*"([^"]+)"', re.IGNORECASE)
_DECORATION = " \t\r\n*_`\"'“”‘’.,:;!()[]{}<>#-"


def read_task(reply):
    """The task a classifier's reply names, or None when it names none.

    Lenient, because chat models decorate: `**open_qa**`, "Task: open_qa.", "The task is
    open_qa.", `{"task": "open_qa"}` (structured output), a name with spaces for underscores
    ("Open QA"), <think> blocks before the answer. A one-word name that is also an English word
    (default, planning, ordering, rejecting, roleplay...) counts inside a sentence only after a
    marker ("the task is", "answer:") or in backticks or bold; when a reply names several tasks,
    a marked one wins, else the first."""
    if not isinstance(reply, str):
        return None
    text = strip_think(reply)
    json_name = _JSON_TASK.search(text)
    if json_name:
        text = json_name.group(1)
    whole = text.strip(_DECORATION).lower()
    if whole in _SPELLINGS:
        return _SPELLINGS[whole]
    marked, plain = [], []
    for match in _ANY_NAME.finditer(text):
        task = _SPELLINGS[match.group(1).lower()]
        if _MARKED.search(text[max(0, match.start() - 40):match.start()]):
            marked.append(task)
        elif "_" in task or _emphasised(text, match):  # one-word names are English words too
            plain.append(task)
    found = marked or plain
    return found[0] if found else None


def _emphasised(text, match):
    """True when the match stands in backticks or bold (`planning`, **default**)."""
    before, after = text[max(0, match.start() - 2):match.start()], text[match.end():match.end() + 2]
    return before[-1:] == "`" == after[:1] or before in ("**", "__") and after in ("**", "__")
