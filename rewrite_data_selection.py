r"""Step 5: keep a rewrite only when it is faithful to the original; otherwise keep the original.

    python rewrite_data_selection.py \
        --input_original_data_path dataset_retrieval_clean_evidence.json \
        --input_rewrite_data_path dataset_reformat.json \
        --output_path realign_dataset.json

The two files are joined by id; both must hold the same ids with the same questions.
Every record is written, tagged "rewrite" (rewrite accepted) or "original" (not rewritten, or
a rule rejected the rewrite). The rules are the plain functions below: edit them, add your
own, and list them in RULESETS. A rule gets a Pair (p.question, p.original, p.rewrite,
p.category, p.length, p.evidence, and p.twins / p.n_twins: the other records given the same
rewrite for another original) and returns None when it has no objection, a short reason string
to reject the rewrite (reject(reason, marks) to also name the words the report should
highlight), or ACCEPT to accept it without asking the remaining rules. A rule that runs a model
is faster over many records at once: mark it @batched, and it gets the list of Pairs still
undecided at its turn and returns one verdict per Pair.

The first rules check that the rewrite is faithful (no new facts, no refusal, no echo of our
prompt, not cut off, not one text for many records); the rest are the ReAlign paper's shape
rules for each dataset.

With --judge_model an LLM on any OpenAI-compatible endpoint (realign.judge) reads every rewrite
the rules accept and rejects one holding a claim the original does not support or missing a
fact of it (judge_reason below turns its verdict into the rule's answer); its verdicts are kept
in a journal, so a rerun asks only about new rewrites, and --dry_run prices it first.

Lengths are counted with p.length: tokens of the --tokenizer_path tokenizer when given, else
the tokenizer-free length described in code/lengths.py.
"""

import argparse
import os
import re

from realign.cli import check_flags, check_not_input, run
from realign.constant import DEFAULT_TASK, EXAM_TASKS
from realign.errors import UsageError
from realign.export import OUTPUT_FORMATS, export_records
from realign.facts import new_facts as facts_missing_from
from realign.faithful import shared_checker
from realign.files import all_or_nothing, write_json
from realign.judge import Judge, JudgeSettings, as_rule
from realign.lengths import make_length_fn
from realign.llm.base import BACKENDS, BackendConfig, api_key, make_backend
from realign.merge import CHANGED_INPUT
from realign.records import check_data_output, load_records, write_records
from realign.report import write_report
from realign.selection import (ACCEPT, IDENTICAL, batched, join_by_id, kept_line, reject,  # noqa: F401
                               select, stats_as_json)
from realign.textchecks import (answer_marked, answer_numbers, code_from, code_layout_lost, echoed_prompt,
                                ends_mid_sentence, final_number, has_code, numbers, open_code_block, question_line,
                                refusal_phrase, same_value, unwrap_prose_fence)


# ---------------------------------------------------------------- faithfulness rules (every preset)

def empty_original(p):
    """An empty original gives the rewriter nothing to be faithful to: whatever it wrote is invented."""
    if not p.original.strip():
        return "the original answer is empty: the rewrite can only be invented"


def refusal_added(p):
    """The rewrite declines or apologises where the original answered."""
    phrase = refusal_phrase(p.rewrite)
    if phrase and not refusal_phrase(p.original):
        return f"the rewrite declines or apologises ({phrase!r}) where the original answered"


def prompt_echo(p):
    """The rewrite repeats our own prompt (its labels, rules or layout text) instead of answering."""
    phrase = echoed_prompt(p.rewrite, exclude=p.question + "\n" + p.original)
    if phrase:
        return f"the rewrite echoes our prompt: {phrase!r}"


def question_repeated(p):
    """The rewrite copies the question as one of its lines, where the original did not."""
    line = question_line(p.rewrite, p.question, p.original)
    if line:
        return f"the rewrite repeats the question word for word: {line[:80]!r}"


def same_rewrite_many_records(p):
    """One rewrite text returned for records with different originals fits at most one of them."""
    if p.n_twins:
        ids = ", ".join(map(str, p.twins)) + (" …" if p.n_twins > len(p.twins) else "")
        return f"the same rewrite was returned for {p.n_twins} other record(s) with a different original (ids {ids})"


