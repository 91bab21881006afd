"""Signals at the worst moment, to real processes: selection's outputs are all or nothing under
SIGTERM too, and Ctrl-C in classify stops it at once."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, write_json


def selection_inputs(folder, n=4000, tag="A"):
    orig = [{"id": i, "items": [{"from": "human", "value": f"Explain topic {i} in a few words.", "category": "open_qa"},
                                {"from": "gpt", "value": f"Topic {i} is about rivers and the sea. It matters for farming."}]}
            for i in range(n)]
    new = [{"id": i, "items": [orig[i]["items"][0], {"from": "gpt", "value": f"**Topic {i} ({tag})**\n\n- It is about "
                                                                             "rivers and the sea.\n- It matters for farming."}]}
           for i in range(n)]
    return write_json(folder / "orig.json", orig), write_json(folder / f"new_{tag}.json", new)


def selection_cmd(orig, new, out):
    return [sys.executable, str(ROOT / "rewrite_data_selection.py"), "--input_original_data_path", str(orig),
            "--input_rewrite_data_path", str(new), "--output_path", str(out / "final.json"), "--report_path",
            str(out / "report.json"), "--report_dir", str(out / "report")]


def snapshot(out):
    """{relative path: sha256} of every file under `out`."""
    found = {}
    for root, _, names in os.walk(out):
        for name in names:
            path = os.path.join(root, name)
            found[os.path.relpath(path, out)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return found


def test_sigterm_while_selection_writes_leaves_no_output(tmp_path):
    orig, new = selection_inputs(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen(selection_cmd(orig, new, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:  # the write phase: its first temp file
        if any(name.endswith(".tmp") for _, _, names in os.walk(out) for name in names):
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, err[-2000:])
    assert err.strip().splitlines()[-1] == "terminated (SIGTERM)" and "Traceback" not in err
    assert os.listdir(out) == []  # no final.json without report.html, no temp file, no half report folder


def test_sigterm_at_any_moment_gives_all_the_new_outputs_or_all_the_old_ones(tmp_path):
    orig, old_new = selection_inputs(tmp_path, tag="old")
    _, new = selection_inputs(tmp_path, tag="new")
    out, ref = tmp_path / "out", tmp_path / "ref"
    out.mkdir()
    ref.mkdir()
    assert subprocess.run(selection_cmd(orig, new, ref), capture_output=True).returncode == 0
    assert subprocess.run(selection_cmd(orig, old_new, out), capture_output=True).returncode == 0
    old, want = snapshot(out), snapshot(ref)
    assert old.keys() == want.keys() and old != want
    outcomes = set()
    for delay in (0.2, 0.6, 1.0, 1.4, 1.8, 2.4, 3.2):
        proc = subprocess.Popen(selection_cmd(orig, new, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        now = snapshot(out)
        assert now in (old, want), (delay, proc.returncode)
        outcomes.add("new" if now == want else "old")
        if now == want:  # put the old run back for the next try
            assert subprocess.run(selection_cmd(orig, old_new, out), capture_output=True).returncode == 0
    assert "old" in outcomes  # at least one signal landed before the outputs were committed


@pytest.fixture
def busy_machine():
    """Two processes spinning on the CPU for the length of the test: Ctrl-C must be quick under load."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    yield
    for proc in spinners:
        proc.kill()
        proc.wait()


def cpu_seconds(pid):
    """CPU time (user + system) a running process has used so far: the test's clock for "when",
    the same on an idle machine and on a busy one, where a wall-clock sleep of 3 s could still
    fall in the interpreter's imports, before any handler is set."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def test_ctrl_c_in_classify_exits_130_within_2_s_under_load(tmp_path, busy_machine):
    records = [{"instruction": f"Write a short poem about the number {i} and the sea, with rhymes.", "input": "",
                "output": f"Poem {i}."} for i in range(6000)]
    inp, out = write_json(tmp_path / "in.json", records), tmp_path / "out.json"
    cmd = [sys.executable, str(ROOT / "classify.py"), "--input_data_path", str(inp), "--output_path", str(out)]
    for spent in (1.0, 2.5):  # CPU seconds of classify: the model loading, then classifying
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while proc.poll() is None and cpu_seconds(proc.pid) < spent and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "classify finished before the signal: give it more records"
        assert cpu_seconds(proc.pid) >= spent, "classify did not get going in 120 s"
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
        assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted", err[-2000:]
        assert took < 2.0, f"took {took:.1f} s to stop"
        assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["in.json"]
