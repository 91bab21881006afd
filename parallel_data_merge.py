r"""Step 4: merge the shard outputs of N reformat.py processes into one dataset.

    python parallel_data_merge.py \
        --input_data_path dataset_retrieval_clean_evidence.json \
        --output_directory reformat_results \
        --final_output_path dataset_reformat.json

Joins by id (never by position) and checks that every input record is accounted for exactly
once, and that each shard record still asks the input's question (same ids from another
dataset's run stop the merge). The output holds the input records in input order, each response replaced by its
rewrite where there is one; failed records keep their original response.
"""

import argparse

from realign.cli import check_not_input, run
from realign.merge import merge
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
                   help="ids written twice (two reformat.py processes on one shard, before shard locks): "
                        "keep each id's first line instead of stopping")
    p.add_argument("--allow_partial", action="store_true",
                   help="keep the original response for records in no shard (missing shards, killed runs) "
                        "instead of stopping with an error")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    check_data_output("--final_output_path", args.final_output_path)
    check_not_input({"--final_output_path": args.final_output_path},
                    [args.input_data_path, *pipeline_files(args.output_directory)])
    records = load_records(args.input_data_path)
    merged, counts, problems = merge(records, args.output_directory, args.dataset_batch_num, args.allow_partial,
                                     args.keep_first)
    write_records(args.final_output_path, merged)
    for problem in problems:
        print(f"warning (--allow_partial, originals kept): {problem}")
    why = ", ".join(f"{n} {key.removeprefix('kept: ')}" for key, n in sorted(counts.items()) if key.startswith("kept: "))
    print(f"merged {len(merged)} records into {args.final_output_path}: "
          f"{counts['rewritten']} rewritten, {counts['passed through']} passed through" + (f" ({why})" if why else "")
          + f", {counts['failed']} failed (original kept), {counts['missing']} missing (original kept)"
          + (f"; {counts['duplicate lines dropped']} duplicate lines dropped (--keep_first)" if args.keep_first else ""))
    return 0


if __name__ == "__main__":
    run(main)
