"""Generic file helpers: atomic writes, JSON lines appended and read back, a plain JSON document,
and the one place that turns an OS error on a file into a one-line DataError.

Nothing here knows what a record is (that is records.py). Writes are atomic: a temp file in
the same folder, then a rename, so a crash never leaves half an output. Temp files are named
`.NAME.HOST-PID.XXXX.tmp`; the next write of NAME removes those whose process is gone (a
`kill -9` mid-write). Append-only JSONL files (reformat.py's shards, retrieval.py's journal)
are written a line at a time and read back tolerating the torn last line a `kill -9`
mid-write leaves; a line that fails to write (disk full) is cut off again at once.

No file we write is written through a symbolic link: files we append to or lock are opened
with O_NOFOLLOW, and a link where an output, a shard or a journal belongs is a one-line
DataError (`link_error`), so a link planted in a shared folder (/tmp) never gets its target
overwritten. Reading through links is fine (a folder of shards collected by links merges).
"""

import errno
import gc
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
from contextlib import contextmanager

from realign.errors import DataError, Terminated, UsageError
from realign.strictjson import DuplicateKeyError, Loader, may_hold_big_int


# ---------------------------------------------------------------- OS errors

_OS_PROBLEMS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.EISDIR: "is a folder, expected a file",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.ENOENT: "no such file or folder",
    errno.ENAMETOOLONG: "file name too long",
    errno.EIO: "input/output error",
    errno.EMFILE: "too many open files",
    errno.ELOOP: "too many levels of symbolic links",
}


def is_file_error(e):
    """True for the OS errors a user fixes on their side (space, permissions, paths)."""
    return isinstance(e, OSError) and e.errno in _OS_PROBLEMS


def os_error(e, path=None, doing="write"):
    """The one-line DataError for an OSError on a file: 'PATH: cannot write (no space left on the device)'."""
    where = e.filename if e.filename is not None else path
    why = _OS_PROBLEMS.get(e.errno) or e.strerror or str(e)
    return DataError((f"{where}: " if where is not None else "") + f"cannot {doing} ({why})")


# ---------------------------------------------------------------- symbolic links

def link_error(path):
    """The one-line DataError for a symbolic link where a file we write belongs."""
    try:
        target = f" (to {os.readlink(path)})"
    except OSError:
        target = ""
    return DataError(f"{path}: is a symbolic link{target}; realign never writes through a link: "
                     "remove it, or choose another path")


def check_not_link(*paths):
    """DataError (link_error) when one of `paths` (None skipped) is a symbolic link: called
    before a step does any work, for every file it will write or append to."""
    for path in paths:
        if path is not None and os.path.islink(path):
            raise link_error(path)


