"""Two ways to put a task name on a list of instructions: our embedded model, or an LLM.

  embedded  our CPU model (model.py), shipped in classifier/model/; no network, no GPU; the
            only one that also gives a confidence (a calibrated probability) per label.
  an LLM    through any realign.llm backend: vllm (the offline engine on a local GPU), openai
            (any OpenAI-compatible endpoint, paced and retried by the shared runner) or local
            (the embedded GGUF model on the CPU).

An LLM gets one of two prompts (`prompt_for`): the spec's classifier prompt, verbatim, for the
GAIR/ReAlign-Task-Classifier it was trained with (a raw completion prompt, greedy, at most 50
new tokens), or our prompt with the 46 task descriptions for any other instruction model (chat
messages, same sampling; the answer constrained to a task name by structured output where the
server has it). Replies are read leniently (prompts.read_task); one that still names no task is
counted as unreadable, with the reply, and left to the caller to decide about. A reply cut at
the token limit before it named anything (a reasoning model thinks first) is asked again once
with a larger limit. The request shape (max_completion_tokens, temperature, response_format...)
is the backend's business: llm/shape.py learns what each server accepts.
"""

import asyncio
from dataclasses import dataclass, field, replace

from realign.bars import progress_bar
from realign.lengths import approx_tokens
from realign.limits import RetryPolicy
from realign.llm.base import Request, Sampling, Unusable, make_backend
from realign.llm.runner import run_step
from realign.prompts import (CLASSIFIER_MAX_TOKENS, CLASSIFIER_TEMPERATURE, CLASSIFIER_TOP_P, TASK_ANSWER_SCHEMA,
                             build_classifier_prompt, build_task_messages, quote, read_task)

GAIR_MODEL = "GAIR/ReAlign-Task-Classifier"
THINKING_MAX_TOKENS = 2048  # the token limit of a second try when the first was spent before the answer
SPEC_PROMPT, TASKS_PROMPT = "spec", "tasks"
PROMPTS = ("auto", SPEC_PROMPT, TASKS_PROMPT)


def _bar(total, progress, unit):
    return progress_bar(total, unit, enabled=progress and total >= 200)


def overrule(result, texts, guard, model_dir=None, model=None):
    """Set aside (into result.overruled) the LLM's answers that the embedded model all but ruled
    out: a task it gives a probability under `guard` for that text. A weak LLM's stray answers
    (question_generation for any question) go; a strong LLM loses little (on held-out
    human-written prompts the embedded model gives the right task 1 % or more 95 % of the time)."""
    from realign.classifier.model import DEFAULT_MODEL_DIR, TaskClassifier

    named = [i for i, label in enumerate(result.labels) if label is not None]
    if not guard or not named:
        return result
    model = model or TaskClassifier.load(model_dir or DEFAULT_MODEL_DIR)
    prob = model.probabilities([texts[i] for i in named])
    for row, i in zip(prob, named):
        task = result.labels[i]
        if task not in model.classes or row[model.classes.index(task)] < guard:
            result.overruled[i] = task
            result.labels[i] = None
    return result


def load_embedded(model_dir=None):
    """The TaskClassifier in model_dir (default: the shipped one) with its encoder session started:
    about 0.3 s, which classify.py spends while it reads the input."""
    from realign.classifier.model import DEFAULT_MODEL_DIR, TaskClassifier

    model = TaskClassifier.load(model_dir or DEFAULT_MODEL_DIR)
    model._encoder()
    return model


def classify_embedded(texts, model_dir=None, progress=True, rules=None, model=None):
    """Task names and confidences from the embedded model; returns (labels, confidences).
    `rules` are TaskClassifier.classify's min_confidence / min_reject_confidence; `model` one
    already loaded (load_embedded), else the one in model_dir is loaded."""
    model = model or load_embedded(model_dir)
    with _bar(len(texts), progress, "instr") as bar:
        return model.classify(texts, bar, **(rules or {}))


# ---------------------------------------------------------------- LLMs

def prompt_for(model, choice="auto"):
    """SPEC_PROMPT or TASKS_PROMPT: `choice` as given, or for "auto" the spec's prompt when the
    model is the GAIR task classifier (by name or path) and ours otherwise."""
    if choice != "auto":
        return choice
    return SPEC_PROMPT if "task-classifier" in (model or "").lower() else TASKS_PROMPT


def classify_request(key, text, prompt=SPEC_PROMPT, chat=False, structured=False, max_tokens=CLASSIFIER_MAX_TOKENS):
    """The request for one instruction. SPEC_PROMPT: the template filled in, sampled as the original
    does, as a raw prompt (or a chat message with `chat`). TASKS_PROMPT: our chat messages, and
    with `structured` the answer constrained to {"task": name} (TASK_ANSWER_SCHEMA)."""
    sampling = Sampling(n=1, temperature=CLASSIFIER_TEMPERATURE, top_p=CLASSIFIER_TOP_P, max_tokens=max_tokens)
    if prompt == TASKS_PROMPT:
        schema = ({"type": "json_schema", "json_schema": {"name": "task", "schema": TASK_ANSWER_SCHEMA, "strict": True}}
                  if structured else None)
        return Request(key=key, messages=build_task_messages(text), sampling=sampling, response_format=schema)
    text_prompt = build_classifier_prompt(text)
    if chat:  # for endpoints that only serve chat completions
        return Request(key=key, messages=[{"role": "user", "content": text_prompt}], sampling=sampling)
    return Request(key=key, prompt=text_prompt, sampling=sampling)


