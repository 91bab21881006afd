"""Faults every step must answer with one line on stderr and exit 2, writing nothing:
a full disk, a read-only file system, JSON no parser can follow, an output path that is an
input, an endpoint that refuses the run, pipeline files damaged between runs, temp files
left by a killed process.

Real files and real subprocesses only: a full disk is a 1 MB tmpfs (skipped, saying why,
where the machine will not mount one), kill -9 is a real signal to a real process.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, make_record, run_script, write_json, write_jsonl
from tests.servers.base import FakeServer

# Categories that no step sends anywhere: not a retrieval task, not a rewritten task.
PASS_THROUGH = "story_generation"


# ---------------------------------------------------------------- helpers

def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def all_files(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def assert_one_line_error(result, *words):
    """Exit 2, exactly one stderr line starting with 'error:', no traceback, naming `words`."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("error: ") and "Traceback" not in result.stderr
    for w in words:
        assert str(w) in lines[0], (w, lines[0])
    return lines[0]


def mount_tmpfs(folder, options):
    folder.mkdir(exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a small tmpfs to fill ({(r.stderr or r.stdout).strip()}); needs root")
    return folder


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB file system: an output of more than 1 MB meets ENOSPC."""
    disk = mount_tmpfs(tmp_path / "disk", "size=1m")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.fixture
def read_only_disk(tmp_path):
    disk = mount_tmpfs(tmp_path / "ro", "ro,size=1m")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def big_inputs(tmp_path):
    """One record of 1.5 MB that no step sends anywhere, as every step's input; and the shard
    folder reformat.py would have written for it."""
    rec = make_record(1, q="why " * 375_000, a="because", cat=PASS_THROUGH)
    inp = write_json(tmp_path / "in.json", [rec])
    shards = tmp_path / "shards"
    shards.mkdir()
    write_jsonl(shards / "rewrite_data_0_of_1_batch.jsonl", [rec])
    return inp, shards


def step_commands(inp, shards, out_dir):
    """{step: argv} writing into out_dir, for every step."""
    return {
        "classify.py": ["--input_data_path", inp, "--output_path", out_dir / "classified.json", "--quiet"],
        "retrieval.py": ["--input_data_path", inp, "--output_path", out_dir / "retrieved.json",
                         "--backend", "bm25", "--corpus_path", ROOT / "datasets" / "corpus"],
        "reformat.py": ["--input_data_path", inp, "--output_directory", out_dir / "shards",
                        "--base_url", "http://127.0.0.1:9/v1", "--quiet"],
        "parallel_data_merge.py": ["--input_data_path", inp, "--output_directory", shards,
                                   "--final_output_path", out_dir / "merged.json"],
        "rewrite_data_selection.py": ["--input_original_data_path", inp, "--input_rewrite_data_path", inp,
                                      "--output_path", out_dir / "final.json"],
    }


# ---------------------------------------------------------------- 1. OS errors on outputs

@pytest.mark.parametrize("step", ["classify.py", "retrieval.py", "reformat.py", "parallel_data_merge.py",
                                  "rewrite_data_selection.py"])
def test_full_disk_is_one_line_naming_the_file_and_leaves_nothing(tmp_path, small_disk, step):
    inp, shards = big_inputs(tmp_path)
    before = digest(inp), digest(shards / "rewrite_data_0_of_1_batch.jsonl")
    r = run_script(step, *step_commands(inp, shards, small_disk)[step])
    line = assert_one_line_error(r, small_disk, "no space left")
    assert all_files(small_disk) == [], line   # no temp file, no half a file, no empty shard
    assert os.listdir(small_disk) == []        # reformat.py removes the folder it created
    assert (digest(inp), digest(shards / "rewrite_data_0_of_1_batch.jsonl")) == before


@pytest.mark.parametrize("step", ["classify.py", "rewrite_data_selection.py", "parallel_data_merge.py"])
def test_read_only_file_system_is_one_line(tmp_path, read_only_disk, step):
    inp, shards = big_inputs(tmp_path)
    r = run_script(step, *step_commands(inp, shards, read_only_disk)[step])
    assert_one_line_error(r, read_only_disk, "read-only file system")


def test_unreadable_input_is_one_line_for_a_user_without_permission(tmp_path):
    """EACCES: root reads anything, so the step runs as `nobody` where we are root."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the step as another user")
    inp = write_json(tmp_path / "in.json", [make_record(1)])
    os.chmod(inp, 0o600)
    os.chmod(tmp_path, 0o755)
    out = tmp_path / "out.json"
    cmd = [sys.executable, str(ROOT / "rewrite_data_selection.py"), "--input_original_data_path", str(inp),
           "--input_rewrite_data_path", str(inp), "--output_path", str(out)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd="/",
                           env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, user=65534, group=65534)
    except PermissionError as e:
        pytest.skip(f"cannot switch to user nobody: {e}")
    if "ModuleNotFoundError" in r.stderr or "Permission denied: '/" in r.stderr:
        pytest.skip("user nobody cannot reach the Python environment here")
    assert_one_line_error(r, inp, "permission denied")
    assert not out.exists()