def truncated(p):
    """A rewrite that stops mid-sentence or inside an open code block was cut off."""
    if open_code_block(p.rewrite) and not open_code_block(p.original):
        return "the rewrite ends inside an open ``` code block"
    if ends_mid_sentence(p.rewrite) and not ends_mid_sentence(p.original):
        last = p.rewrite.strip().splitlines()[-1].strip()
        return f"the rewrite ends mid-sentence: {last[-40:]!r}"


def new_facts(p):
    """Numbers, URLs, e-mail addresses and names that the question, the original and the evidence
    never state were invented by the rewriter. Layout (list numbers, headings, capitals at the
    start of a sentence, 1,000 vs 1000) does not count; math tasks may show arithmetic steps."""
    new = facts_missing_from(p.rewrite, [p.question, p.original, *p.evidence], arithmetic=p.category in EXAM_TASKS)
    if new:
        shown = ", ".join(repr(w) for w in new[:3]) + (f" and {len(new) - 3} more" if len(new) > 3 else "")
        return reject(f"the rewrite states {shown}, found nowhere in the question, original or evidence", new)


def numbers_kept(p):
    """Every number of the original must still be in the rewrite (by value: 1,000 = 1000 = 1k,
    twelve = 12, in any script's digits): one that is gone was lost or changed, as when "12 to 18
    hours" becomes "12 to 24 hours", "12小时" becomes "18小时" or "twelve" becomes "eighteen"."""
    gone = facts_missing_from(p.original, [p.rewrite], arithmetic=p.category in EXAM_TASKS, numbers_only=True,
                              words=True)
    if gone:
        shown = ", ".join(repr(w) for w in gone[:3]) + (f" and {len(gone) - 3} more" if len(gone) > 3 else "")
        return f"the original's {shown} no longer appear(s) in the rewrite"


@batched
def meaning_kept(pairs):
    """Ours: the CPU faithfulness checker (realign.faithful) reads meaning. No rewrite sentence may
    contradict the original (a negation or an opposite word flipped, two words swapped, another
    verdict) or add a claim that the question, original and evidence do not support; no sentence
    of the original may be lost; and the rewrite must answer the request, not restate it. The
    reason names the sentence and what was found. Batched: the encoder reads many records at once."""
    verdicts = shared_checker().score_many([(p.question, p.original, p.rewrite, p.evidence, p.category in EXAM_TASKS)
                                            for p in pairs])
    out = []
    for p, v in zip(pairs, verdicts):
        if not v.flagged:
            out.append(None)
        elif v.direction == "lost":
            out.append(reject(v.reason(), original_marks=[v.sentence] if v.sentence in p.original else []))
        else:
            out.append(reject(v.reason(), [v.sentence] if v.sentence in p.rewrite else []))
    return out


# ---------------------------------------------------------------- shape rules (ReAlign paper) and ours

def length_ratio(p):
    """A rewrite at most half as long as the original has lost content."""
    if p.length(p.rewrite) <= 0.5 * p.length(p.original):
        return f"rewrite is <= 0.5x the original's length ({p.length(p.rewrite)} vs {p.length(p.original)})"


def code_consistency(p):
    """Code in the original must stay code in the rewrite, and no code may appear from nowhere
    (a reply wrapped whole in a ``` fence around prose is not code, and fencing code the original
    gave inline, or putting a fenced one-liner inline, moves code: it neither adds nor drops it;
    nor does showing the question's code, fixed as the original says)."""
    before, after = has_code(p.original), has_code(unwrap_prose_fence(p.rewrite))
    if before and not after and not code_from(p.original, p.rewrite):
        return "the original has code, the rewrite does not"
    if after and not before and not code_from(p.rewrite, p.question + "\n" + p.original):
        return "the rewrite adds code the original did not have"
    lost = before and code_layout_lost(p.original, p.rewrite)
    if lost:
        return f"the rewrite lost the code's layout: {lost[:60]!r} is no longer a code line with its indentation"


def exam_original_too_short(p):
    """An exam answer of 5 characters or fewer ('B', '42') gives the rewriter nothing to keep
    faithful to: it would have to invent the reasoning."""
    if p.category in EXAM_TASKS and len(p.original.strip()) <= 5:
        return "exam answer in the original is 5 characters or fewer"


def true_false_original(p):
    """An original that is just True or False is safe to expand: accept the rewrite."""
    if p.original.strip().rstrip(".").lower() in ("true", "false"):
        return ACCEPT


