"""Shared test helpers: run a step script as a real subprocess, write small data files."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A suite started in the background of a shell without job control (`bash .ci/run &`) inherits
# SIGINT ignored, and so would every step it starts: the steps keep the Unix convention and
# ignore Ctrl-C then, so the Ctrl-C tests could not reach them. The tests' own process takes the
# default back, and the steps it starts get Python's usual handler.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def run_script(script, *args, env=None, timeout=120, cwd=None):
    """Run `python <script> args…` from the repo root; returns CompletedProcess (text)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], capture_output=True,
                          text=True, env=full_env, timeout=timeout, cwd=cwd or ROOT)


def write_json(path, obj):
    Path(path).write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return path


def write_jsonl(path, objs):
    Path(path).write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs), encoding="utf-8")
    return path


def make_record(rid, q="What is 2+2?", a="4", cat="math_puzzles", **extra):
    human = {"from": "human", "value": q}
    if cat is not None:
        human["category"] = cat
    return {"id": rid, "items": [human, {"from": "gpt", "value": a}], **extra}


@pytest.fixture
def script():
    return run_script