# ---------------------------------------------------------------- 2. JSON no parser can follow

def deep_record_text(depth=100_000):
    return '{"id": 1, "items": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}], "x": ' \
        + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize("kind", ["deep_json", "deep_jsonl", "huge_int"])
@pytest.mark.parametrize("step", ["classify.py", "retrieval.py", "reformat.py", "parallel_data_merge.py",
                                  "rewrite_data_selection.py"])
def test_json_no_parser_can_follow_is_one_line(tmp_path, step, kind):
    if kind == "huge_int":  # int() refuses more than 4300 digits: a ValueError, not a JSONDecodeError
        inp = tmp_path / "in.jsonl"
        inp.write_text('{"id": ' + "7" * 5000 + ', "items": []}\n')
    else:
        inp = tmp_path / ("in.json" if kind == "deep_json" else "in.jsonl")
        text = deep_record_text()
        inp.write_text(f"[{text}]" if kind == "deep_json" else text + "\n")
    before = digest(inp)
    shards = tmp_path / "shards"
    shards.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    r = run_script(step, *step_commands(inp, shards, out)[step])
    assert_one_line_error(r, inp, "not valid JSON")
    assert all_files(out) == [] and digest(inp) == before


def test_deep_line_in_a_shard_is_one_line(tmp_path):
    inp = write_json(tmp_path / "in.json", [make_record(1)])
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "rewrite_data_0_of_1_batch.jsonl").write_text(deep_record_text() + "\n")
    r = run_script("parallel_data_merge.py", "--input_data_path", inp, "--output_directory", shards,
                   "--final_output_path", tmp_path / "m.json")
    assert_one_line_error(r, "rewrite_data_0_of_1_batch.jsonl", "nested too deeply")


# ---------------------------------------------------------------- 3. an output that is an input

@pytest.mark.parametrize("step,args", [
    ("classify.py", ["--input_data_path", "{inp}", "--output_path", "{inp}"]),
    ("retrieval.py", ["--input_data_path", "{inp}", "--output_path", "{inp}", "--backend", "bm25",
                      "--corpus_path", "datasets/corpus"]),
    ("reformat.py", ["--input_data_path", "{shard}", "--output_directory", "{dir}", "--base_url", "http://127.0.0.1:9/v1"]),
    ("parallel_data_merge.py", ["--input_data_path", "{inp}", "--output_directory", "{dir}",
                                "--final_output_path", "{shard}"]),
    ("rewrite_data_selection.py", ["--input_original_data_path", "{inp}", "--input_rewrite_data_path", "{shard}",
                                   "--output_path", "{shard}"]),
])
def test_every_step_refuses_to_write_over_an_input(tmp_path, step, args):
    inp = write_json(tmp_path / "in.json", [make_record(1, cat=PASS_THROUGH)])
    folder = tmp_path / "shards"
    folder.mkdir()
    shard = write_jsonl(folder / "rewrite_data_0_of_1_batch.jsonl", [make_record(1, cat=PASS_THROUGH)])
    before = digest(inp), digest(shard)
    r = run_script(step, *[a.format(inp=inp, shard=shard, dir=folder) for a in args])
    assert_one_line_error(r, "would overwrite the input")
    assert (digest(inp), digest(shard)) == before
    assert sorted(os.listdir(tmp_path)) == ["in.json", "shards"] and os.listdir(folder) == [shard.name]


