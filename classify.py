"""Step 1: put a task name on every record (items[0]["category"]).

    python classify.py --input_data_path data.json --output_path classified.json
        [--input_format auto|realign|alpaca|sharegpt|messages|gsm8k|math|dolly|ultrachat]
        [--field_map question=COL,answer=COL[,system=COL,id=COL]] [--skip_bad_records] [--overwrite]
        [--backend embedded|vllm|openai] [--model M] [--base_url URL]

Reads ReAlign, Alpaca, ShareGPT, OpenAI-messages, GSM8K, MATH, Dolly or UltraChat data (.json,
.jsonl, .parquet, .csv or a Hugging Face dataset folder) and writes ReAlign records (.json, .jsonl,
.parquet or .csv, by extension). Records that already carry a valid category keep it unless
--overwrite. With --skip_bad_records, records that cannot be read go to
<output_path>.rejected.jsonl ({"index", "id", "reason", "record"}) and the rest goes on.

The embedded model also writes items[0]["category_confidence"]: the calibrated probability
(0-1) that its task is right. --min_confidence P sends predictions under P to `default` (left
as they are by the rewrite); `rejecting` is only chosen at --min_reject_confidence or above,
otherwise the next most probable task.

    python classify.py --eval test.json [--backend ...]      # accuracy, macro-F1, per task,
                                                            # accuracy against coverage
    python classify.py --train train.json [--save_model DIR] # rebuild the embedded model

--eval and --train take the classifier format: a list of {"instruction", "category"}.
Backends: embedded (default; CPU model shipped in the repo), vllm (GAIR/ReAlign-Task-Classifier
on a local GPU, `pip install -e .[vllm]`), openai (any OpenAI-compatible endpoint; key in
OPENAI_API_KEY). Exit codes: 0 done, 1 some records could not be classified (rerun to retry
them), 2 bad input or flags.
"""

import argparse
import os
import time
from collections import Counter

from realign.bars import progress_bar
from realign.classifier.backends import ClassifySettings, classify_texts
from realign.classifier.data import load_labeled
from realign.classifier.metrics import THRESHOLDS, coverage_report, report
from realign.classifier.model import MIN_REJECT_CONFIDENCE
from realign.classifier.on_ray import classify_texts_ray
from realign.cli import add_ray_flags, check_flags, check_not_input, ray_settings, run
from realign.constant import RAG_TASKS, REWRITE_TASKS
from realign.convert import FORMATS, BadRecordError, load_any, parse_field_map, rejected_path, write_rejected
from realign.errors import DataError, UsageError
from realign.llm.base import BackendConfig, api_key
from realign.records import category, check_data_output, question, where, write_records
from realign.tabular import check_ids_fit

