"""Shards of a reformat run: which records shard i of N holds, and its file names.

reformat.py process i of N writes, in `--output_directory`:
  rewrite_data_{i}_of_{N}_batch.jsonl   one finished record a line (appended as they finish)
  failures_{i}_of_{N}.jsonl             {"id", "reason"} a line for records that failed
  rewrite_data_{i}_of_{N}_batch.jsonl.lock   held while a process writes the shard (ShardLock)
parallel_data_merge.py finds them by these names. The split is contiguous and depends only on
(number of records, i, N), so every machine agrees which records belong to which shard.
Both files are checked when read back (resume, merge): a line that is not what reformat.py
writes is a one-line DataError naming file and record, like bad user input.
"""

import fcntl
import os
import re
import socket

from realign.errors import DataError, UsageError
from realign.files import read_jsonl_tolerant
from realign.records import valid_id

SHARD_RE = re.compile(r"^rewrite_data_(\d+)_of_(\d+)_batch\.jsonl$")
FAILURES_RE = re.compile(r"^failures_(\d+)_of_(\d+)\.jsonl$")  # pipeline_files: what merge may not write over


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


def _damaged(path, n, problem):
    return DataError(f"{path}: record {n}: {problem}; not what reformat.py writes (damaged, or another "
                     f"program's file?): move it away or use another --output_directory")


def read_shard(path):
    """[(id, question, original answer, revised_response or None, kept_original reason or None)] of a
    shard output file, each line checked."""
    rows = []
    for n, obj in enumerate(read_jsonl_tolerant(path)[0]):
        if not isinstance(obj, dict):
            raise _damaged(path, n, f"a JSON {type(obj).__name__}, not a record")
        if not valid_id(obj.get("id")):
            raise _damaged(path, n, f"'id' must be an int or a string, got {type(obj.get('id')).__name__}")
        items = obj.get("items")
        if not (isinstance(items, list) and len(items) >= 2 and all(isinstance(i, dict) for i in items[:2])
                and isinstance(items[0].get("value"), str) and isinstance(items[1].get("value"), str)):
            raise _damaged(path, n, "'items' must start with a human and a gpt turn, each with a string value")
        revised, why_kept = items[1].get("revised_response"), items[1].get("kept_original")
        rows.append((obj["id"], items[0]["value"], items[1]["value"], revised if isinstance(revised, str) else None,
                     why_kept if isinstance(why_kept, str) else None))
    return rows


def read_failures(path):
    """{id: reason} of a failures file, each line checked."""
    failed = {}
    for n, obj in enumerate(read_jsonl_tolerant(path)[0]):
        if not isinstance(obj, dict) or not valid_id(obj.get("id")):
            raise _damaged(path, n, "expected {\"id\": int or string, \"reason\": string}")
        failed[obj["id"]] = str(obj.get("reason", "unknown"))
    return failed


def pipeline_files(output_dir):
    """Every shard output and failures file in the folder (what no later step may write over)."""
    if not os.path.isdir(output_dir):
        return []
    return [os.path.join(output_dir, n) for n in sorted(os.listdir(output_dir))
            if SHARD_RE.match(n) or FAILURES_RE.match(n)]


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


class ShardLock:
    """One writer per shard: `with ShardLock(shard_path(...)):` around writing it.

    An exclusive flock on `<shard>.lock`, which also holds the writer's pid and host. A second
    process on the same shard gets UsageError at once naming the holder; the kernel drops the
    lock of a process that dies (kill -9 included), so its leftover file is simply taken over.
    The file is removed on a clean exit; a process that opened it just before is told by the
    inode check and tries again on the new file.
    """

    def __init__(self, shard_file):
        self.path = f"{shard_file}.lock"
        self._fd = None

    def _holder(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                return f.read().strip() or "unknown"
        except OSError:
            return "unknown"

    def __enter__(self):
        for _ in range(100):  # bounded: only a race with unlinking makes it loop
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                pid, _, host = self._holder().partition(" ")
                raise UsageError(f"{self.path[:-5]}: another reformat.py is writing this shard (pid {pid}"
                                 f"{' on ' + host if host else ''}, lock {self.path}); wait for it or stop it, "
                                 "then rerun") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
                self._fd = fd
                return self
            os.close(fd)  # the holder removed it between our open and flock: take the new one
        raise UsageError(f"{self.path}: could not take the shard lock")

    def __exit__(self, *exc):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self._fd)
        return False