def single_char_answer_kept(p):
    """A one-character original (a choice letter or digit) must appear on its own in the rewrite."""
    answer = p.original.strip()
    if len(answer) == 1 and not re.search(rf"(?<![\w]){re.escape(answer)}(?![\w])", p.rewrite):
        return f"the original answer {answer!r} does not appear as a standalone token in the rewrite"


def prompt_template_leak(p):
    """Originals that contain a prompt template are broken data: don't build on them."""
    if "### Instruction:" in p.original or "### Response:" in p.original:
        return "the original contains a '### Instruction:'/'### Response:' template"


def not_default(p):
    """Rewrites of the catch-all task have no format to follow: keep the original."""
    if p.category == DEFAULT_TASK:
        return "task is default"


def no_leftover_label(p):
    """The rewriter's protocol label must not leak into the answer (an original that itself holds
    the words as often is data: a text about prompts or edits)."""
    said = p.rewrite.lower().count("revised response")
    if said > p.original.lower().count("revised response"):
        return "the rewrite still contains the 'Revised response' label"


def planning_needs_a_plan(p):
    """Only restructure as a plan when the question actually asks for one."""
    if p.category == "planning" and "plan" not in p.question.lower():
        return "planning rewrite, but the question does not mention a plan"


def kept_number(value, text):
    """Does `text` state `value` (in digits or words)?"""
    return any(same_value(value, n.value) for n in numbers(text))


def final_answer_kept(p):
    """Ours: for math and exam tasks the rewrite must end on the original's final number (the
    last number, or the first after the last 'answer' marker), or state it in its answer line."""
    if p.category not in EXAM_TASKS:
        return None
    before = final_number(p.original)
    if before is None:
        return None
    if any(same_value(after, before) for after in answer_numbers(p.rewrite)):
        return None
    after = final_number(p.rewrite)
    stated = answer_numbers(p.rewrite)
    if stated and not answer_marked(p.original) and kept_number(before, p.rewrite) \
            and all(kept_number(v, p.original) for v in stated):
        # an original with no answer line may end on a check or an aside ("... shorter than the
        # three hours the faster pipe needs"): its last number is then no answer. The rewrite
        # keeps it, and every number of its answer line and closing line is one the original states.
        return None
    return f"final numeric answer changed ({before:g} -> {after if after is None else format(after, 'g')})"


# Faithfulness first: true_false_original accepts outright, so everything that must hold for
# every rewrite runs before it. final_answer_kept comes before new_facts: "the answer changed
# from 4 to 5" says more than "states '5'". meaning_kept, the slowest, runs after the cheaper
# rules, so the model reads only what they let through, but before an outright accept: a rewrite
# of a True/False original must not flip its verdict.
FAITHFUL = [empty_original, refusal_added, prompt_echo, question_repeated, no_leftover_label, same_rewrite_many_records,
            truncated, final_answer_kept, new_facts, numbers_kept]

RULESETS = {
    "open_platypus": FAITHFUL + [meaning_kept, true_false_original, prompt_template_leak, exam_original_too_short,
                                 single_char_answer_kept, length_ratio, code_consistency],
    "alpaca": FAITHFUL + [length_ratio, code_consistency, meaning_kept],
    "no_robots": FAITHFUL + [not_default, planning_needs_a_plan, length_ratio, code_consistency, meaning_kept],
    "none": [],
}


# ---------------------------------------------------------------- the LLM judge (--judge_model)

def judge_reason(v):
    """The judge's verdict on one rewrite (realign.judge.JudgeVerdict) as a rule's answer: reject
    a rewrite holding a claim the original does not support, or missing a fact of the original.
    None when it found neither, or could not judge the rewrite (the rules' verdict stands)."""
    if v is None or v.error:
        return None
    for what, items in (("unsupported claim", v.unsupported), ("lost fact", v.lost)):
        if items:
            text, why = items[0]
            more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
            return reject(f"the judge: {what} {text[:200]!r}" + (f": {why[:200]}" if why else "") + more,
                          marks=[t for t, _ in v.unsupported], original_marks=[t for t, _ in v.lost])


