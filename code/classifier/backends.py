"""Three ways to put a task name on a list of instructions, one function each.

  embedded  our CPU model (model.py), shipped in classifier/model/; no network, no GPU.
  vllm      the GAIR/ReAlign-Task-Classifier (or any model path) in the offline vLLM engine.
  openai    the same prompt to any OpenAI-compatible endpoint (e.g. `vllm serve` hosting the
            GAIR model), paced and retried by the shared runner (code/llm/runner.py).

Both LLM backends send the original classifier prompt (code/prompts.py) as a raw completion
prompt, greedy, at most 50 new tokens; a reply that is not a task name becomes `default`.
"""

import asyncio
import sys

from tqdm import tqdm

from realign.errors import UsageError
from realign.limits import RetryPolicy
from realign.llm.base import BackendConfig, BackendError, Request, Sampling, make_backend
from realign.llm.runner import run_all
from realign.prompts import (CLASSIFIER_MAX_TOKENS, CLASSIFIER_TEMPERATURE, CLASSIFIER_TOP_P,
                             build_classifier_prompt, parse_task)


def _bar(total, progress, unit):
    return tqdm(total=total, unit=unit, file=sys.stderr, disable=not progress or total < 200,
                dynamic_ncols=True, mininterval=0.5)


def classify_embedded(texts, model_dir=None, progress=True):
    """Task names for texts from the embedded model; returns (labels, {})."""
    from realign.classifier.model import DEFAULT_MODEL_DIR, TaskClassifier

    model = TaskClassifier.load(model_dir or DEFAULT_MODEL_DIR)
    with _bar(len(texts), progress, "instr") as bar:
        return model.predict(texts, bar), {}


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
    return asyncio.run(_classify_llm(texts, backend, chat, concurrency, rpm, max_retries, progress))


async def _classify_llm(texts, backend, chat, concurrency, rpm, max_retries, progress):
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
        await run_all(backend, requests, on_done, concurrency=concurrency, rpm=rpm,
                      policy=RetryPolicy(max_retries=max_retries))
    except BackendError as e:
        raise UsageError(f"the endpoint refused the run: {e.reason}") from None
    finally:
        bar.close()
        await backend.aclose()
    return labels, failures


def classify_texts(texts, args, api_key=None):
    """Dispatch on args.backend; returns (labels, failures) as classify_llm does."""
    if args.backend == "embedded":
        return classify_embedded(texts, args.model_dir, progress=not args.quiet)
    options = {"tensor_parallel_size": args.tensor_parallel_size} if args.backend == "vllm" else {}
    config = BackendConfig(model=args.model, base_url=args.base_url, api_key=api_key,
                           request_timeout=args.request_timeout, options=options)
    return classify_llm(texts, args.backend, config, chat=args.chat, concurrency=args.concurrency,
                        rpm=args.rpm, max_retries=args.max_retries, progress=not args.quiet)