# ---------------------------------------------------------------- 7. exit 2 means nothing written

class NotFound(FakeServer):
    """An endpoint that answers 404 to everything (a wrong --base_url)."""

    def respond(self, method, path, headers, body):
        return self.json_body({"error": {"message": f"no route {path}"}}, status=404)


def test_reformat_against_a_404_endpoint_writes_nothing(tmp_path):
    inp = write_json(tmp_path / "in.json", [make_record(1, cat=PASS_THROUGH), make_record(2, q="Sum 2+2")])
    out = tmp_path / "out"
    with NotFound() as srv:
        r = run_script("reformat.py", "--input_data_path", inp, "--output_directory", out,
                       "--base_url", f"{srv.url}/v1", "--max_retries", "0", "--quiet")
    assert_one_line_error(r, "404")
    assert not out.exists()  # no shard with the passed-through record, no empty folder


# ---------------------------------------------------------------- 5. pipeline files read back

DAMAGE = {
    "id_is_a_list": ("shard", '{"id": [1], "items": [{"from": "human", "value": "q 1"}, {"from": "gpt", "value": "a"}]}',
                     "'id' must be an int or a string"),
    "line_is_not_a_record": ("shard", "[1, 2, 3]", "not a record"),
    "items_missing": ("shard", '{"id": 1}', "'items' must start"),
    "failure_id_is_a_list": ("failures", '{"id": [1], "reason": "x"}', "expected {"),
    "shard_is_a_folder": ("shard", None, "is a folder"),
}


def damaged_folder(tmp_path, which, line):
    folder = tmp_path / "out"
    folder.mkdir()
    shard, fails = folder / "rewrite_data_0_of_1_batch.jsonl", folder / "failures_0_of_1.jsonl"
    target = shard if which == "shard" else fails
    if which == "failures":
        write_jsonl(shard, [make_record(2, q="q 2", cat=PASS_THROUGH)])
    if line is None:
        target.mkdir()
    else:
        target.write_text(line + "\n")
    return folder, target


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("step", ["reformat.py", "parallel_data_merge.py"])
def test_damaged_pipeline_files_are_one_line(tmp_path, step, damage):
    which, line, words = DAMAGE[damage]
    inp = write_json(tmp_path / "in.json", [make_record(i, q=f"q {i}", cat=PASS_THROUGH) for i in (1, 2)])
    folder, target = damaged_folder(tmp_path, which, line)
    before = all_files(folder)
    if step == "reformat.py":
        r = run_script(step, "--input_data_path", inp, "--output_directory", folder,
                       "--base_url", "http://127.0.0.1:9/v1", "--quiet")
    else:
        r = run_script(step, "--input_data_path", inp, "--output_directory", folder,
                       "--final_output_path", tmp_path / "merged.json")
    assert_one_line_error(r, target, words)
    assert all_files(folder) == before and not (tmp_path / "merged.json").exists()


def test_resume_refuses_a_shard_of_another_dataset(tmp_path):
    """Same ids, other questions and answers: reformat.py stops as parallel_data_merge.py would."""
    inp = write_json(tmp_path / "in.json", [make_record(i, q=f"q {i}", cat=PASS_THROUGH) for i in (1, 2)])
    folder = tmp_path / "out"
    folder.mkdir()
    shard = write_jsonl(folder / "rewrite_data_0_of_1_batch.jsonl", [make_record(1, q="another question", a="5")])
    before = digest(shard)
    r = run_script("reformat.py", "--input_data_path", inp, "--output_directory", folder,
                   "--base_url", "http://127.0.0.1:9/v1", "--quiet")
    assert_one_line_error(r, folder, "none of its 1 finished records", "another dataset")
    assert digest(shard) == before


