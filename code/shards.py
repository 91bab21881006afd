"""Shards of a reformat run: which records shard i of N holds, and its file names.

reformat.py process i of N writes, in `--output_directory`:
  rewrite_data_{i}_of_{N}_batch.jsonl   one finished record a line (appended as they finish)
  failures_{i}_of_{N}.jsonl             {"id", "reason"} a line for records that failed
parallel_data_merge.py finds them by these names. The split is contiguous and depends only on
(number of records, i, N), so every machine agrees which records belong to which shard.
"""

import os
import re

from realign.errors import DataError

SHARD_RE = re.compile(r"^rewrite_data_(\d+)_of_(\d+)_batch\.jsonl$")


def check_batch_args(batch_id, batch_num):
    if batch_num < 1:
        raise DataError(f"--dataset_batch_num must be >= 1, got {batch_num}")
    if not 0 <= batch_id < batch_num:
        raise DataError(f"--dataset_batch_id must be in 0..{batch_num - 1}, got {batch_id}")


def shard_bounds(n_records, batch_id, batch_num):
    """[start, end) of shard `batch_id` of `batch_num`: contiguous, sizes differ by at most 1."""
    check_batch_args(batch_id, batch_num)
    return n_records * batch_id // batch_num, n_records * (batch_id + 1) // batch_num


def shard_path(output_dir, batch_id, batch_num):
    return os.path.join(output_dir, f"rewrite_data_{batch_id}_of_{batch_num}_batch.jsonl")


def failures_path(output_dir, batch_id, batch_num):
    return os.path.join(output_dir, f"failures_{batch_id}_of_{batch_num}.jsonl")


def find_shards(output_dir):
    """{N: {i: path}} for every shard file in the folder."""
    if not os.path.isdir(output_dir):
        what = "is a file, expected the folder" if os.path.exists(output_dir) else "not found: the folder"
        raise DataError(f"{output_dir}: {what} reformat.py wrote its shards into (--output_directory)")
    found = {}
    for name in sorted(os.listdir(output_dir)):
        m = SHARD_RE.match(name)
        if m:
            i, n = int(m.group(1)), int(m.group(2))
            found.setdefault(n, {})[i] = os.path.join(output_dir, name)
    return found
