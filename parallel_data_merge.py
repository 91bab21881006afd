r"""Step 4: merge the shard outputs of N reformat.py processes into one dataset.

    python parallel_data_merge.py \
        --input_data_path dataset_retrieval_clean_evidence.json \
        --output_directory reformat_results \
        --final_output_path dataset_reformat.json

Joins by id and input hash (never by position): each input record takes the shard line made
from its current question, answer, system prompt, category and evidence, and every input
record must be accounted for exactly once. The output holds the input records in input order,
each response replaced by its rewrite where there is one; every other record keeps its
original, with the reason in items[1]["kept_original"] ("task not rewritten", "failed: ...",
...), and every record carries items[1]["input_hash"] for rewrite_data_selection.py to check.
Lines of records no longer in the input are ignored and counted. A record whose input changed
since reformat.py saw it stops the merge (rerun reformat.py: it redoes only those), or keeps
its original with --changed_input keep_original. A folder holding another dataset's run
stops the merge.
"""

import argparse

from realign.cli import check_not_input, run
from realign.merge import CHANGED_INPUT, merge
from realign.records import check_data_output, load_records, write_records
from realign.shards import pipeline_files


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input_data_path", required=True, help="the --input_data_path given to reformat.py")
    p.add_argument("--output_directory", required=True, help="the --output_directory given to reformat.py")
    p.add_argument("--final_output_path", required=True, help="merged dataset (.json, .jsonl, .parquet or .csv)")
    p.add_argument("--dataset_batch_num", type=int, default=None,
                   help="which run to merge when the folder holds shards of several N (default: the only one)")
    p.add_argument("--keep_first", action="store_true",
                   help="records written twice (two reformat.py processes on one shard, before shard locks): "
                        "keep each record's first line instead of stopping")
    p.add_argument("--allow_partial", action="store_true",
                   help="keep the original response for records in no shard (missing shards, killed runs) "
                        "instead of stopping with an error")
    p.add_argument("--changed_input", choices=CHANGED_INPUT, default="refuse",
                   help="records whose question, answer, system prompt, category or evidence changed since "
                        "reformat.py saw them: refuse (default: stop, naming them; rerun reformat.py, which "
                        "redoes only those) or keep_original (merge their originals, reason 'input changed "
                        "since reformat')")
    return p.parse_args(argv)


def summary_line(n, path, counts, keep_first=False):
    """The step's one summary line."""
    why = ", ".join(f"{k} {key.removeprefix('kept: ')}" for key, k in sorted(counts.items()) if key.startswith("kept: "))
    extra = [f"{counts[key]} {what}" for key, what in (
        ("changed", "changed since reformat (original kept, --changed_input keep_original)"),
        ("removed lines", "lines of records no longer in the input ignored"),
        ("superseded lines", "lines made from an older input ignored"),
        ("no input hash", "lines without an input hash (older reformat.py) matched by question and answer"),
    ) if counts[key]]
    if keep_first:
        extra.append(f"{counts['duplicate lines dropped']} duplicate lines dropped (--keep_first)")
    return (f"merged {n} records into {path}: {counts['rewritten']} rewritten, "
            f"{counts['passed through']} passed through" + (f" ({why})" if why else "")
            + f", {counts['failed']} failed (original kept), {counts['missing']} missing (original kept)"
            + "".join(f"; {x}" for x in extra))


def main(argv=None):
    args = parse_args(argv)
    check_data_output("--final_output_path", args.final_output_path)
    check_not_input({"--final_output_path": args.final_output_path},
                    [args.input_data_path, *pipeline_files(args.output_directory)])
    records = load_records(args.input_data_path)
    merged, counts, problems = merge(records, args.output_directory, args.dataset_batch_num, args.allow_partial,
                                     args.keep_first, args.changed_input, args.input_data_path)
    write_records(args.final_output_path, merged)
    for problem in problems:
        print(f"warning (--allow_partial, originals kept): {problem}")
    print(summary_line(len(merged), args.final_output_path, counts, args.keep_first))
    return 0


if __name__ == "__main__":
    run(main)
