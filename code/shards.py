"""Shards of a reformat run: which records shard i of N holds, its file names, resume state.

reformat.py process i of N writes, in `--output_directory`:
  rewrite_data_{i}_of_{N}_batch.jsonl   one finished record a line (appended as they finish)
  failures_{i}_of_{N}.jsonl             {"id", "reason"} a line for records that failed
parallel_data_merge.py finds them by these names. The split is contiguous and depends only on
(number of records, i, N), so every machine agrees which records belong to which shard.
"""

import json
import os
import re

from realign.records import DataError

SHARD_RE = re.compile(r"^rewrite_data_(\d+)_of_(\d+)_batch\.jsonl$")
FAILURES_RE = re.compile(r"^failures_(\d+)_of_(\d+)\.jsonl$")


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


def read_jsonl_tolerant(path):
    """(objects, torn) from a JSONL file being appended to; a torn last line is skipped.

    A line that is not valid JSON anywhere but at the very end means real corruption and
    raises DataError; at the end it is what `kill -9` mid-write leaves, so it is ignored.
    """
    if not os.path.exists(path):
        return [], False
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    objs, torn = [], False
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            objs.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            if n == len(lines):  # last line, no newline after it: a torn write
                torn = True
            else:
                raise DataError(f"{path}: line {n}: not valid JSON (only a torn last line is skipped)") from None
    return objs, torn


def drop_torn_tail(path):
    """Cut a file back to its last newline so appends start on a fresh line."""
    if not os.path.exists(path):
        return
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


class JsonlAppender:
    """Append one JSON object a line, flushed per line so a crash loses at most that line."""

    def __init__(self, path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        drop_torn_tail(path)
        self._f = open(path, "a", encoding="utf-8")

    def write(self, obj):
        self._f.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self._f.flush()

    def close(self):
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