@pytest.mark.parametrize("journal,words", [
    ('{"id": 1, "evidence": ["e"]}', "'question' must be a string"),
    ('{"id": {"a": 1}, "question": "q 1"}', "'id' must be"),
    ('"just a string"', "not an object"),
    (None, "is a folder"),
])
def test_damaged_retrieval_journal_is_one_line(tmp_path, journal, words):
    inp = write_json(tmp_path / "in.json", [make_record(1, q="q 1", cat="open_qa")])
    out = tmp_path / "r.json"
    path = tmp_path / "r.json.progress.jsonl"
    if journal is None:
        path.mkdir()
    else:
        path.write_text(journal + "\n")
    r = run_script("retrieval.py", "--input_data_path", inp, "--output_path", out,
                   "--backend", "bm25", "--corpus_path", ROOT / "datasets" / "corpus")
    assert_one_line_error(r, path, words)
    assert not out.exists()


# ---------------------------------------------------------------- 6. temp files of killed processes

HOLD_OPEN = """
import sys, time
from realign.files import atomic_open
with atomic_open(sys.argv[1]) as f:
    f.write("half a file")
    f.flush()
    print("writing", flush=True)
    time.sleep(120)
"""


def writer_in_the_middle(path):
    """A real process stopped inside an atomic write of `path` (its temp file exists)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_OPEN, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    return proc


def temps(folder):
    return [n for n in os.listdir(folder) if n.endswith(".tmp")]


def test_temp_file_of_a_killed_step_is_removed_by_the_next_run(tmp_path):
    inp = write_json(tmp_path / "in.json", [make_record(1, cat=PASS_THROUGH)])
    out = tmp_path / "final.json"
    proc = writer_in_the_middle(out)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert len(temps(tmp_path)) == 1 and str(proc.pid) in temps(tmp_path)[0]
    r = run_script("rewrite_data_selection.py", "--input_original_data_path", inp,
                   "--input_rewrite_data_path", inp, "--output_path", out)
    assert r.returncode == 0, r.stderr
    assert temps(tmp_path) == [] and json.loads(out.read_text())[0]["id"] == 1


def test_temp_file_of_a_live_writer_is_left_alone(tmp_path):
    inp = write_json(tmp_path / "in.json", [make_record(1, cat=PASS_THROUGH)])
    out = tmp_path / "final.json"
    proc = writer_in_the_middle(out)
    try:
        r = run_script("rewrite_data_selection.py", "--input_original_data_path", inp,
                       "--input_rewrite_data_path", inp, "--output_path", out)
        assert r.returncode == 0, r.stderr
        assert len(temps(tmp_path)) == 1  # still the live writer's
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_killed_step_leaves_nothing_the_rerun_does_not_clean(tmp_path):
    """kill -9 a real classify.py at a random moment of a 30 MB write, then rerun it: one output,
    no temp file, the same bytes as an uninterrupted run."""
    records = [make_record(i, q=f"question {i} " + "x" * 3000, cat=PASS_THROUGH) for i in range(10_000)]
    inp = write_json(tmp_path / "in.json", records)
    out = tmp_path / "out" / "classified.json"
    cmd = [sys.executable, str(ROOT / "classify.py"), "--input_data_path", str(inp), "--output_path", str(out),
           "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out.parent.exists() and temps(out.parent)):
        time.sleep(0.002)
    assert temps(out.parent), "the step finished before a temp file was seen"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    r = run_script("classify.py", "--input_data_path", inp, "--output_path", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert os.listdir(out.parent) == ["classified.json"]
    assert [rec["id"] for rec in json.loads(out.read_text())] == list(range(10_000))


# ---------------------------------------------------------------- 8. progress bars on a terminal only

def run_on_a_terminal(script_name, *args):
    """Run a step with stderr on a pseudo-terminal; returns (exit code, what the terminal showed)."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 columns wide
    proc = subprocess.Popen([sys.executable, str(ROOT / script_name), *map(str, args)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the step closed its end
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    return proc.wait(timeout=120), shown.decode("utf-8", "replace")


def bar_steps(tmp_path):
    """{step: argv} of runs that have work for a progress bar."""
    rag = write_json(tmp_path / "rag.json", [make_record(i, q=f"How long do I boil eggs {i}?", cat="open_qa")
                                             for i in range(3)])
    plain = write_json(tmp_path / "plain.json", [make_record(i, q=f"Write a poem about the sea {i}", cat=None)
                                                 for i in range(250)])
    return {
        "retrieval.py": ["--input_data_path", rag, "--output_path", tmp_path / "r.json", "--backend", "bm25",
                         "--corpus_path", ROOT / "datasets" / "corpus"],
        "classify.py": ["--input_data_path", plain, "--output_path", tmp_path / "c.json"],
    }


@pytest.mark.parametrize("step", ["retrieval.py", "classify.py"])
def test_progress_bar_only_on_a_terminal(tmp_path, step):
    args = bar_steps(tmp_path)[step]
    piped = run_script(step, *args)
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr == ""  # a log gets the summary line on stdout, no bar
    code, shown = run_on_a_terminal(step, *[str(a).replace(".json", "_tty.json") if a == args[3] else a
                                            for a in args])  # a fresh output: a rerun would have no work
    assert code == 0 and "|" in shown and "100%" in shown, shown[-500:]


# ---------------------------------------------------------------- 4. memory per record

# Starts `cmd` and prints its exit code, peak RSS (KB) and the tail of its stderr. A child's
# ru_maxrss includes what its parent held when it was started (at exec Linux keeps the high-water
# mark of the address space it replaces, the parent's under vfork), so a child of pytest itself
# reports at least pytest's peak: 1084 MB on CI once earlier tests had grown the worker. This small launcher is the
# parent instead, so the number is the step's own.
_MEASURE = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, "
            "stderr=subprocess.PIPE); err = p.stderr.read(); _, status, usage = os.wait4(p.pid, 0); "
            "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss); print(err.decode()[-1000:])")


def peak_rss_mb(cmd):
    """Peak RSS in MB of `cmd` alone, not of the process that starts it (see _MEASURE)."""
    r = subprocess.run([sys.executable, "-c", _MEASURE, *map(str, cmd)], cwd=ROOT, capture_output=True, text=True)
    head, _, err = r.stdout.partition("\n")
    code, kb = head.split()
    assert int(code) == 0, err
    return int(kb) / 1024


def test_peak_rss_is_the_steps_own_not_the_test_processes():
    """The measure above stays small while the test process holds 600 MB (ru_maxrss of a direct
    child would say >= 600), and sees what the step itself takes."""
    ballast = bytearray(600 << 20)
    ballast[::4096] = b"\1" * len(ballast[::4096])  # touched: resident
    small = peak_rss_mb([sys.executable, "-c", "pass"])
    big = peak_rss_mb([sys.executable, "-c", "b = bytearray(300 << 20); b[::4096] = b'1' * len(b[::4096])"])
    del ballast
    assert small < 100 and 300 < big < 400, (small, big)


def test_a_20_mb_question_is_classified_in_bounded_memory(tmp_path):
    """It took 6.3 GB when the n-grams and the tokenizer saw all of it (bench/record_memory.py
    measures every step at 50 MB). Now about 230 MB, of which 180 MB is the model on a short
    question; 700 MB leaves room and stays well under the bench's 1 GB goal."""
    inp = write_json(tmp_path / "in.json", [make_record(1, q="Explain: " + "many words here " * 1_250_000, cat=None)])
    out = tmp_path / "out.json"
    mb = peak_rss_mb([sys.executable, str(ROOT / "classify.py"), "--input_data_path", str(inp),
                      "--output_path", str(out), "--quiet"])
    assert mb < 700, mb
    assert json.loads(out.read_text())[0]["items"][0]["category"]


def test_lengths_of_a_long_text_are_counted_in_pieces_with_the_same_result():
    from realign.lengths import _PIECES, approx_tokens

    text = "héllo, wörld! 漢字 " * 150_000 + "end"
    assert len(text) > 2 * (1 << 20) and approx_tokens(text) == len(_PIECES.findall(text))


def fill(disk, leave=0):
    """Fill a small tmpfs up to `leave` bytes free."""
    st = os.statvfs(disk)
    with open(disk / "ballast", "wb") as f:
        f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))


