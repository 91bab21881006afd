"""Generic file helpers: atomic writes, JSON lines appended and read back, a plain JSON document.

Nothing here knows what a record is (that is records.py). Writes are atomic: a temp file in
the same folder, then a rename, so a crash never leaves half an output. Append-only JSONL
files (reformat.py's shards, retrieval.py's journal) are flushed a line at a time and read
back tolerating the torn last line a `kill -9` mid-write leaves.
"""

import json
import os
import tempfile
from contextlib import contextmanager

from realign.errors import DataError, UsageError


# ---------------------------------------------------------------- writing

def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give: mkstemp's temp files are 0600


@contextmanager
def atomic_open(path, mode="w"):
    """Open a temp file beside `path`; rename over it only if the block succeeds.

    `mode` is "w" (UTF-8 text) or "wb" (bytes: figures, model files)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a folder; give the path of a file to write")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), _FILE_MODE)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def dumps_line(obj):
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)  # strict JSON: no NaN/Infinity


def write_json(path, obj):
    """A plain JSON document (reports, summaries), atomically."""
    with atomic_open(path) as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")


# ---------------------------------------------------------------- JSON lines

def iter_jsonl_lines(text, path):
    """Yield (line_number, object) for each non-blank line; a bad line is a DataError.

    Lines end at "\n" only: str.splitlines() would also cut at U+2028, U+0085 and other
    characters that json.dumps(ensure_ascii=False) leaves raw inside strings."""
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {n}: not valid JSON ({e.msg}); torn or corrupt line?") from None


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
        self._f.write(json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n")
        self._f.flush()

    def close(self):
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