def open_nofollow(path, flags, mode=0o666):
    """os.open() that refuses to follow a symbolic link at `path` (O_NOFOLLOW): a link there is
    link_error, other OS errors are os_error; both one-line DataErrors naming `path`."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            raise link_error(path) from None
        raise os_error(e, path) from None


# ---------------------------------------------------------------- writing

def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give: mkstemp's temp files are 0600


_HOST = socket.gethostname().replace(".", "_").replace("/", "_")[:40] or "host"


def _temp_prefix(path):
    return f".{os.path.basename(path)}.{_HOST}-"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's live process (or not a pid we can judge): leave its file alone
    return True


_LEGACY_TEMP = re.compile(r"[a-z0-9_]{8}\.tmp")  # what mkstemp appended before temp names held a pid
LEGACY_TEMP_AGE = 24 * 3600                      # seconds untouched before such a temp counts as stale


def _is_stale(folder, name, path):
    prefix = _temp_prefix(path)
    if name.startswith(prefix) and name.endswith(".tmp"):
        pid = name[len(prefix):].split(".", 1)[0]
        return pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid))
    legacy = f".{os.path.basename(path)}."
    if name.startswith(legacy) and _LEGACY_TEMP.fullmatch(name[len(legacy):]):
        try:
            return time.time() - os.lstat(os.path.join(folder, name)).st_mtime > LEGACY_TEMP_AGE
        except OSError:
            return False
    return False


def remove_stale_temps(path):
    """Delete temp files (or folders) of `path` left by dead processes of this host (a `kill -9`
    mid-write); returns how many. Those of live processes and of other hosts are left alone.
    Temp files named before names held a pid (`.NAME.XXXXXXXX.tmp`) go once a day old."""
    folder = os.path.dirname(os.path.abspath(path))
    removed = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        if _is_stale(folder, name, path):
            stale = os.path.join(folder, name)
            try:
                if os.path.isdir(stale) and not os.path.islink(stale):
                    shutil.rmtree(stale)
                else:
                    os.unlink(stale)
                removed += 1
            except OSError:
                pass
    return removed


def new_temp(path, folder=False):
    """A temp file (fd, name) or folder (name) beside `path`, named for this host and process so a
    later run can tell it is stale; stale ones of `path` are removed first."""
    remove_stale_temps(path)
    where, prefix = os.path.dirname(os.path.abspath(path)), f"{_temp_prefix(path)}{os.getpid()}."
    if folder:
        return tempfile.mkdtemp(dir=where, prefix=prefix, suffix=".tmp")
    return tempfile.mkstemp(dir=where, prefix=prefix, suffix=".tmp")


@contextmanager
def atomic_open(path, mode="w"):
    """Open a temp file beside `path`; rename over it only if the block succeeds.

    `mode` is "w" (UTF-8 text) or "wb" (bytes: figures, model files). An OS error (disk full,
    read-only, no permission) becomes a DataError naming `path`, and the temp file is gone. A
    symbolic link at `path` is link_error. Inside all_or_nothing, the rename of one of its
    outputs waits for the end of that block."""
    path = os.fspath(path)
    check_not_link(path)  # a rename would only replace the link, but a link there is not ours to replace
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a folder; give the path of a file to write")
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = new_temp(path)
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), _FILE_MODE)
            os.fsync(f.fileno())
        if _STAGED is not None and _STAGED.covers(path):
            _STAGED.stage(tmp, path)  # renamed with the other outputs at the end of all_or_nothing
        else:
            os.replace(tmp, path)
        tmp = None
    except BaseException as e:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if is_file_error(e):
            raise os_error(e, path) from None
        raise


class _Staged:
    """The outputs of an all_or_nothing block: their temp files, renamed into place together."""

    def __init__(self, paths):
        self.roots = [os.path.abspath(p) for p in paths]
        self.renames = {}  # final path -> its finished temp file

    def covers(self, path):
        path = os.path.abspath(path)
        return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in self.roots)

    def stage(self, tmp, path):
        earlier = self.renames.pop(path, None)
        if earlier:  # the same output written twice in one block: the last one counts
            _unlink_quietly(earlier)
        self.renames[path] = tmp

    def commit(self):
        """Rename every temp file into place with SIGINT/SIGTERM/SIGHUP held back, so a signal
        lands before all the renames or after them, never between two."""
        held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
        old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            while self.renames:
                path, tmp = self.renames.popitem()
                try:
                    os.replace(tmp, path)
                except OSError as e:
                    raise os_error(e, path) from None
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def abort(self):
        for tmp in self.renames.values():
            _unlink_quietly(tmp)
        self.renames.clear()


_STAGED = None  # the _Staged of the all_or_nothing block running in this process, if any


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _raise_terminated(signum, frame):
    raise Terminated(signum)


@contextmanager
def _terminated_as_exception():
    """SIGTERM and SIGHUP raise Terminated (a KeyboardInterrupt) inside the block, so clean-up
    runs as for Ctrl-C, instead of the process dying where it stands. Only where the signal has
    its default action (a `nohup` run keeps ignoring SIGHUP) and in the main thread."""
    changed = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) == signal.SIG_DFL:
                changed[sig] = signal.signal(sig, _raise_terminated)
    try:
        yield
    finally:
        for sig, handler in changed.items():
            signal.signal(sig, handler)


@contextmanager
def all_or_nothing(*paths):
    """For a step writing several outputs (files or folders; None skipped): all of them appear, or
    none. Every atomic_open inside the block whose path is one of `paths` or lies in one of
    the folders writes its temp file as usual, but the renames wait for the end of the block and
    happen together (commit). An error, Ctrl-C, SIGTERM or SIGHUP before that removes the temp
    files and the folders the block created, and earlier outputs at those paths stay as they
    were. Blocks do not nest."""
    global _STAGED
    if _STAGED is not None:
        raise RuntimeError("all_or_nothing blocks do not nest")
    paths = [os.fspath(p) for p in paths if p is not None]
    check_not_link(*paths)
    new = [p for p in paths if not os.path.lexists(p)]
    staged = _STAGED = _Staged(paths)
    try:
        with _terminated_as_exception():
            try:
                yield
            except BaseException:
                staged.abort()
                for p in new:
                    if os.path.isdir(p) and not os.path.islink(p):
                        shutil.rmtree(p, ignore_errors=True)
                    elif os.path.lexists(p):
                        os.unlink(p)
                raise
            staged.commit()
    finally:
        _STAGED = None


_ENCODE = json.encoder.c_make_encoder  # the C encoder json.dumps builds anew on every call; None off CPython
if _ENCODE is not None:
    _ENCODE = _ENCODE(None, json.JSONEncoder().default, json.encoder.encode_basestring, None, ": ", ", ",
                      False, False, False)  # no indent, unsorted keys, no skipping, allow_nan=False


def dumps_line(obj):
    """One JSON line: json.dumps(obj, ensure_ascii=False, allow_nan=False, check_circular=False),
    through one C encoder made once (a third faster on 100k records); NaN and Infinity are a
    ValueError (strict JSON), a record nested too deeply a DataError."""
    try:
        if _ENCODE is not None:
            return "".join(_ENCODE(obj, 0))
        return json.dumps(obj, ensure_ascii=False, allow_nan=False, check_circular=False)
    except RecursionError:
        raise DataError(f"a record with id={_id_of(obj)!r} is nested too deeply to write as JSON") from None


def _id_of(obj):
    return obj.get("id") if isinstance(obj, dict) else None


def write_json(path, obj):
    """A plain JSON document (reports, summaries), atomically."""
    with atomic_open(path) as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")


# ---------------------------------------------------------------- JSON parsing

try:
    import orjson
except ImportError:  # pragma: no cover - a dependency; without it reading is slower, not different
    orjson = None


@contextmanager
def gc_paused():
    """Python's cyclic garbage collector paused for a block that builds many objects which live on
    (parsing a file of records): parsed JSON holds no cycles, and the collector's passes over the
    growing heap would cost as much as the parsing (a 100k-record file loads about 40 % faster)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def loads_for(data):
    """The parser for a file's bytes: json.loads, or a faster one with exactly its answers. orjson
    (3-4x faster) reads integers past 64 bits as floats, so it is used only where no number token
    of 19 digits or more occurs (strictjson.may_hold_big_int: C speed; the digit runs of input
    hashes do not count); and anything it refuses (NaN, unpaired surrogates, deep nesting) goes
    to json.loads, whose answer stands. For the files this pipeline writes itself (shard lines,
    failures, journals): users' files go through strictjson.Loader, which also refuses a key
    given twice."""
    if orjson is None or may_hold_big_int(data):
        return json.loads

    def loads(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return json.loads(text)

    return loads


# Every way json.loads fails: JSONDecodeError, ValueError (an integer of more than 4300
# digits, bad UTF-8 in bytes) and RecursionError (lists nested thousands deep).
JSON_ERRORS = (ValueError, RecursionError)


def json_problem(e):
    """A short reason for one of JSON_ERRORS, for a one-line message."""
    if isinstance(e, RecursionError):
        return "nested too deeply (more levels of lists/objects than Python's parser can follow)"
    if isinstance(e, json.JSONDecodeError):
        return e.msg
    return str(e).split(";")[0]


# ---------------------------------------------------------------- JSON lines

def iter_jsonl_lines(text, path, loads=None):
    """Yield (line_number, object) for each non-blank line; a bad line, or one holding a key twice
    in one object (strictjson.loads), is a DataError. `loads`: the strictjson.Loader of `text`
    when the caller wants to ask it afterwards whether a line went to json (else one is made).

    Lines end at "\n" only: str.splitlines() would also cut at U+2028, U+0085 and other
    characters that json.dumps(ensure_ascii=False) leaves raw inside strings."""
    loads = loads or Loader(text)
    for n, line in enumerate(text.split("\n"), 1):
        if not line or line.isspace():
            continue
        try:
            obj = loads(line)
        except DuplicateKeyError as e:
            raise DataError(f"{path}: line {n}: {e}") from None
        except JSON_ERRORS as e:
            hint = "; torn or corrupt line?" if isinstance(e, json.JSONDecodeError) else ""
            raise DataError(f"{path}: line {n}: not valid JSON ({json_problem(e)}){hint}") from None
        yield n, obj


def read_jsonl_tolerant(path):
    """(objects, torn) from a JSONL file being appended to; a torn last line is skipped.

    A line that is not valid JSON anywhere but at the very end means real corruption and
    raises DataError; at the end it is what `kill -9` mid-write leaves, so it is ignored.
    """
    if not os.path.exists(path):
        return [], False
    if os.path.isdir(path):
        raise DataError(f"{path}: is a folder, expected a file this step wrote; move it away")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise os_error(e, path, "read") from None
    try:  # the whole file as text at once: json.loads of a str skips its per-line encoding sniffing
        lines = data.decode("utf-8").split("\n")
    except UnicodeDecodeError:  # a line cut inside a character (kill -9), or not UTF-8: line by line
        lines = data.split(b"\n")
    objs, torn, loads = [], False, loads_for(data)
    with gc_paused():
        for n, line in enumerate(lines, 1):
            if not line or line.isspace():
                continue
            try:
                objs.append(loads(line))
            except JSON_ERRORS as e:
                if n == len(lines):  # last line, no newline after it: a torn write
                    torn = True
                else:
                    raise DataError(f"{path}: line {n}: not valid JSON ({json_problem(e)}; "
                                    f"only a torn last line is skipped)") from None
    return objs, torn


def drop_torn_tail(path):
    """Cut a file back to its last newline so appends start on a fresh line (never through a link)."""
    if not os.path.lexists(path):
        return
    with os.fdopen(open_nofollow(path, os.O_RDWR), "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


class JsonlAppender:
    """Append one JSON object a line, written through at once so a crash loses at most that line.

    The file is created on the first write (a run that writes nothing leaves no file), never
    through a symbolic link (link_error). A line
    that fails to write (disk full) is cut off again, the file is removed if that leaves it
    empty, and the error is a DataError naming the file."""

    def __init__(self, path):
        self.path = path
        self._fd = None

    def _open(self):
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        except OSError as e:
            raise os_error(e, self.path) from None
        drop_torn_tail(self.path)
        self._fd = open_nofollow(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _FILE_MODE)

    def touch(self):
        """Create the file now if no line did (a finished run with nothing to write still has one)."""
        if self._fd is None:
            self._open()

    def write(self, obj):
        data = memoryview((dumps_line(obj) + "\n").encode("utf-8"))
        if self._fd is None:
            self._open()
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            while data:
                data = data[os.write(self._fd, data):]
        except OSError as e:
            self._undo(start)
            raise os_error(e, self.path) from None

    def _undo(self, start):
        try:
            os.ftruncate(self._fd, start)
            if start == 0:
                os.close(self._fd)
                self._fd = None
                os.unlink(self.path)
        except OSError:
            pass  # the torn tail is cut on the next open

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