def test_search_cache_on_a_full_disk_is_one_line(tmp_path, small_disk):
    from tests.servers.serper_fake import SerperFake

    inp = write_json(tmp_path / "in.json", [make_record(1, q="How tall is Everest?", cat="open_qa")])
    fill(small_disk)
    cache = small_disk / "cache.sqlite"
    with SerperFake(api_key="k") as srv:
        r = run_script("retrieval.py", "--input_data_path", inp, "--output_path", tmp_path / "r.json",
                       "--serper_url", f"{srv.url}/search", "--cache_path", cache, env={"SERPER_API_KEY": "k"})
    assert_one_line_error(r, cache)
    assert "Traceback" not in r.stderr and "k" not in r.stderr.replace("error", "").split(":")[0]


def test_report_dir_on_a_full_disk_is_one_line(tmp_path, small_disk):
    inp = write_json(tmp_path / "in.json", [make_record(1, cat=PASS_THROUGH)])
    fill(small_disk, leave=4096)
    r = run_script("rewrite_data_selection.py", "--input_original_data_path", inp, "--input_rewrite_data_path", inp,
                   "--output_path", tmp_path / "final.json", "--report_dir", small_disk / "report")
    assert_one_line_error(r, small_disk, "no space left")
    assert os.listdir(small_disk) == ["ballast"]  # no report folder, no temp file
    assert not (tmp_path / "final.json").exists()  # nor the output written before the report failed


