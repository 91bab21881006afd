"""Resume and merge per record, by id and input hash (question, answer, system prompt, category,
evidence): a removed, reordered or edited record leaves the rest done; only what changed is sent."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, make_record, run_script, write_json
from realign.shards import shard_path
from tests.servers.openai_fake import OpenAIFake

CASES = Path(__file__).parent / "fixtures" / "cases"


def reformat(srv, inp, out, *extra):
    return run_script("reformat.py", "--input_data_path", inp, "--output_directory", out,
                      "--base_url", f"{srv.url}/v1", "--quiet", "--max_retries", "1", *extra, env={"OPENAI_API_KEY": ""})


def merge(inp, out, final, *extra):
    return run_script("parallel_data_merge.py", "--input_data_path", inp, "--output_directory", out,
                      "--final_output_path", final, *extra)


def asked(srv, since=0):
    """The questions of the requests the server got since request number `since`."""
    return [json.loads(req["body"])["messages"][-1]["content"] for req in srv.requests[since:]]


def records_of(n, cat="planning"):
    return [make_record(i, q=f"Plan step {i} of my week.", a=f"Rest on day {i}. Study after.", cat=cat) for i in range(n)]


def run_edit_rerun(tmp_path, v1_case, v2_case):
    """reformat on case v1, then merge against case v2 (the input edited after the run), then
    reformat on v2. Returns (v2, out, final, requests before the rerun, that merge, the rerun,
    the request bodies the rerun sent)."""
    v1 = shutil.copy(CASES / v1_case, tmp_path / "v1.json")
    v2 = shutil.copy(CASES / v2_case, tmp_path / "v2.json")
    out, final = tmp_path / "out", tmp_path / "final.json"
    with OpenAIFake(latency=0.01) as srv:
        assert reformat(srv, v1, out).returncode == 0
        first = len(srv.requests)
        stale = merge(v2, out, final)
        rerun = reformat(srv, v2, out)
        redone = [json.loads(req["body"]) for req in srv.requests[first:]]
    return v2, out, final, first, stale, rerun, redone


def test_an_edited_answer_is_redone_and_its_stale_rewrite_never_merged(tmp_path):
    v2, out, final, first, stale, r, redone = run_edit_rerun(tmp_path, "resume_input_v1.json",
                                                             "resume_input_v2_edited.json")
    # the user edited answer 1 after the run: its rewrite is stale, and merge refuses before writing
    assert stale.returncode == 2 and "1 records changed since reformat.py" in stale.stderr and "(1)" in stale.stderr
    assert not final.exists()
    assert r.returncode == 0, r.stderr  # the rerun redoes exactly the edited record
    assert first == 2 and len(redone) == 1  # advice_giving is passed through, not rewritten
    assert len(redone) == 1 and "6 minutes for a soft yolk" in redone[0]["messages"][-1]["content"]
    assert "1 redone because their input changed" in r.stdout and "2 already done" in r.stdout
    with open(shard_path(out, 0, 1), encoding="utf-8") as f:
        lines = [json.loads(x) for x in f]
    assert sorted(rec["id"] for rec in lines) == [0, 1, 2]  # each id once: the stale line is gone
    r = merge(v2, out, final)
    assert r.returncode == 0, r.stderr
    merged = {rec["id"]: rec for rec in json.loads(final.read_text())}
    edited = json.loads(Path(v2).read_text())[1]["items"][1]["value"]
    assert merged[1]["items"][1]["value"] != edited  # rewritten, from the edited answer's request
    assert "2 rewritten, 1 passed through" in r.stdout


def test_a_changed_system_prompt_category_or_evidence_is_redone(tmp_path):
    """turn3/stale_resume: classify.py --overwrite and retrieval.py between two runs change record 1."""
    v2, out, final, _, stale, r, redone = run_edit_rerun(tmp_path, "stale_resume_v1.json",
                                                         "stale_resume_v2_system_category_evidence.json")
    assert stale.returncode == 2  # the old rewrite of record 1 is not merged
    assert r.returncode == 0, r.stderr
    assert len(redone) == 1 and "1 redone because their input changed" in r.stdout
    sent = "\n".join(m["content"] for m in redone[0]["messages"])
    assert "How do I boil an egg?" in sent and "Always answer in French." in sent
    r = merge(v2, out, final)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in open(shard_path(out, 0, 1), encoding="utf-8")]
    assert sorted(rec["id"] for rec in lines) == [0, 1, 2]


def test_removing_a_record_sends_nothing_for_the_other_19_and_merge_is_complete(tmp_path):
    records = records_of(20)
    inp = write_json(tmp_path / "in.json", records)
    out, final = tmp_path / "out", tmp_path / "final.json"
    with OpenAIFake(latency=0.01) as srv:
        for i in (0, 1):
            assert reformat(srv, inp, out, "--dataset_batch_id", i, "--dataset_batch_num", 2).returncode == 0
        first = len(srv.requests)
        write_json(inp, records[:3] + records[4:])  # record 3 gone: record 10 moves from shard 1 to shard 0
        runs = [reformat(srv, inp, out, "--dataset_batch_id", i, "--dataset_batch_num", 2) for i in (0, 1)]
        assert len(srv.requests) == first == 20
    assert all(r.returncode == 0 for r in runs), runs[0].stderr + runs[1].stderr
    assert "9 already done" in runs[0].stdout and "10 already done" in runs[1].stdout
    r = merge(inp, out, final)
    assert r.returncode == 0, r.stderr
    assert "19 rewritten" in r.stdout and "1 lines of records no longer in the input ignored" in r.stdout
    assert [rec["id"] for rec in json.loads(final.read_text())] == [i for i in range(20) if i != 3]


def test_reordering_or_editing_one_question_sends_only_what_changed(tmp_path):
    records = records_of(12)
    inp = write_json(tmp_path / "in.json", records)
    out, final = tmp_path / "out", tmp_path / "final.json"
    with OpenAIFake(latency=0.01) as srv:
        assert reformat(srv, inp, out).returncode == 0
        first = len(srv.requests)
        write_json(inp, records[::-1])
        assert reformat(srv, inp, out).returncode == 0 and len(srv.requests) == first
        records[5]["items"][0]["value"] = "Plan step five of my week, fixed."
        write_json(inp, records)
        r = reformat(srv, inp, out)
        assert r.returncode == 0 and asked(srv, first) == [asked(srv, first)[0]]
        assert "Plan step five of my week, fixed." in asked(srv, first)[0]
    assert merge(inp, out, final).returncode == 0


def test_kill_9_then_an_edited_input_resumes_record_by_record(tmp_path):
    records = records_of(40)
    inp = write_json(tmp_path / "in.json", records)
    out = tmp_path / "out"
    with OpenAIFake(latency=0.05) as srv:
        cmd = [sys.executable, str(ROOT / "reformat.py"), "--input_data_path", str(inp), "--output_directory",
               str(out), "--base_url", f"{srv.url}/v1", "--quiet", "--concurrency", "2"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "OPENAI_API_KEY": ""})
        path, deadline = shard_path(out, 0, 1), time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            if os.path.exists(path) and open(path, "rb").read().count(b"\n") >= 10:
                break
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        done = {json.loads(x)["id"] for x in open(path, encoding="utf-8") if x.endswith("\n")}
        assert 10 <= len(done) < 40
        gone, edited = min(done), max(done)  # one finished record removed, one edited
        records[edited]["items"][1]["value"] = "Rest on Sunday. Study on Monday."
        kept = [rec for rec in records if rec["id"] != gone][::-1]
        write_json(inp, kept)
        first = len(srv.requests)
        r = reformat(srv, inp, out)
        again = sorted(int(q.split("step ")[1].split(" ")[0]) for q in asked(srv, first))
    assert r.returncode == 0, r.stderr
    assert again == sorted(set(range(40)) - done | {edited})  # nothing finished is paid for twice
    r = merge(inp, out, tmp_path / "final.json")
    assert r.returncode == 0 and "39 rewritten" in r.stdout, r.stdout + r.stderr


def test_a_folder_of_a_run_with_another_n_is_refused(tmp_path):
    inp = write_json(tmp_path / "in.json", records_of(6))
    out = tmp_path / "out"
    with OpenAIFake() as srv:
        assert reformat(srv, inp, out, "--dataset_batch_id", "0", "--dataset_batch_num", "2").returncode == 0
        r = reformat(srv, inp, out, "--dataset_batch_id", "0", "--dataset_batch_num", "3")
        sent = srv.request_count
    assert r.returncode == 2 and "holds the shards of a run with --dataset_batch_num 2" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and sent == 3
    assert not os.path.exists(shard_path(out, 0, 3))


def select(orig, merged, final, *extra):
    return run_script("rewrite_data_selection.py", "--input_original_data_path", orig, "--input_rewrite_data_path",
                      merged, "--output_path", final, "--rules", "none", *extra)


def test_a_corrected_original_never_ships_in_its_old_form(tmp_path):
    """A dangerous answer fixed by hand after the merge: selection refuses, or ships the fix."""
    records = records_of(4) + [make_record(9, q="Tell me a story.", a="Once upon a time.", cat="default")]
    inp = write_json(tmp_path / "in.json", records)
    out, merged, final = tmp_path / "out", tmp_path / "merged.json", tmp_path / "final.json"
    with OpenAIFake(latency=0.01) as srv:
        assert reformat(srv, inp, out).returncode == 0
    assert merge(inp, out, merged).returncode == 0
    records[2]["items"][1]["value"] = "CORRECTED: rest on day 2, then study."   # was rewritten
    records[4]["items"][1]["value"] = "CORRECTED: once upon a time, safely."    # was passed through
    write_json(inp, records)
    r = select(inp, merged, final)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert "2 records changed" in r.stderr and "(answer: 2, 9)" in r.stderr and "--changed_input keep_original" in r.stderr
    assert not final.exists()
    r = select(inp, merged, final, "--changed_input", "keep_original")
    assert r.returncode == 0, r.stderr
    shipped = {rec["id"]: rec for rec in json.loads(final.read_text())}
    for rid in (2, 4):
        rec = shipped[records[rid]["id"]]
        assert rec["items"][1]["value"].startswith("CORRECTED") and rec["tag"] == "original"
    assert not any("Rest on day 2. Study after." in json.dumps(rec) for rec in shipped.values())
    assert shipped[0]["tag"] == "rewrite"  # the records that did not change keep their rewrites


def test_selection_given_the_file_before_retrieval_says_the_evidence_differs(tmp_path):
    records = [make_record(i, q=f"How do I boil egg {i}?", a="Boil it for nine minutes.", cat="how_to_generation")
               for i in range(3)]
    classified = write_json(tmp_path / "classified.json", records)
    for rec in records:
        rec["items"][0]["evidence"] = ["Eggs boil in nine minutes."]
    inp = write_json(tmp_path / "in.json", records)
    out, merged = tmp_path / "out", tmp_path / "merged.json"
    with OpenAIFake(latency=0.01) as srv:
        assert reformat(srv, inp, out).returncode == 0
    assert merge(inp, out, merged).returncode == 0
    r = select(classified, merged, tmp_path / "final.json")
    assert r.returncode == 2 and "3 records changed" in r.stderr and "(evidence: 0, 1, 2)" in r.stderr
