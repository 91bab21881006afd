"""A symbolic link where a file we write belongs (a shared output folder under /tmp) is one line and
exit 2, and its target is never written, cut or deleted: shard file, failures file, shard lock,
retrieval journal and outputs, temp files. Real processes, real files, a real local server."""

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import ROOT, make_record, run_script, write_json
from realign.shards import failures_path, lock_path, shard_path
from tests.servers.openai_fake import OpenAIFake

SECRET = "victim's file: no trailing newline"  # a torn-line repair would cut it back to ''


def victim(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_text(SECRET)
    return path


def assert_refused_link(r, link, target):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"{link}: is a symbolic link" in lines[0], lines[0]
    assert target.read_text() == SECRET and os.path.islink(link)  # target untouched, link left where it was


def reformat(srv, inp, out, *extra):
    return run_script("reformat.py", "--input_data_path", inp, "--output_directory", out,
                      "--base_url", f"{srv.url}/v1", "--quiet", *extra, env={"OPENAI_API_KEY": ""})


@pytest.mark.parametrize("which", ["shard", "failures", "lock"])
def test_reformat_never_writes_through_a_link_in_its_folder(tmp_path, which):
    inp = write_json(tmp_path / "in.json", [make_record(i, q=f"q {i}") for i in range(3)])
    out = tmp_path / "out"
    out.mkdir()
    link = {"shard": shard_path(out, 0, 1), "failures": failures_path(out, 0, 1),
            "lock": lock_path(shard_path(out, 0, 1))}[which]
    target = victim(tmp_path)
    os.symlink(target, link)
    with OpenAIFake() as srv:
        r = reformat(srv, inp, out)
        sent = srv.request_count
    assert_refused_link(r, link, target)
    assert sent == 0  # refused before anything was paid for


def test_a_link_put_in_place_of_the_lock_mid_run_is_not_deleted(tmp_path):
    """We only ever delete our own lock: a file swapped in for it while we run stays."""
    inp = write_json(tmp_path / "in.json", [make_record(i, q=f"q {i}") for i in range(20)])
    out = tmp_path / "out"
    lock = lock_path(shard_path(out, 0, 1))
    target = victim(tmp_path)
    with OpenAIFake(latency=0.1) as srv:
        proc = subprocess.Popen([sys.executable, str(ROOT / "reformat.py"), "--input_data_path", str(inp),
                                 "--output_directory", str(out), "--base_url", f"{srv.url}/v1", "--quiet",
                                 "--concurrency", "1"], env={**os.environ, "OPENAI_API_KEY": ""},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while not os.path.exists(lock) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.symlink(target, str(lock) + ".new")
        os.replace(str(lock) + ".new", lock)  # someone else's link where our lock was
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert os.path.islink(lock) and target.read_text() == SECRET


def test_the_retrieval_journal_and_outputs_are_never_written_through_a_link(tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"title": "Nile", "text": "The Nile is the longest river in Africa."}) + "\n")
    inp = write_json(tmp_path / "in.json", [make_record(1, q="Which river is the longest in Africa?", cat="open_qa")])
    out = tmp_path / "out.json"
    for name in ("out.json.progress.jsonl", "out_clean_evidence.json", "out.json"):
        link, target = tmp_path / name, victim(tmp_path)
        os.symlink(target, link)
        r = run_script("retrieval.py", "--input_data_path", inp, "--output_path", out, "--backend", "bm25",
                       "--corpus_path", corpus)
        assert_refused_link(r, link, target)
        os.unlink(link)


@pytest.mark.parametrize("step", ["classify.py", "parallel_data_merge.py", "rewrite_data_selection.py"])
def test_an_output_path_that_is_a_link_is_refused(tmp_path, step):
    records = [make_record(i, q=f"q {i}", cat="default") for i in range(2)]
    inp = write_json(tmp_path / "in.json", records)
    link, target = tmp_path / "final.json", victim(tmp_path)
    os.symlink(target, link)
    if step == "classify.py":
        r = run_script(step, "--input_data_path", inp, "--output_path", link)
    elif step == "parallel_data_merge.py":
        with OpenAIFake() as srv:
            assert reformat(srv, inp, tmp_path / "out").returncode == 0
        r = run_script(step, "--input_data_path", inp, "--output_directory", tmp_path / "out",
                       "--final_output_path", link)
    else:
        r = run_script(step, "--input_original_data_path", inp, "--input_rewrite_data_path", inp,
                       "--output_path", link)
    assert_refused_link(r, link, target)


def test_a_stale_temp_name_that_is_a_link_is_removed_without_touching_its_target(tmp_path):
    from realign.files import atomic_open, _temp_prefix

    out, target = tmp_path / "o.json", victim(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    os.symlink(target, tmp_path / f"{_temp_prefix(str(out))}{dead.pid}.abcd.tmp")
    with atomic_open(out) as f:
        f.write("[]\n")
    assert target.read_text() == SECRET and out.read_text() == "[]\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_shards_collected_by_links_still_merge(tmp_path):
    """Reading through links is fine: a folder of links to shards written elsewhere merges."""
    inp = write_json(tmp_path / "in.json", [make_record(i, q=f"q {i}", cat="default") for i in range(2)])
    with OpenAIFake() as srv:
        assert reformat(srv, inp, tmp_path / "elsewhere").returncode == 0
    (tmp_path / "links").mkdir()
    for name in os.listdir(tmp_path / "elsewhere"):
        os.symlink(tmp_path / "elsewhere" / name, tmp_path / "links" / name)
    r = run_script("parallel_data_merge.py", "--input_data_path", inp, "--output_directory", tmp_path / "links",
                   "--final_output_path", tmp_path / "m.json")
    assert r.returncode == 0, r.stderr


def test_the_appender_and_the_torn_line_repair_refuse_a_link_even_past_the_up_front_check(tmp_path):
    """O_NOFOLLOW: a link planted after a step's up-front check is refused when the file is opened."""
    from realign.errors import DataError
    from realign.files import JsonlAppender, drop_torn_tail

    link, target = tmp_path / "shard.jsonl", victim(tmp_path)
    os.symlink(target, link)
    with pytest.raises(DataError, match="is a symbolic link"):
        drop_torn_tail(str(link))
    with pytest.raises(DataError, match="is a symbolic link"), JsonlAppender(str(link)) as out:
        out.write({"id": 1})
    assert target.read_text() == SECRET