# ---------------------------------------------------------------- the step

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input_original_data_path", required=True, help="the dataset before reformatting")
    p.add_argument("--input_rewrite_data_path", required=True, help="the merged output of parallel_data_merge.py")
    p.add_argument("--output_path", required=True, help="the final dataset (.json, .jsonl, .parquet or .csv)")
    p.add_argument("--output_format", choices=OUTPUT_FORMATS, default="realign",
                   help="shape of the final records: realign (default), or alpaca / sharegpt / messages "
                        "for an SFT trainer (LLaMA-Factory, axolotl, TRL)")
    p.add_argument("--tokenizer_path", default=None,
                   help="HF tokenizer folder (tokenizer.json) to count tokens; default: tokenizer-free length")
    p.add_argument("--rules", choices=sorted(RULESETS), default="open_platypus",
                   help="which combination of rules to apply; every one but none starts with the faithfulness "
                        "rules (default: open_platypus)")
    p.add_argument("--report_path", default=None, help="write the counts per rule and per category as JSON")
    p.add_argument("--report_dir", default=None,
                   help="write report.html into this folder: figures and every record, filterable, with its "
                        "before/after and the reason for its outcome")
    p.add_argument("--changed_input", choices=CHANGED_INPUT, default="refuse",
                   help="records whose original (question, answer, system prompt, category or evidence) changed "
                        "since reformat.py worked on them: refuse (default: stop, naming them) or keep_original "
                        "(ship the original as it is now, reason 'input changed since reformat')")
    p.add_argument("--dry_run", action="store_true",
                   help="apply the rules and print what would be kept and what the judge would be asked (and "
                        "its cost, with --price_in/--price_out); write nothing, ask nothing")
    p.add_argument("--workers", type=int, default=1,
                   help="processes that apply the rules, each pinned to one CPU (default 1: the checker's model "
                        "already runs on every CPU in threads; more help on many-core machines, where the "
                        "rules' own Python work adds up)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("LLM judge (optional): an LLM reads every rewrite the rules accept and rejects one "
                             "that states what the original does not support or loses a fact of it")
    g.add_argument("--judge_model", default=None, help="model name; turns the judge on (e.g. gpt-4o-mini)")
    g.add_argument("--judge_backend", default="openai", choices=sorted(BACKENDS),
                   help="as reformat.py's --backend (default: openai, any OpenAI-compatible endpoint)")
    g.add_argument("--judge_base_url", default=os.environ.get("OPENAI_BASE_URL"),
                   help="OpenAI-compatible endpoint of the judge (default: $OPENAI_BASE_URL)")
    g.add_argument("--judge_key", default=None,
                   help="API key of the judge (visible to other users in `ps`: prefer OPENAI_API_KEY or "
                        "--judge_key_file)")
    g.add_argument("--judge_key_file", default=None, metavar="PATH", help="read the judge's API key from this file")
    g.add_argument("--judge_max_tokens", type=int, default=1024, help="most tokens of one verdict (default 1024)")
    g.add_argument("--judge_concurrency", type=int, default=None, help="judge requests in flight (default 32)")
    g.add_argument("--judge_rpm", type=float, default=None, help="client-side cap on judge requests per minute")
    g.add_argument("--judge_tpm", type=float, default=None, help="client-side cap on judge tokens per minute")
    g.add_argument("--judge_max_retries", type=int, default=5, help="retries per rewrite (default 5)")
    g.add_argument("--judge_request_timeout", type=float, default=120.0, help="seconds per judge request")
    g.add_argument("--judge_journal", default=None,
                   help="JSONL file of the judge's verdicts, kept between runs so that a rerun (or a run with "
                        "other rules) asks only about rewrites not judged yet (default: OUTPUT_PATH.judge.jsonl)")
    g.add_argument("--price_in", type=float, default=None, help="$ per 1M judge input tokens (for --dry_run)")
    g.add_argument("--price_out", type=float, default=None, help="$ per 1M judge output tokens (for --dry_run)")
    return p.parse_args(argv)


def make_judge(args, length):
    """The Judge the --judge_* flags ask for, or None without --judge_model."""
    if not args.judge_model:
        return None
    check_flags(args, at_least={"judge_max_tokens": 16, "judge_concurrency": 1, "judge_max_retries": 0},
                positive=("judge_rpm", "judge_tpm", "judge_request_timeout"))
    key = api_key(args.judge_backend, args.judge_key, key_file=args.judge_key_file, base_url=args.judge_base_url,
                  required=not args.dry_run, flag="--judge_key", url_flag="--judge_base_url")
    config = BackendConfig(model=args.judge_model, base_url=args.judge_base_url, api_key=key,
                           request_timeout=args.judge_request_timeout)
    settings = JudgeSettings(model=args.judge_model, max_tokens=args.judge_max_tokens,
                             concurrency=args.judge_concurrency, rpm=args.judge_rpm, tpm=args.judge_tpm,
                             max_retries=args.judge_max_retries)
    backend = None if args.dry_run else make_backend(args.judge_backend, config)
    journal = args.judge_journal or args.output_path + ".judge.jsonl"
    return Judge(backend, settings, journal=journal, length=length, dry_run=args.dry_run, progress=not args.quiet)


