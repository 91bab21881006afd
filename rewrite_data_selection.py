r"""Step 5: keep a rewrite only when it is faithful to the original; otherwise keep the original.

    python rewrite_data_selection.py \
        --input_original_data_path dataset_retrieval_clean_evidence.json \
        --input_rewrite_data_path dataset_reformat.json \
        --output_path realign_dataset.json

The two files are joined by id; both must hold the same ids with the same questions.
Every record is written, tagged "rewrite" (rewrite accepted) or "original" (not rewritten, or
a rule rejected the rewrite). The rules are the plain functions below: edit them, add your
own, and list them in RULESETS. A rule gets a Pair (p.question, p.original, p.rewrite,
p.category, p.length) and returns None when it has no objection, a short reason string to
reject the rewrite, or ACCEPT to accept it without asking the remaining rules.

Lengths are counted with p.length: tokens of the --tokenizer_path tokenizer when given, else
the tokenizer-free length described in realign/lengths.py.
"""

import argparse
import os
import re

from realign.cli import check_not_input, run
from realign.constant import DEFAULT_TASK, EXAM_TASKS
from realign.errors import UsageError
from realign.files import write_json
from realign.lengths import make_length_fn
from realign.records import load_records, write_records
from realign.report import write_report
from realign.selection import ACCEPT, final_number, has_code, join_by_id, select, stats_as_json


# ---------------------------------------------------------------- the rules

def length_ratio(p):
    """A rewrite at most half as long as the original has lost content."""
    if p.length(p.rewrite) <= 0.5 * p.length(p.original):
        return f"rewrite is <= 0.5x the original's length ({p.length(p.rewrite)} vs {p.length(p.original)})"


def code_consistency(p):
    """Code in the original must stay code in the rewrite, and no code may appear from nowhere."""
    before, after = has_code(p.original), has_code(p.rewrite)
    if before and not after:
        return "the original has code, the rewrite does not"
    if after and not before:
        return "the rewrite adds code the original did not have"


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
    """The rewriter's protocol label must not leak into the answer."""
    if "revised response" in p.rewrite.lower():
        return "the rewrite still contains the 'Revised response' label"


def planning_needs_a_plan(p):
    """Only restructure as a plan when the question actually asks for one."""
    if p.category == "planning" and "plan" not in p.question.lower():
        return "planning rewrite, but the question does not mention a plan"


def final_answer_kept(p):
    """Ours: for math and exam tasks the rewrite must end on the original's final number."""
    if p.category not in EXAM_TASKS:
        return None
    before = final_number(p.original)
    if before is None:
        return None
    after = final_number(p.rewrite)
    if after is None or abs(after - before) > 1e-6 * max(1.0, abs(before)):
        return f"final numeric answer changed ({before:g} -> {after if after is None else format(after, 'g')})"


RULESETS = {
    "open_platypus": [true_false_original, prompt_template_leak, exam_original_too_short,
                      single_char_answer_kept, length_ratio, code_consistency, final_answer_kept],
    "alpaca": [length_ratio, code_consistency, no_leftover_label, final_answer_kept],
    "no_robots": [not_default, no_leftover_label, planning_needs_a_plan, length_ratio,
                  code_consistency, final_answer_kept],
    "none": [],
}


# ---------------------------------------------------------------- the step

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input_original_data_path", required=True, help="the dataset before reformatting")
    p.add_argument("--input_rewrite_data_path", required=True, help="the merged output of parallel_data_merge.py")
    p.add_argument("--output_path", required=True, help="the final dataset (.json or .jsonl)")
    p.add_argument("--tokenizer_path", default=None,
                   help="HF tokenizer folder (tokenizer.json) to count tokens; default: tokenizer-free length")
    p.add_argument("--rules", choices=sorted(RULESETS), default="open_platypus",
                   help="which combination of rules to apply (default: open_platypus)")
    p.add_argument("--report_path", default=None, help="write the counts per rule and per category as JSON")
    p.add_argument("--report_dir", default=None,
                   help="write report.html with figures and before/after samples into this folder")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    check_not_input({"--output_path": args.output_path, "--report_path": args.report_path},
                    [args.input_original_data_path, args.input_rewrite_data_path])
    if args.report_dir and os.path.exists(args.report_dir) and not os.path.isdir(args.report_dir):
        raise UsageError(f"{args.report_dir}: --report_dir is a file, expected a folder")
    originals = load_records(args.input_original_data_path)
    rewrites = load_records(args.input_rewrite_data_path)
    joined = join_by_id(originals, rewrites, args.input_original_data_path, args.input_rewrite_data_path)
    length = make_length_fn(args.tokenizer_path)
    out, stats, decisions = select(joined, RULESETS[args.rules], length)
    write_records(args.output_path, out)
    if args.report_path:
        write_json(args.report_path, {"rules": args.rules, **stats_as_json(stats), "decisions": decisions})
    if args.report_dir:
        page = write_report(args.report_dir, joined, stats, decisions, length, rules=args.rules)

    print(f"rules: {args.rules}")
    for rule, n in stats["rejected_by_rule"].most_common():
        print(f"  rejected by {rule:<26} {n}")
    print(f"  {'category':<34} {'total':>6} {'rewrite':>8} {'rejected':>9} {'as is':>6}")
    for cat, n in sorted(stats["per_category"].items()):
        print(f"  {cat:<34} {n['total']:>6} {n['accepted']:>8} {n['rejected']:>9} {n['not_rewritten']:>6}")
    print(f"selected {len(out)} records into {args.output_path}: {stats['accepted']} rewrites accepted, "
          f"{stats['rejected']} rejected (original kept), {stats['not_rewritten']} not rewritten")
    if args.report_dir:
        print(f"report: {page}")
    return 0


if __name__ == "__main__":
    run(main)