GAIR_MODEL = "GAIR/ReAlign-Task-Classifier"


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
    p.add_argument("--eval", metavar="FILE", help="score the backend on a labelled file instead of classifying")
    p.add_argument("--train", metavar="FILE", help="train the embedded model on a labelled file")
    p.add_argument("--save_model", metavar="DIR", default=None,
                   help="where --train writes the model (default: the shipped one, code/classifier/model)")
    p.add_argument("--model_dir", default=None, help="embedded model folder to use (default: the shipped one)")
    p.add_argument("--backend", default="embedded", choices=("embedded", "vllm", "openai"))
    p.add_argument("--min_confidence", type=float, default=0.0, metavar="P",
                   help="embedded: label `default` (not rewritten) where the confidence is under P (0-1; default 0)")
    p.add_argument("--min_reject_confidence", type=float, default=MIN_REJECT_CONFIDENCE, metavar="P",
                   help="embedded: choose `rejecting` only from this confidence up, else the next task "
                        f"(default {MIN_REJECT_CONFIDENCE})")
    p.add_argument("--model", default=GAIR_MODEL, help="model name or local path (vllm / openai backends)")
    p.add_argument("--base_url", default=os.environ.get("OPENAI_BASE_URL"), help="OpenAI-compatible endpoint")
    p.add_argument("--openai_key", default=None,
                   help="API key (visible to other users in `ps`: prefer OPENAI_API_KEY or --openai_key_file)")
    p.add_argument("--openai_key_file", default=None, metavar="PATH",
                   help="read the API key from this file (its only line)")
    p.add_argument("--chat", action="store_true", help="send the prompt as a chat message (chat-only endpoints)")
    p.add_argument("--concurrency", type=int, default=None, help="requests in flight (openai/vllm)")
    p.add_argument("--rpm", type=float, default=None, help="client-side cap on requests per minute")
    p.add_argument("--max_retries", type=int, default=5)
    p.add_argument("--request_timeout", type=float, default=60.0, help="seconds per HTTP request")
    p.add_argument("--tensor_parallel_size", type=int, default=None, help="GPUs for --backend vllm (default all)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_ray_flags(p, tensor_parallel_size=False)  # classify.py has its own --tensor_parallel_size
    return p.parse_args(argv)


def check_args(args):
    if not (args.train or args.eval) and not (args.input_data_path and args.output_path):
        raise UsageError("give --input_data_path and --output_path (or --eval FILE / --train FILE)")
    if args.train and args.backend != "embedded":
        raise UsageError("--train builds the embedded model; it does not go with --backend " + args.backend)
    check_flags(args, at_least={"concurrency": 1, "max_retries": 0, "tensor_parallel_size": 1},
                positive=("rpm", "request_timeout"))
    for name in ("min_confidence", "min_reject_confidence"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise UsageError(f"--{name} is a probability between 0 and 1, got {getattr(args, name):g}")
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


def classifier(args, key, model_dir):
    """texts -> (labels, failures, confidences or None) with the chosen backend, here or spread over a
    Ray cluster (--engine ray)."""
    rules = {"min_confidence": args.min_confidence, "min_reject_confidence": args.min_reject_confidence}
    settings = ClassifySettings(backend=args.backend, model_dir=model_dir, chat=args.chat,
                                concurrency=args.concurrency, rpm=args.rpm, max_retries=args.max_retries,
                                progress=not args.quiet, rules=rules)
    options = {"tensor_parallel_size": args.tensor_parallel_size} if args.backend == "vllm" else {}
    config = BackendConfig(model=args.model, base_url=args.base_url, api_key=key,
                           request_timeout=args.request_timeout, options=options)
    if args.engine == "ray":
        cluster = ray_settings(args)
        return lambda texts: classify_texts_ray(texts, settings, config, cluster)
    return lambda texts: classify_texts(texts, settings, config)


def train(args):
    """Train the embedded model on --train and save it; returns the folder it went to."""
    from realign.classifier.model import DEFAULT_MODEL_DIR, TaskClassifier

    texts, labels = load_labeled(args.train)
    if len(set(labels)) < 2:
        raise DataError(f"{args.train}: training needs instructions of at least two tasks, got only {labels[0]!r}")
    folder = args.save_model or DEFAULT_MODEL_DIR
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UsageError(f"{folder}: --save_model is a file, expected a folder")
    start = time.monotonic()
    model = TaskClassifier(encoder_dir=args.model_dir or DEFAULT_MODEL_DIR)
    with progress_bar(len(texts), "instr", desc="embedding", enabled=not args.quiet) as bar:
        try:
            model.fit(texts, labels, progress=bar)
        except ValueError as e:  # scikit-learn's word on data it cannot learn from (e.g. too few texts)
            raise DataError(f"{args.train}: cannot train on it: {e}") from None
    model.meta["trained_file"] = os.path.basename(args.train)
    model.save(folder)
    print(f"trained on {len(texts)} instructions, {len(set(labels))} tasks, in {time.monotonic() - start:.1f} s; "
          f"model saved to {folder}")
    return folder


def evaluate(args, run_classifier, model_dir=None):
    texts, gold = load_labeled(args.eval)
    start = time.monotonic()
    pred, failures, confidences = run_classifier(texts)
    seconds = time.monotonic() - start
    print(report(gold, [p or "(failed)" for p in pred]))
    if confidences is not None:
        print()
        guesses = best_guesses(texts, args, model_dir) if args.min_confidence > 0 else (pred, confidences)
        print(coverage_report(gold, *guesses, sorted({*THRESHOLDS, args.min_confidence})))
    print(f"\n{args.backend}: {len(texts)} instructions in {seconds:.1f} s ({len(texts) / seconds:.0f}/s)"
          + (f", {len(failures)} failed" if failures else ""))
    return 1 if failures else 0


def best_guesses(texts, args, model_dir=None):
    """The embedded model's labels without --min_confidence's `default`, and their confidences."""
    from realign.classifier.model import DEFAULT_MODEL_DIR, TaskClassifier

    model = TaskClassifier.load(model_dir or DEFAULT_MODEL_DIR)
    return model.classify(texts, min_reject_confidence=args.min_reject_confidence)


def load_input(args):
    """(records, format, rejected): bad records stop the run, or go aside with --skip_bad_records."""
    rejected = [] if args.skip_bad_records else None
    try:
        records, fmt = load_any(args.input_data_path, args.input_format, rejected, args.field_map)
    except BadRecordError as e:
        raise DataError(f"{e} (or pass --skip_bad_records to set bad records aside and go on)") from None
    if rejected is not None:  # written even when empty, so an old run's file does not linger
        write_rejected(rejected_path(args.output_path), rejected)
    if not records:
        raise DataError(f"{args.input_data_path}: all {len(rejected)} records are bad "
                        f"(first: record {rejected[0]['index']}: {rejected[0]['reason']}); "
                        f"reasons in {rejected_path(args.output_path)}")
    return records, fmt, rejected or []


def classify(args, run_classifier):
    records, fmt, rejected = load_input(args)
    check_ids_fit(args.output_path, records)  # a .parquet/.csv output that cannot hold them: before the work
    todo = [i for i, rec in enumerate(records) if args.overwrite or category(rec) is None]
    start = time.monotonic()
    labels, failures, confidences = (run_classifier([question(records[i]) for i in todo]) if todo
                                     else ([], {}, None))
    for n, (i, label) in enumerate(zip(todo, labels)):
        if label is not None:
            first = records[i]["items"][0]
            first["category"] = label
            first.pop("category_confidence", None)  # an earlier run's, for a label no longer there
            if confidences is not None:
                first["category_confidence"] = round(confidences[n], 4)
    write_records(args.output_path, records)
    seconds = time.monotonic() - start

    counts = Counter(category(rec) or "(none)" for rec in records)
    print("category distribution:")
    for task, n in counts.most_common():
        print(f"  {n:8d}  {n / len(records):6.1%}  {task}")
    if confidences is not None and args.min_confidence > 0:
        low = sum(c < args.min_confidence for c in confidences)
        print(f"{low} records under --min_confidence {args.min_confidence:g} labelled default")
    rate = f", {len(todo) / seconds:.0f}/s" if todo and seconds > 0 else ""
    tasks = [category(rec) for rec in records if category(rec)]
    print(f"output: {args.output_path}")
    if rejected:
        print(f"{len(rejected)} bad records set aside (first: record {rejected[0]['index']}: "
              f"{rejected[0]['reason']}); all in {rejected_path(args.output_path)}")
    print(f"classify ({args.backend}): {len(records)} records ({fmt}): {len(todo) - len(failures)} classified, "
          f"{len(records) - len(todo)} kept their category, {len(failures)} failed"
          + (f", {len(rejected)} bad records set aside" if rejected else "") + "; next steps: "
          f"{sum(t in RAG_TASKS for t in tasks)} to search for evidence, {sum(t in REWRITE_TASKS for t in tasks)} "
          f"to rewrite, {len(records) - sum(t in REWRITE_TASKS for t in tasks)} passed through unchanged; "
          f"{seconds:.1f} s{rate}")
    if failures:
        i, why = next(iter(failures.items()))
        print(f"{len(failures)} records could not be classified (first: "
              f"{where(args.input_data_path, todo[i], records[todo[i]])}: {why}); rerun with {args.output_path} as --input_data_path "
              f"(and a new --output_path) to retry them")
        return 1
    return 0


def main(argv=None):
    args = parse_args(argv)
    check_args(args)
    key = None if args.backend == "embedded" else api_key(args.backend, args.openai_key, key_file=args.openai_key_file,
                                                          base_url=args.base_url)
    model_dir = train(args) if args.train else args.model_dir
    run_classifier = classifier(args, key, model_dir)
    code = evaluate(args, run_classifier, model_dir) if args.eval else 0
    if args.input_data_path:
        code = max(code, classify(args, run_classifier))
    return code


if __name__ == "__main__":
    run(main)