def request_text(request):
    """All the text a request sends (for token estimates)."""
    if request.messages is not None:
        return "\n".join(m["content"] for m in request.messages)
    return request.prompt


@dataclass
class LLMLabels:
    """What an LLM said about a list of instructions. labels[i] is the task it named, or None
    when request i failed for good (failures[i] says why), its reply named no task
    (unreadable[i] says what it was) or the answer was overruled (see `overrule`). tokens_in / tokens_out are estimates from the text
    (lengths.approx_tokens) of the requests answered and their replies."""
    labels: list
    failures: dict = field(default_factory=dict)
    unreadable: dict = field(default_factory=dict)
    overruled: dict = field(default_factory=dict)  # i -> the task it named, set aside by `overrule`
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0


@dataclass
class LLMSettings:
    """How classify.py asks an LLM for task names (built from its flags)."""
    backend: str = "openai"        # openai | vllm | local
    prompt: str = "auto"           # auto | spec | tasks (see prompt_for)
    chat: bool = False             # spec prompt as a chat message (chat-only endpoints)
    structured: bool = True        # tasks prompt: ask for structured output
    concurrency: int | None = None
    rpm: float | None = None
    max_retries: int = 5
    progress: bool = True


def classify_llm(texts, config, settings):
    """Task names for `texts` from the LLM backend settings.backend (BackendConfig `config`);
    returns LLMLabels."""
    backend = make_backend(settings.backend, config)
    return asyncio.run(classify_with_backend(texts, backend, settings))


def unreadable_reason(completion):
    """Why a reply that names no task is no use, on one line."""
    if completion is None:
        return "no reply"
    if completion.refusal:
        return f"refused: {quote(completion.refusal)}"
    if not completion.text.strip():
        return "empty reply" + (" (cut at the token limit)" if completion.truncated else "")
    cut = " (cut at the token limit)" if completion.truncated else ""
    return f"names no task{cut}: {quote(completion.text)}"


async def classify_with_backend(texts, backend, settings, rpm=True):
    """classify_llm with a backend already built (and closed here at the end): a RayBackend, say.
    `rpm=False` leaves settings.rpm to the backend (a Ray cluster paces itself)."""
    result = LLMLabels(labels=[None] * len(texts))
    prompt = prompt_for(backend.config.model, settings.prompt)
    bar = _bar(len(texts), settings.progress, "instr")

    def on_done(outcome):
        i = outcome.request.key
        if outcome.ok:
            completion = outcome.result[0] if outcome.result else None
            task = read_task(completion.text) if completion else None
            result.tokens_in += approx_tokens(request_text(outcome.request))
            result.tokens_out += approx_tokens(completion.text) if completion else 0
            if task:
                result.labels[i] = task
            else:
                result.unreadable[i] = unreadable_reason(completion)
        else:
            result.failures[i] = outcome.error
        bar.update()

    # A reasoning model by its name thinks before it answers; the request shape (llm/shape.py) adds
    # its room to reason where it knows one, else the limit starts at THINKING_MAX_TOKENS.
    shape = getattr(backend, "shape", None)
    thinker = getattr(shape, "tokens_field", None) == "max_completion_tokens" and not getattr(shape, "reasoning_room", 0)
    room = {"max_tokens": THINKING_MAX_TOKENS if thinker else CLASSIFIER_MAX_TOKENS}

    def check(completions, request):
        """A reply cut at the token limit before it named a task (the model thought first) is asked
        again, once, with THINKING_MAX_TOKENS, and so are all requests made after it."""
        first = completions[0] if completions else None
        if first is not None and first.truncated and read_task(first.text) is None \
                and (request.sampling.max_tokens or 0) < THINKING_MAX_TOKENS:
            room["max_tokens"] = THINKING_MAX_TOKENS
            request.sampling = replace(request.sampling, max_tokens=THINKING_MAX_TOKENS)
            raise Unusable(f"cut at {CLASSIFIER_MAX_TOKENS} tokens before naming a task; asked again with "
                           f"{THINKING_MAX_TOKENS}", retries=1)
        if first is not None and not first.finished and not first.truncated:
            # "error", "abort", a stream cut off, a filter: "open_q" cut short must not read as a task
            raise Unusable(f"the reply was {first.cut_reason}", retries=0 if first.filtered else 1)
        return completions

    requests = (classify_request(i, t, prompt, settings.chat, settings.structured, room["max_tokens"])
                for i, t in enumerate(texts))
    try:
        await run_step(backend, requests, on_done, concurrency=settings.concurrency, check=check,
                       rpm=settings.rpm if rpm else None, policy=RetryPolicy(max_retries=settings.max_retries))
    finally:
        bar.close()
        result.calls = backend.calls
        await backend.aclose()
    return result


def estimate_llm(texts, model, settings):
    """(requests, tokens in, tokens out) that classify_llm would spend on `texts`, without sending
    anything: the prompts as they would go out, and at most CLASSIFIER_MAX_TOKENS per answer
    (about 10 for a task name; the estimate uses 10, reasoning models spend more)."""
    prompt = prompt_for(model, settings.prompt)
    tokens_in = sum(approx_tokens(request_text(classify_request(i, t, prompt, settings.chat)))
                    for i, t in enumerate(texts))
    return len(texts), tokens_in, 10 * len(texts)
