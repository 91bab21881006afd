"""Shards of a reformat run: which records shard i of N holds, its file names, and its rows.

reformat.py process i of N writes, in `--output_directory`:
  rewrite_data_{i}_of_{N}_batch.jsonl   one finished record a line (appended as they finish)
  failures_{i}_of_{N}.jsonl             {"id", "reason", "input_hash"} a line for records that failed
  rewrite_data_{i}_of_{N}_batch.jsonl.lock   held while a process writes the shard (ShardLock)
parallel_data_merge.py finds them by these names. The split is contiguous and depends only on
(number of records, i, N), so every machine agrees which records belong to which shard.

Every line carries the input hash of the record it was made from (records.input_hash), and a
record is matched by id *and* that hash (`matches`), never by position or by shard: a record
that moved to another shard (one removed or added before it) is still done, a record whose
question, answer, system prompt, category or evidence changed is not. Lines written before
input hashes match by question and answer.

Both files are checked when read back (resume, merge): a line that is not what reformat.py
writes is a one-line DataError naming file and record, like bad user input.
"""

import fcntl
import os
import re
import socket
from typing import NamedTuple

from realign.errors import DataError, UsageError
from realign.files import open_nofollow, read_jsonl_tolerant
from realign.records import answer, question, valid_id

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


def lock_path(shard_file):
    return f"{shard_file}.lock"


# Why a line keeps the original answer (items[1]["kept_original"]), besides the model's own
# "format does not fit" (prompts.FORMAT_DOES_NOT_FIT); merge adds its own reasons (merge.py).
EMPTY_ORIGINAL, NO_CATEGORY, TASK_NOT_REWRITTEN = "empty original", "no category", "task not rewritten"


# ---------------------------------------------------------------- reading rows back

class ShardRow(NamedTuple):
    """One line of a shard output file, as resume and merge read it."""
    id: object
    question: str
    answer: str               # the original answer, as it was when the line was written
    revised: str | None       # items[1].revised_response: the rewrite; None when the original stays
    kept: str | None          # items[1].kept_original: why the original stays, when reformat said
    input_hash: str | None    # items[1].input_hash; None on lines written before input hashes


class Failure(NamedTuple):
    """One line of a failures file."""
    reason: str
    input_hash: str | None    # None on lines written before input hashes


def matches(line, rec, digest):
    """Was `line` (a ShardRow or Failure) made from `rec` as it is now? `digest` is
    input_hash(rec). A line without a hash (an older reformat.py) is matched by question and
    answer where it has them, and is taken as it is where it has not (a failure)."""
    if line.input_hash is not None:
        return line.input_hash == digest
    if isinstance(line, ShardRow):
        return line.question == question(rec) and line.answer == answer(rec)
    return True


def _damaged(path, n, problem, rid=None):
    at = f"record {n}" + (f" (id={rid!r})" if rid is not None else "")
    return DataError(f"{path}: {at}: {problem}; not what reformat.py writes (damaged, or another "
                     f"program's file?): move it away or use another --output_directory")


def read_shard(path):
    """[ShardRow] of a shard output file, each line checked: a line whose revised_response (or
    kept_original, input_hash) is there but not text is damaged, never taken as a pass-through."""
    rows = []
    for n, obj in enumerate(read_jsonl_tolerant(path)[0]):
        if type(obj) is not dict:
            raise _damaged(path, n, f"a JSON {type(obj).__name__}, not a record")
        rid = obj.get("id")
        if not valid_id(rid):
            raise _damaged(path, n, f"'id' must be an int or a string, got {type(rid).__name__}")
        items = obj.get("items")
        try:
            human, gpt = items[0], items[1]
            question, answer = human["value"], gpt["value"]
            ok = type(question) is str and type(answer) is str and type(gpt) is dict and type(items) is list
        except (TypeError, KeyError, IndexError):
            ok = False
        if not ok:
            raise _damaged(path, n, "'items' must start with a human and a gpt turn, each with a string value", rid)
        revised, kept, digest = gpt.get("revised_response"), gpt.get("kept_original"), gpt.get("input_hash")
        for key, value in (("revised_response", revised), ("kept_original", kept), ("input_hash", digest)):
            if value is not None and type(value) is not str:
                raise _damaged(path, n, f"items[1].{key} must be text, got {type(value).__name__}", rid)
        rows.append(ShardRow(rid, question, answer, revised, kept, digest))
    return rows


