"""Every prompt we send a model, and how we read its answer: the rewrite prompt, then the classifier's.

The rewrite prompt carries the task's format (from constant.py), the question, the original
response and, for knowledge tasks, the evidence. The model answers in two labelled parts,
`Reasoning:` then `Revised response:`; `parse_reply` pulls out the second part leniently
(any case, markdown bold or headings around the label, extra whitespace) but refuses an
answer that has no `Revised response:` label at all.

The classifier prompt is the one the 13B GAIR/ReAlign-Task-Classifier was fine-tuned with; it
only works well when it sees exactly that prompt, so the wording is the original project's,
kept byte for byte (trailing space after "below:" included). Its task list is built from
`constant.TASKS`, which holds the same names in the same order; tests compare the result with
a fixture copy of the original template. A reply that is not a task name reads as the default
task.
"""

import re

from realign.constant import DEFAULT_TASK, TASK_DESCRIPTIONS, TASK_FORMATS, TASK_SET, TASKS

MAX_EVIDENCE_CHARS = 6000  # keep the prompt within small context windows

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
- Keep every fact, number, name, piece of code and the final answer of the original. If the \
original reaches a conclusion, the rewrite reaches the same one.
- Add explanation or structure where the layout asks for it, but no new claims{evidence_rule}.
- Speak directly to the user. Do not mention the original answer, the layout or these rules.{system_rule}

Reply in exactly two parts, in this order and with these labels:
Reasoning: two or three sentences naming what the original lacks compared with the layout \
and how the rewrite adds it.
Revised response: the complete rewritten answer, with nothing after it."""

_EVIDENCE_RULE = " beyond what the evidence above supports"
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
        evidence_intro=", with evidence retrieved for it" if block else "",
        evidence_block=f"\n[Evidence]\n{block}\n" if block else "",
        system_block=_SYSTEM_BLOCK.format(system=system) if system else "",
        system_rule=_SYSTEM_RULE if system else "",
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


# ---------------------------------------------------------------- reading the reply

_LABEL = r"revised[ _-]*response\s*[*_]*\s*:\s*[*_]*"  # "Revised response:", "**Revised Response**:" …
_LABEL_AT_LINE_START = re.compile(r"^[ \t>#*_]*" + _LABEL, re.IGNORECASE | re.MULTILINE)
_LABEL_ANYWHERE = re.compile(r"\b" + _LABEL, re.IGNORECASE)
_REASONING_LABEL = re.compile(r"^[\s>#*_]*reasoning\s*[*_]*\s*:\s*[*_]*", re.IGNORECASE)


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


def parse_task(reply):
    """The model's reply, stripped, if it is a task name; otherwise the default task."""
    name = (reply or "").strip()
    return name if name in TASK_SET else DEFAULT_TASK