def print_dry_run(args, stats, judge):
    print(f"dry run, rules {args.rules}: {stats['total']} records, {stats['rewritten']} rewritten; the rules would "
          f"accept {stats['accepted']} rewrites and reject {stats['rejected']}; nothing written")
    for rule, n in stats["rejected_by_rule"].most_common():
        print(f"  rejected by {rule:<26} {n}")
    if judge:
        j = judge.stats
        print(f"judge {args.judge_model}: would ask about {j.would_ask} rewrites ({j.from_journal} more already in "
              f"{judge.journal.path}); estimated tokens: {j.tokens_in:,} in, {j.tokens_out:,} out")
        if args.price_in is not None or args.price_out is not None:
            cost = j.tokens_in / 1e6 * (args.price_in or 0) + j.tokens_out / 1e6 * (args.price_out or 0)
            print(f"estimated cost: ${cost:,.2f}")


def main(argv=None):
    args = parse_args(argv)
    check_data_output("--output_path", args.output_path)
    check_flags(args, at_least={"workers": 1})
    check_not_input({"--output_path": args.output_path, "--report_path": args.report_path,
                     "--judge_journal": args.judge_journal},
                    [args.input_original_data_path, args.input_rewrite_data_path])
    if args.report_dir and os.path.exists(args.report_dir) and not os.path.isdir(args.report_dir):
        raise UsageError(f"{args.report_dir}: --report_dir is a file, expected a folder")
    length = make_length_fn(args.tokenizer_path)
    judge = make_judge(args, length)
    originals = load_records(args.input_original_data_path)
    rewrites = load_records(args.input_rewrite_data_path)
    joined = join_by_id(originals, rewrites, args.input_original_data_path, args.input_rewrite_data_path,
                        args.changed_input)
    rules = RULESETS[args.rules] + ([as_rule(judge, judge_reason)] if judge else [])
    try:
        out, stats, decisions = select(joined, rules, length, workers=args.workers,
                                       progress=not args.quiet)
    finally:
        if judge:
            judge.close()
    if args.dry_run:
        print_dry_run(args, stats, judge)
        return 0
    if judge:
        stats["judge"] = judge.summary()
        for d in decisions:
            verdict = judge.by_id.get(d["id"])
            if verdict is not None:
                d["judge"] = verdict.as_json()
    with all_or_nothing(args.output_path, args.report_path, args.report_dir):  # exit 2: none of them
        write_records(args.output_path, export_records(out, args.output_format, args.output_path))
        if args.report_path:
            write_json(args.report_path, {"rules": args.rules, **stats_as_json(stats), "decisions": decisions})
        if args.report_dir:
            page = write_report(args.report_dir, joined, stats, decisions, length, rules=args.rules)

    print(f"rules: {args.rules}" + (f" + judge {args.judge_model}" if judge else ""))
    for rule, n in stats["rejected_by_rule"].most_common():
        print(f"  rejected by {rule:<26} {n}")
    print(f"  {'category':<34} {'total':>6} {'rewrite':>8} {'rejected':>9} {'as is':>6}")
    for cat, n in sorted(stats["per_category"].items()):
        print(f"  {cat:<34} {n['total']:>6} {n['accepted']:>8} {n['rejected']:>9} {n['not_rewritten']:>6}")
    if judge:
        print(judge.line())
    print(f"selected {len(out)} records into {args.output_path} ({args.output_format}): "
          f"{stats['accepted']} rewrites accepted, {stats['rejected']} rejected (original kept), {kept_line(stats)}")
    identical = stats["kept"].get(IDENTICAL, 0)
    if identical:
        print(f"  (parallel_data_merge.py counted {stats['rewritten'] + identical} rewritten: these "
              f"{stats['rewritten']} and the {identical} identical to their original)")
    if args.report_dir:
        print(f"report: {page}")
    return 0


if __name__ == "__main__":
    run(main)