def read_failures(path):
    """{id: Failure} of a failures file, each line checked."""
    failed = {}
    for n, obj in enumerate(read_jsonl_tolerant(path)[0]):
        if not isinstance(obj, dict) or not valid_id(obj.get("id")):
            raise _damaged(path, n, "expected {\"id\": int or string, \"reason\": string}")
        digest = obj.get("input_hash")
        failed[obj["id"]] = Failure(str(obj.get("reason", "unknown")), digest if isinstance(digest, str) else None)
    return failed


def check_same_dataset(rows, by_id, where, input_path=None):
    """DataError when none of the folder's lines (`rows`, ShardRows) is of a record of the input
    (`by_id`: {id: record}): same id and the same question or the same answer. Then the folder
    holds another dataset's run, and using it would throw that run's paid work away. Edited,
    removed and reordered records are not that: most lines still share a record."""
    n = 0
    for n, row in enumerate(rows, 1):
        rec = by_id.get(row.id)
        if rec is not None and (row.question == question(rec) or row.answer == answer(rec)):
            return
    if not n:
        return
    raise DataError(f"{where}: none of its {n} finished records is a record of "
                    f"{input_path or 'the input'} (same id with the same question or answer): it holds "
                    f"another dataset's run; use another --output_directory")


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


def run_files(output_dir, batch_num):
    """{i: shard file} of the run with N = batch_num in the folder; DataError when the folder
    holds the shards of a run with another N (a different run: merge could not tell them
    apart without --dataset_batch_num, and resume would match against the wrong files)."""
    found = find_shards(output_dir) if os.path.isdir(output_dir) else {}
    others = sorted(n for n in found if n != batch_num)
    if others:
        n = others[0]
        raise DataError(f"{output_dir}: holds the shards of a run with --dataset_batch_num {n} "
                        f"({next(iter(found[n].values()))}); rerun with --dataset_batch_num {n} to resume "
                        f"that run, or use another --output_directory")
    return found.get(batch_num, {})


class ShardLock:
    """One writer per shard: `with ShardLock(shard_path(...)):` around writing it.

    An exclusive flock on `<shard>.lock`, which also holds the writer's pid and host. A second
    process on the same shard gets UsageError at once naming the holder; the kernel drops the
    lock of a process that dies (kill -9 included), so its leftover file is simply taken over.
    The file is removed on a clean exit, and only while it is still the one we locked; a process
    that opened it just before is told by the inode check and tries again on the new file. A
    symbolic link in its place is a one-line DataError: the lock is never written through one.
    """

    def __init__(self, shard_file):
        self.path = lock_path(shard_file)
        self._fd = None

    def _holder(self):
        try:
            with os.fdopen(open_nofollow(self.path, os.O_RDONLY), encoding="utf-8") as f:
                return f.read(200).strip() or "unknown"
        except (OSError, DataError, UnicodeDecodeError):
            return "unknown"

    def _is_ours(self, fd):
        """Is the file at self.path (not following a link) the one open as `fd`?"""
        try:
            here, ours = os.lstat(self.path), os.fstat(fd)
        except FileNotFoundError:
            return False
        return (here.st_dev, here.st_ino) == (ours.st_dev, ours.st_ino)

    def __enter__(self):
        for _ in range(100):  # bounded: only a race with unlinking makes it loop
            fd = open_nofollow(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                pid, _, host = self._holder().partition(" ")
                raise UsageError(f"{self.path[:-5]}: another reformat.py is writing this shard (pid {pid}"
                                 f"{' on ' + host if host else ''}, lock {self.path}); wait for it or stop it, "
                                 "then rerun") from None
            if self._is_ours(fd):
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
                self._fd = fd
                return self
            os.close(fd)  # the holder removed it between our open and flock: take the new one
        raise UsageError(f"{self.path}: could not take the shard lock")

    def __exit__(self, *exc):
        try:
            if self._is_ours(self._fd):  # never someone else's file (or link) put in its place
                os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)
        return False
