"""Three ways to put a task name on a list of instructions, one function each.

  embedded  our CPU model (model.py), shipped in classifier/model/; no network, no GPU; the
            only one that also gives a confidence (a calibrated probability) per label.
  vllm      the GAIR/ReAlign-Task-Classifier (or any model path) in the offline vLLM engine.
  openai    the same prompt to any OpenAI-compatible endpoint (e.g. `vllm serve` hosting the
            GAIR model), paced and retried by the shared runner (code/llm/runner.py).

Both LLM backends send the original classifier prompt (code/prompts.py) as a raw completion
prompt, greedy, at most 50 new tokens; a reply that is not a task name becomes `default`.
"""

import asyncio
from dataclasses import dataclass, field

from realign.bars import progress_bar
from realign.limits import RetryPolicy
from realign.llm.base import Request, Sampling, make_backend
from realign.llm.runner import run_step
from realign.prompts import (CLASSIFIER_MAX_TOKENS, CLASSIFIER_TEMPERATURE, CLASSIFIER_TOP_P,
                             build_classifier_prompt, parse_task)


def _bar(total, progress, unit):
    return progress_bar(total, unit, enabled=progress and total >= 200)


def classify_embedded(texts, model_dir=None, progress=True, rules=None):
    """Task names and confidences from the embedded model; returns (labels, {}, confidences).
    `rules` are TaskClassifier.classify's min_confidence / min_reject_confidence."""
    from realign.classifier.model import DEFAULT_MODEL_DIR, TaskClassifier

    model = TaskClassifier.load(model_dir or DEFAULT_MODEL_DIR)
    with _bar(len(texts), progress, "instr") as bar:
        labels, confidences = model.classify(texts, bar, **(rules or {}))
    return labels, {}, confidences


def classify_request(key, text, chat=False):
    """The request for one instruction: the template filled in, sampled as the original does."""
    sampling = Sampling(n=1, temperature=CLASSIFIER_TEMPERATURE, top_p=CLASSIFIER_TOP_P,
                        max_tokens=CLASSIFIER_MAX_TOKENS)
    prompt = build_classifier_prompt(text)
    if chat:  # for endpoints that only serve chat completions
        return Request(key=key, messages=[{"role": "user", "content": prompt}], sampling=sampling)
    return Request(key=key, prompt=prompt, sampling=sampling)


def classify_llm(texts, backend_name, config, *, chat=False, concurrency=None, rpm=None, max_retries=5,
                 progress=True):
    """Task names from an LLM backend ("vllm" or "openai"); returns (labels, failures).

    labels[i] is None where request i failed for good; failures maps i to the reason.
    """
    backend = make_backend(backend_name, config)
    return asyncio.run(classify_with_backend(texts, backend, chat=chat, concurrency=concurrency, rpm=rpm,
                                             max_retries=max_retries, progress=progress))


async def classify_with_backend(texts, backend, *, chat=False, concurrency=None, rpm=None, max_retries=5,
                                progress=True):
    """classify_llm with a backend already built (and closed here at the end): a RayBackend, say."""
    labels, failures = [None] * len(texts), {}
    bar = _bar(len(texts), progress, "instr")

    def on_done(outcome):
        i = outcome.request.key
        if outcome.ok:
            labels[i] = parse_task(outcome.result[0].text if outcome.result else "")
        else:
            failures[i] = outcome.error
        bar.update()

    requests = (classify_request(i, t, chat) for i, t in enumerate(texts))
    try:
        await run_step(backend, requests, on_done, concurrency=concurrency, rpm=rpm,
                       policy=RetryPolicy(max_retries=max_retries))
    finally:
        bar.close()
        await backend.aclose()
    return labels, failures


@dataclass
class ClassifySettings:
    """How classify.py asks for task names (it builds this from its flags)."""
    backend: str = "embedded"      # embedded | vllm | openai
    model_dir: str | None = None   # the embedded model's folder; None: the shipped one
    chat: bool = False             # send the prompt as a chat message (chat-only endpoints)
    concurrency: int | None = None
    rpm: float | None = None
    max_retries: int = 5
    progress: bool = True
    rules: dict = field(default_factory=dict)  # embedded: min_confidence / min_reject_confidence


def classify_texts(texts, settings, config=None):
    """Dispatch on settings.backend (`config`: the LLM backends' BackendConfig); returns (labels,
    failures, confidences): labels and failures as classify_llm gives them, confidences a list for
    the embedded model and None for the LLMs."""
    if settings.backend == "embedded":
        return classify_embedded(texts, settings.model_dir, progress=settings.progress, rules=settings.rules)
    labels, failures = classify_llm(texts, settings.backend, config, chat=settings.chat,
                                    concurrency=settings.concurrency, rpm=settings.rpm,
                                    max_retries=settings.max_retries, progress=settings.progress)
    return labels, failures, None
