"""The cascade (embedded model, an LLM for the records under the line) on human-written prompts.

    python bench/classify_cascade.py --texts human_prompts.jsonl oracle
    python bench/classify_cascade.py --texts human_prompts.jsonl local --sample 100 [--threads 2]

Both run on the TEST part of bench/data/classify_human (see bench/classify_human.py), scored
against both labellers (a prompt they labelled differently counts half for either label).

  oracle  the LLM is a local fake server (tests/servers/classifier_fake.py) that answers labeller
          A's task for every prompt sent: the cascade's plumbing at its best (requests, reading,
          writing back), so the accuracy is the upper bound for this line, not a model's result.
  local   the LLM is the embedded GGUF model (`--fallback_backend local`, Qwen2.5-Coder-1.5B Q4_K_M
          on the CPU through llama.cpp, our prompt with the 46 descriptions, structured output as a
          grammar). It takes seconds per prompt on 2 cores, so it runs on a random sample of the
          TEST part (--sample, seeded); the embedded model's accuracy on the same sample is printed
          beside it.

Each prints the accuracy with the LLM's answers taken as they come and with classify.py's
default guard (--fallback_guard: an answer the embedded model gives under 1 % keeps the
embedded label).
"""

import argparse
import copy
import os
import random
import sys
import time
from collections import Counter

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from classify_human import load_set, part, soft_right  # noqa: E402

from realign.classifier.backends import LLMSettings, classify_embedded, classify_llm, overrule  # noqa: E402
from realign.classifier.model import FALLBACK_BELOW, FALLBACK_GUARD  # noqa: E402
from realign.llm.base import BackendConfig  # noqa: E402


def cascade(test, below, llm, model_dir=None):
    """(embedded labels, sent indices, LLMLabels, LLM seconds)."""
    texts = [p["text"] for p in test]
    labels, conf = classify_embedded(texts, model_dir, progress=False)
    sent = [i for i, c in enumerate(conf) if c < below]
    start = time.monotonic()
    result = llm([texts[i] for i in sent])
    return labels, sent, result, time.monotonic() - start


def merged(labels, sent, answers):
    final = list(labels)
    for i, label in zip(sent, answers):
        final[i] = label or final[i]
    return final


def show(name, test, labels, sent, result, seconds, guard):
    def soft(pred, idx):
        return np.mean([soft_right(pred[i], test[i]["labels"]) for i in idx]) if idx else float("nan")

    everyone, kept = list(range(len(test))), [i for i in range(len(test)) if i not in set(sent)]
    taken = merged(labels, sent, result.labels)
    guarded = overrule(copy.deepcopy(result), [test[i]["text"] for i in sent], guard)
    print(f"\n== {name}: {len(test)} TEST prompts, {len(sent)} under the line sent to the LLM "
          f"({seconds:.1f} s, {seconds / max(len(sent), 1):.2f} s a prompt)")
    print(f"  answered {sum(x is not None for x in result.labels)}, unreadable {len(result.unreadable)}, "
          f"failed {len(result.failures)}; {result.calls} requests, ~{result.tokens_in:,} tokens in, "
          f"~{result.tokens_out:,} out; overruled by the guard ({guard:g}): {len(guarded.overruled)}")
    answers = Counter(x for x in result.labels if x)
    print("  the LLM's answers, most common: " + ", ".join(f"{t} {n}" for t, n in answers.most_common(5)))
    print(f"  on the {len(kept)} kept: embedded {soft(labels, kept):.1%}")
    print(f"  on the {len(sent)} sent: embedded {soft(labels, sent):.1%}, LLM taken as it answers "
          f"{soft(taken, sent):.1%}, with the guard {soft(merged(labels, sent, guarded.labels), sent):.1%}")
    print(f"  all {len(test)}: embedded alone {soft(labels, everyone):.1%}, cascade {soft(taken, everyone):.1%}, "
          f"cascade with the guard (the default) {soft(merged(labels, sent, guarded.labels), everyone):.1%}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("fallback", choices=("oracle", "local"))
    ap.add_argument("--texts", required=True, help="the prompts' texts: the output of bench/classify_human_set.py")
    ap.add_argument("--below", type=float, default=FALLBACK_BELOW)
    ap.add_argument("--guard", type=float, default=FALLBACK_GUARD, help="classify.py's --fallback_guard")
    ap.add_argument("--sample", type=int, default=None, help="local: this many TEST prompts, drawn with seed 0")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model_dir", default=None,
                    help="the embedded model (default: the shipped one, which has seen TEST; for held-out numbers "
                         "use one from `bench/classify_human.py build --dev_only`)")
    args = ap.parse_args()
    prompts, labellers = load_set(args.texts)
    test = [p for p in prompts if part(p["uid"]) == "test"]
    if args.sample:
        test = random.Random(0).sample(test, min(args.sample, len(test)))
    print(f"labels: {', '.join(labellers)}; line: confidence under {args.below:g} goes to the LLM")
    if args.fallback == "oracle":
        from tests.servers.classifier_fake import ClassifierFake

        truth = {p["text"].strip(): p["labels"][0] for p in test}
        with ClassifierFake(answer=lambda q: truth.get(q.strip()), max_seconds=3600) as srv:
            config = BackendConfig(model="oracle", base_url=f"{srv.url}/v1", api_key="none", request_timeout=30)
            run = cascade(test, args.below, lambda texts: classify_llm(texts, config, LLMSettings(progress=False)),
                          args.model_dir)
        show("oracle fake (answers labeller A's task)", test, *run, args.guard)
    else:
        config = BackendConfig(model="default", options={"threads": args.threads}, request_timeout=600)
        settings = LLMSettings(backend="local", progress=False)
        run = cascade(test, args.below, lambda texts: classify_llm(texts, config, settings), args.model_dir)
        show(f"embedded GGUF model (local, {args.threads} threads), sample of {len(test)}", test, *run, args.guard)
    return 0


if __name__ == "__main__":
    sys.exit(main())