@pytest.fixture
def locked_folder(small_disk):
    """A folder no one may create files in, root included (chattr +i: EPERM)."""
    locked = small_disk / "locked"
    locked.mkdir()
    r = subprocess.run(["chattr", "+i", str(locked)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"chattr +i does not work here ({r.stderr.strip()}); root ignores file modes")
    yield locked
    subprocess.run(["chattr", "-i", str(locked)], capture_output=True)


@pytest.mark.parametrize("step", ["classify.py", "retrieval.py", "reformat.py", "parallel_data_merge.py",
                                  "rewrite_data_selection.py"])
def test_a_folder_we_may_not_write_in_is_one_line(tmp_path, locked_folder, step):
    inp = write_json(tmp_path / "in.json", [make_record(1, cat=PASS_THROUGH)])
    shards = tmp_path / "shards"
    shards.mkdir()
    write_jsonl(shards / "rewrite_data_0_of_1_batch.jsonl", [make_record(1, cat=PASS_THROUGH)])
    r = run_script(step, *step_commands(inp, shards, locked_folder)[step])
    assert_one_line_error(r, locked_folder, "not permitted")
    assert os.listdir(locked_folder) == []


def test_reformat_filling_the_disk_midway_keeps_whole_lines_only(tmp_path, small_disk):
    """Two records fit, the third does not: exit 2 naming the shard, which holds the two whole
    lines and no part of the third (a rerun with space resumes after them)."""
    recs = [make_record(i, q=f"{i} " + "tell me a story " * 25_000, cat=PASS_THROUGH) for i in range(3)]
    inp = write_json(tmp_path / "in.json", recs)
    out = small_disk / "shards"
    r = run_script("reformat.py", "--input_data_path", inp, "--output_directory", out,
                   "--base_url", "http://127.0.0.1:9/v1", "--quiet")
    shard = out / "rewrite_data_0_of_1_batch.jsonl"
    assert_one_line_error(r, shard, "no space left")
    data = shard.read_bytes()
    assert data.endswith(b"\n") and [json.loads(x)["id"] for x in data.splitlines()] == [0, 1]
    assert all_files(out) == ["rewrite_data_0_of_1_batch.jsonl"]


def test_temp_files_of_the_old_naming_go_once_a_day_old(tmp_path):
    """Before temp names held a pid they were `.NAME.XXXXXXXX.tmp`: those a day old are removed."""
    inp = write_json(tmp_path / "in.json", [make_record(1, cat=PASS_THROUGH)])
    old, fresh = tmp_path / ".final.json.k3j_9xq2.tmp", tmp_path / ".final.json.a8d2mm0q.tmp"
    for f in (old, fresh):
        f.write_text("half a file")
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    r = run_script("rewrite_data_selection.py", "--input_original_data_path", inp,
                   "--input_rewrite_data_path", inp, "--output_path", tmp_path / "final.json")
    assert r.returncode == 0, r.stderr
    assert not old.exists() and fresh.exists()
