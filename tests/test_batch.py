"""reformat.py --batch end to end against a real local Batch API (tests/servers/batch_fake.py),
driven by the official openai SDK; plus the files-only paths (--write_batch_file,
--read_batch_output) and the pieces of code/llm/batch.py.

The acceptance list of issue 22, each with `--batch --poll_interval 1` and 300 records:
test_300_records_one_batch_no_online_call, test_error_file_every_id_accounted_once,
test_kill_9_while_waiting_then_same_command, test_expired_batch_half_answered_*,
test_validation_failure_exit_2_one_line, test_key_never_printed_and_merge_complete.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, make_record, run_script, write_json
from realign.llm.batch import custom_id, parse_custom_id, state_path
from realign.shards import failures_path, shard_path
from realign.llm.shape import REASONING_ROOM
from tests.servers.batch_fake import BatchFake
from tests.servers.openai_fake import OpenAIFake

KEY = "sk-batch-DISTINCTIVE-4e8b1d7a29c6f0"
N = 300


def records(n=N, prefix="question"):
    return [make_record(i, q=f"{prefix} {i}", a=f"Answer number {i}. It has two sentences.") for i in range(n)]


def args_for(srv, inp, out, *extra):
    return ["reformat.py", "--input_data_path", inp, "--output_directory", out, "--base_url", f"{srv.url}/v1",
            "--batch", "--poll_interval", "1", "--quiet", "--max_retries", "2", *extra]


def batch(srv, inp, out, *extra, timeout=120):
    script, *args = args_for(srv, inp, out, *extra)
    return run_script(script, *args, env={"OPENAI_API_KEY": KEY}, timeout=timeout)


def start(srv, inp, out, *extra):
    """reformat.py --batch as a real process we can signal."""
    return subprocess.Popen([sys.executable, *map(str, args_for(srv, inp, out, *extra))], cwd=ROOT,
                            env={**os.environ, "OPENAI_API_KEY": KEY, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def signalled_while_waiting(srv, inp, out, *extra, sig=signal.SIGKILL, until=None, after=0.0):
    """Start reformat.py --batch, wait until `until()` (default: the state file is written and the
    batch runs), then `after` seconds, and send `sig`; returns (exit code, stderr)."""
    state = state_path(shard_path(out, 0, 1))
    until = until or (lambda: os.path.exists(state) and statuses(srv) == ["in_progress"])
    proc = start(srv, inp, out, *extra)
    try:
        wait_for(until)
        time.sleep(after)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
        proc.communicate()
    return proc.returncode, err


def wait_for(condition, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def read_lines(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def outcome(out):
    """(shard lines, failures) of shard 0 of 1, each id at most once in the union (asserted)."""
    done, failed = read_lines(shard_path(out, 0, 1)), read_lines(failures_path(out, 0, 1))
    ids = [r["id"] for r in done] + [f["id"] for f in failed]
    assert len(ids) == len(set(ids)), "an id is written twice"
    return done, failed


def statuses(srv):
    return [e["batch"]["status"] for e in srv.batches.values()]


# ---------------------------------------------------------------- the acceptance list

def test_300_records_one_batch_no_online_call(tmp_path):
    inp = write_json(tmp_path / "in.json", records())
    with BatchFake() as srv:
        r = batch(srv, inp, tmp_path / "out", "--top_k", "2")
        uploads = [q for q in srv.requests if q["path"] == "/v1/files"]
        assert r.returncode == 0, r.stderr
        assert len(srv.batches) == 1 and statuses(srv) == ["completed"] and srv.online_calls == 0
        # the upload is multipart with purpose=batch; the lines are what reformat sends online
        headers = {k.lower(): v for k, v in uploads[0]["headers"].items()} if uploads else {}
        assert len(uploads) == 1 and headers["content-type"].startswith("multipart/form-data")
        (entry,) = srv.batches.values()
        lines = [json.loads(line) for line in entry["lines"]]
    done, failed = outcome(tmp_path / "out")
    assert len(done) == N and failed == []
    assert all(len(rec["items"][1]["revised_response_list"]) == 2 for rec in done)
    assert {line["custom_id"] for line in lines} == {custom_id(i) for i in range(N)}
    assert all(line["body"]["n"] == 2 and line["url"] == "/v1/chat/completions" for line in lines)
    assert "300 request lines in 1 batch, 0 online calls" in r.stdout
    assert "batch: batch-fake00002 (completed); tokens" in r.stdout and "s waiting for the server" in r.stdout
    assert "300 rewritten" in r.stdout
    assert not os.path.exists(state_path(shard_path(tmp_path / "out", 0, 1)))  # nothing left running


def test_error_file_every_id_accounted_once(tmp_path):
    """10 % of the requests come back in the error file: a follow-up batch rewrites them."""
    inp = write_json(tmp_path / "in.json", records())
    with BatchFake(error_share=0.1) as srv:
        r = batch(srv, inp, tmp_path / "out")
        first, follow_up = [e["batch"] for e in srv.batches.values()]
    assert r.returncode == 0, r.stderr
    assert 15 < first["request_counts"]["failed"] < 45 and first["error_file_id"]
    assert follow_up["request_counts"]["total"] == first["request_counts"]["failed"]
    done, failed = outcome(tmp_path / "out")
    assert sorted(rec["id"] for rec in done) == list(range(N)) and failed == []


def test_error_file_errors_that_stay_end_as_failures_with_the_reason(tmp_path):
    inp = write_json(tmp_path / "in.json", records())
    with BatchFake(error_share=0.1, error_batches=99) as srv:
        r = batch(srv, inp, tmp_path / "out", "--max_retries", "1")
        counts = [e["batch"]["request_counts"] for e in srv.batches.values()]
    assert r.returncode == 1, r.stderr
    done, failed = outcome(tmp_path / "out")
    assert len(done) + len(failed) == N and len(failed) == counts[0]["failed"] and len(srv.batches) == 2
    assert all(f["reason"].startswith("HTTP 500: The server had an error") and "after 2 attempts" in f["reason"]
               for f in failed)
    assert f"{len(failed)} failed" in r.stdout


def test_kill_9_while_waiting_then_same_command(tmp_path):
    inp = write_json(tmp_path / "in.json", records())
    out = tmp_path / "out"
    state = state_path(shard_path(out, 0, 1))
    with BatchFake(steps=(0.2, 6.0, 0.2)) as srv:
        code, _ = signalled_while_waiting(srv, inp, out, after=1.0)  # polling by then
        assert code == -signal.SIGKILL and statuses(srv) == ["in_progress"] and json.load(open(state))["batches"][0]["id"]
        r = batch(srv, inp, out)
        assert r.returncode == 0, r.stderr
        assert len(srv.batches) == 1 and srv.online_calls == 0  # the same batch, paid once
        assert sum(1 for q in srv.requests if q["path"] == "/v1/batches" and q["method"] == "POST") == 1
    done, failed = outcome(out)
    assert len(done) == N and failed == []


def test_crash_between_creating_the_batch_and_saving_its_id(tmp_path):
    """The state has the input file but no batch id: the batch made from that file is found."""
    inp = write_json(tmp_path / "in.json", records(40))
    out = tmp_path / "out"
    state = state_path(shard_path(out, 0, 1))
    with BatchFake(steps=(0.2, 4.0, 0.2)) as srv:
        signalled_while_waiting(srv, inp, out, until=lambda: os.path.exists(state)
                                and json.load(open(state))["batches"][0]["id"])
        saved = json.load(open(state))
        saved["batches"][0]["id"] = None  # as if killed before the id was written
        write_json(state, saved)
        r = batch(srv, inp, out)
        assert r.returncode == 0, r.stderr
        assert len(srv.batches) == 1
    assert len(outcome(out)[0]) == 40


def test_expired_batch_half_answered_rest_in_a_follow_up(tmp_path):
    inp = write_json(tmp_path / "in.json", records())
    with BatchFake(outcomes=["expired"], answered_share=0.5) as srv:
        r = batch(srv, inp, tmp_path / "out")
        first, follow_up = [e["batch"] for e in srv.batches.values()]
        answered_first = srv.lines_answered - follow_up["request_counts"]["total"]
    assert r.returncode == 0, r.stderr
    assert first["status"] == "expired" and first["request_counts"]["completed"] == N // 2
    assert follow_up["request_counts"]["total"] == N // 2 and answered_first == N // 2  # none paid twice
    done, failed = outcome(tmp_path / "out")
    assert len(done) == N and failed == []


@pytest.mark.parametrize("in_error_file", [True, False])
def test_expired_batch_half_answered_rest_failed_with_a_reason(tmp_path, in_error_file):
    """No retries left: the answered half is kept, the other half fails saying the batch expired
    (whether the server lists the unanswered requests in its error file or leaves them out)."""
    inp = write_json(tmp_path / "in.json", records())
    with BatchFake(outcomes=["expired"], expired_in_error_file=in_error_file) as srv:
        r = batch(srv, inp, tmp_path / "out", "--max_retries", "0")
        assert len(srv.batches) == 1
    assert r.returncode == 1
    done, failed = outcome(tmp_path / "out")
    assert len(done) == N // 2 and len(failed) == N // 2
    expected = "batch_expired: This request could not be executed" if in_error_file else \
        "no reply: batch batch-fake00002 expired before answering it"
    assert all(f["reason"].startswith(expected) for f in failed)


def test_validation_failure_exit_2_one_line(tmp_path):
    inp = write_json(tmp_path / "in.json", records())
    message = ("Enqueued token limit reached for gpt-4o-mini in organization org-abc. Limit: 90,000 enqueued "
               f"tokens. Please try again once some in_progress batches have been completed. key {KEY}")
    with BatchFake(validation_error=("token_limit_exceeded", message)) as srv:
        r = batch(srv, inp, tmp_path / "out")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: batch batch-fake00002 failed validation: "
                                                   "token_limit_exceeded: Enqueued token limit reached")
    assert KEY not in r.stderr and "Traceback" not in r.stderr
    assert not os.path.exists(tmp_path / "out")  # nothing written, no empty folder left


def test_key_never_printed_and_merge_complete(tmp_path):
    inp = write_json(tmp_path / "in.json", records())
    out = tmp_path / "out"
    leaky = (500, f"Internal error while serving key {KEY}", "server_error")
    with BatchFake(api_key=KEY, error_share=0.1, error_batches=99, line_error=leaky) as srv:
        r = batch(srv, inp, out, "--max_retries", "0")
    assert r.returncode == 1
    everything = r.stdout + r.stderr + "".join(p.read_text() for p in out.iterdir())
    assert KEY not in everything and "***" in (out / "failures_0_of_1.jsonl").read_text()
    final = tmp_path / "merged.json"
    m = run_script("parallel_data_merge.py", "--input_data_path", inp, "--output_directory", out,
                   "--final_output_path", final)
    assert m.returncode == 0, m.stderr
    merged = json.load(open(final))
    assert [rec["id"] for rec in merged] == list(range(N))
    failed = {f["id"] for f in read_lines(out / "failures_0_of_1.jsonl")}
    original = {rec["id"]: rec["items"][1]["value"] for rec in records()}
    assert all((rec["items"][1]["value"] == original[rec["id"]]) == (rec["id"] in failed) for rec in merged)
    assert f"{N - len(failed)} rewritten" in m.stdout and f"{len(failed)} failed" in m.stdout


# ---------------------------------------------------------------- Ctrl-C and --cancel_batch

def test_ctrl_c_leaves_the_batch_running_then_cancel_batch(tmp_path):
    inp = write_json(tmp_path / "in.json", records(100))
    out = tmp_path / "out"
    state = state_path(shard_path(out, 0, 1))
    with BatchFake(steps=(0.2, 40.0, 0.2)) as srv:
        code, err = signalled_while_waiting(srv, inp, out, sig=signal.SIGINT, after=0.5)
        assert code == 130, err
        assert "batch-fake00002 keeps running on the server" in err and "--cancel_batch" in err
        assert "Traceback" not in err and statuses(srv) == ["in_progress"]
        r = batch(srv, inp, out, "--cancel_batch")
        assert statuses(srv) == ["cancelled"]
    assert r.returncode == 1, r.stderr
    done, failed = outcome(out)
    assert len(done) + len(failed) == 100 and 0 < len(done) < 50  # what ran before the cancel is kept
    assert all(f["reason"].startswith("batch_cancelled") for f in failed)
    assert not os.path.exists(state)


def test_cancel_batch_with_nothing_running(tmp_path):
    inp = write_json(tmp_path / "in.json", records(5))
    with BatchFake() as srv:
        r = batch(srv, inp, tmp_path / "out", "--cancel_batch")
        assert len(srv.batches) == 0
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------- the same reader as online

def test_replies_read_as_online_think_cut_keep_original(tmp_path):
    recs = records(6)
    recs[0]["items"][0]["value"] += " [[think]]"
    recs[1]["items"][0]["value"] += " [[truncate]]"
    recs[2]["items"][0]["value"] += " [[keep]]"
    recs[3]["items"][0]["value"] += " [[refusal_field]]"
    inp = write_json(tmp_path / "in.json", recs)
    with BatchFake(faithful=True) as srv:
        r = batch(srv, inp, tmp_path / "out")
        sent = [e["batch"]["request_counts"]["total"] for e in srv.batches.values()]
    assert r.returncode == 1
    done, failed = outcome(tmp_path / "out")
    by_id = {rec["id"]: rec["items"][1] for rec in done}
    assert "DRAFT" not in by_id[0]["revised_response"] and by_id[0]["revised_response"].startswith("- ")
    assert by_id[2]["kept_original"] == "format does not fit" and "revised_response" not in by_id[2]
    reasons = {f["id"]: f["reason"] for f in failed}
    assert set(reasons) == {1, 3}
    assert reasons[1].startswith("truncated at --target_length 4096") and "after 2 attempts" in reasons[1]
    assert reasons[3].startswith("the model refused")
    assert sent == [6, 2]  # a cut or a refusal is tried once more (as online), then it is a failure


def test_shard_rows_and_failures_identical_to_online_mode(tmp_path):
    """The same records, the same (deterministic) model replies: online and batch mode write the
    same shard lines (input hash included) and the same failures, so resume, merge and
    selection cannot tell them apart."""
    recs = records(12) + [make_record(100, cat="story_generation"), make_record(101, a="  ")]
    for i, tag in enumerate(["think", "keep", "fence", "truncate", "reasoning_content", "echo"]):
        recs[i]["items"][0]["value"] += f" [[{tag}]]"
    recs[7]["system"] = "Answer in French."
    inp = write_json(tmp_path / "in.json", recs)
    flags = ["--top_k", "2", "--max_retries", "2"]
    with OpenAIFake(faithful=True) as srv:
        o = run_script("reformat.py", "--input_data_path", inp, "--output_directory", tmp_path / "online",
                       "--base_url", f"{srv.url}/v1", "--quiet", *flags, env={"OPENAI_API_KEY": KEY})
    with BatchFake(faithful=True) as srv:
        b = batch(srv, inp, tmp_path / "batch", *flags)
    assert o.returncode == b.returncode == 1, (o.stderr, b.stderr)
    (online, online_failed), (batched, batch_failed) = outcome(tmp_path / "online"), outcome(tmp_path / "batch")
    by_id = lambda rows: sorted(rows, key=lambda r: str(r["id"]))  # noqa: E731
    assert by_id(batched) == by_id(online) and len(online) == 12
    assert all(isinstance(r["items"][1]["input_hash"], str) for r in batched)
    assert by_id(batch_failed) == by_id(online_failed) and sorted(f["id"] for f in batch_failed) == [3, 5]


def test_n_refused_in_batch_falls_back_to_k_lines_per_record(tmp_path):
    inp = write_json(tmp_path / "in.json", records(20))
    with BatchFake(refuse_n=True) as srv:
        r = batch(srv, inp, tmp_path / "out", "--top_k", "3")
        entries = list(srv.batches.values())
        follow = [json.loads(line) for line in entries[1]["lines"]]
    assert r.returncode == 0, r.stderr
    assert len(entries) == 2 and entries[0]["batch"]["request_counts"]["failed"] == 20
    assert len(follow) == 60 and {line["custom_id"] for line in follow} == {custom_id(i, k) for i in range(20)
                                                                            for k in range(3)}
    assert all("n" not in line["body"] or line["body"]["n"] == 1 for line in follow)
    done, _ = outcome(tmp_path / "out")
    assert len(done) == 20 and all(len(rec["items"][1]["revised_response_list"]) == 3 for rec in done)


def test_reasoning_model_known_family_first_batch_in_its_shape(tmp_path):
    """No per-request 400 to learn from before a batch: the model-family table's guess is sent."""
    inp = write_json(tmp_path / "in.json", records(20))
    with BatchFake(reasoning=True) as srv:
        r = batch(srv, inp, tmp_path / "out", "--model", "o3-mini", "--target_length", "700")
        (entry,) = srv.batches.values()
        bodies = [json.loads(line)["body"] for line in entry["lines"]]
    assert r.returncode == 0, r.stderr
    assert all(b["max_completion_tokens"] == 700 + REASONING_ROOM and "max_tokens" not in b
               and "temperature" not in b
               for b in bodies)
    assert len(outcome(tmp_path / "out")[0]) == 20


def test_unsupported_parameter_in_the_error_file_learned_for_the_follow_up(tmp_path):
    """A reasoning model the table does not know: its refusals come back in the error file; the
    shape is learned as online (max_completion_tokens, then the default temperature) and the
    records go out again in it, without spending their retries; a later process keeps the lesson."""
    inp = write_json(tmp_path / "in.json", records(20))
    with BatchFake(reasoning=True) as srv:
        r = batch(srv, inp, tmp_path / "out", "--model", "acme-thinker", "--max_retries", "0")
        bodies = [json.loads(e["lines"][0])["body"] for e in srv.batches.values()]
    assert r.returncode == 0, r.stderr
    assert len(outcome(tmp_path / "out")[0]) == 20
    assert [("max_tokens" in b, "max_completion_tokens" in b, "temperature" in b) for b in bodies] == [
        (True, False, True), (False, True, True), (False, True, False)]  # one lesson per batch
    assert "adapted to the server: max_tokens sent as max_completion_tokens" in r.stdout
    assert "no token limit" not in r.stdout  # a refusal is learned against the body it refused


def test_lessons_kept_across_processes(tmp_path):
    """Killed while the second batch (max_completion_tokens) runs: the next process learns the
    temperature from its error file and still sends max_completion_tokens, learned by the first."""
    inp = write_json(tmp_path / "in.json", records(20))
    out = tmp_path / "out"
    with BatchFake(reasoning=True, steps=(0.2, 3.0, 0.2)) as srv:
        signalled_while_waiting(srv, inp, out, "--model", "acme-thinker",
                                until=lambda: statuses(srv)[1:] == ["in_progress"])
        r = batch(srv, inp, out, "--model", "acme-thinker")
        bodies = [json.loads(e["lines"][0])["body"] for e in srv.batches.values()]
    assert r.returncode == 0, r.stderr
    assert len(bodies) == 3 and "max_completion_tokens" in bodies[2] and "temperature" not in bodies[2]


def test_per_record_refusals_fail_at_once_and_content_parts_read(tmp_path):
    recs = records(10)
    recs[4]["items"][1]["value"] = "A very long answer. " * 400
    inp = write_json(tmp_path / "in.json", recs)
    with BatchFake(context_chars=6000, content_parts=True) as srv:
        r = batch(srv, inp, tmp_path / "out")
        assert len(srv.batches) == 1
    assert r.returncode == 1
    done, failed = outcome(tmp_path / "out")
    assert len(done) == 9 and [f["id"] for f in failed] == [4]
    assert failed[0]["reason"].startswith("context size exceeded") and "after" not in failed[0]["reason"]
    assert all(rec["items"][1]["revised_response"] for rec in done)


def test_azure_global_batch(tmp_path):
    inp = write_json(tmp_path / "in.json", records(30))
    with BatchFake(azure=True, api_key=KEY, deployment="gpt-4o-batch") as srv:
        r = run_script("reformat.py", "--input_data_path", inp, "--output_directory", tmp_path / "out",
                       "--api_type", "azure", "--base_url", srv.url, "--model", "gpt-4o-batch", "--batch",
                       "--poll_interval", "1", "--quiet", env={"AZURE_OPENAI_API_KEY": KEY, "OPENAI_API_KEY": ""})
        (entry,) = srv.batches.values()
        paths = {q["path"].split("?")[0] for q in srv.requests}
    assert r.returncode == 0, r.stderr
    assert entry["batch"]["endpoint"] == "/chat/completions" and "/openai/files" in paths
    assert all(json.loads(line)["url"] == "/chat/completions" for line in entry["lines"])
    assert len(outcome(tmp_path / "out")[0]) == 30 and KEY not in r.stdout + r.stderr


def test_limit_sends_only_the_first_records(tmp_path):
    inp = write_json(tmp_path / "in.json", records(50))
    with BatchFake() as srv:
        r = batch(srv, inp, tmp_path / "out", "--limit", "20")
        assert [e["batch"]["request_counts"]["total"] for e in srv.batches.values()] == [20]
    assert r.returncode == 0, r.stderr
    assert "20 of 50 records attempted (--limit)" in r.stdout and "30 left to rewrite" in r.stdout


def test_split_past_max_batch_requests(tmp_path):
    inp = write_json(tmp_path / "in.json", records())
    with BatchFake() as srv:
        r = batch(srv, inp, tmp_path / "out", "--max_batch_requests", "120")
        sizes = [e["batch"]["request_counts"]["total"] for e in srv.batches.values()]
    assert r.returncode == 0, r.stderr
    assert sizes == [120, 120, 60] and "3 batches" in r.stdout
    assert len(outcome(tmp_path / "out")[0]) == N


def test_rerun_after_done_sends_nothing_and_pass_through_records_written(tmp_path):
    recs = records(10) + [make_record(100, cat="story_generation"), make_record(101, cat=None)]
    inp = write_json(tmp_path / "in.json", recs)
    with BatchFake() as srv:
        assert batch(srv, inp, tmp_path / "out").returncode == 0
        r = batch(srv, inp, tmp_path / "out")
        assert len(srv.batches) == 1
    assert r.returncode == 0 and "12 already done" in r.stdout
    assert len(outcome(tmp_path / "out")[0]) == 12


def test_running_batch_on_another_model_or_online_refused_in_one_line(tmp_path):
    inp = write_json(tmp_path / "in.json", records(30))
    out = tmp_path / "out"
    with BatchFake(steps=(0.2, 30.0, 0.2)) as srv:
        signalled_while_waiting(srv, inp, out)
        r = batch(srv, inp, out, "--model", "another-model")
        online = run_script("reformat.py", "--input_data_path", inp, "--output_directory", out,
                            "--base_url", f"{srv.url}/v1", env={"OPENAI_API_KEY": KEY})
        assert srv.online_calls == 0
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "batch-fake00002 runs on" in r.stderr and "--model gpt-4o-mini" in r.stderr
    # an online run would pay a second time for the records the batch holds
    assert online.returncode == 2 and online.stderr.count("\n") == 1
    assert "batch batch-fake00002 still runs for this shard; rerun with --batch" in online.stderr


def test_damaged_state_file_refused_in_one_line(tmp_path):
    inp = write_json(tmp_path / "in.json", records(5))
    out = tmp_path / "out"
    out.mkdir()
    state = state_path(shard_path(out, 0, 1))
    with open(state, "w") as f:
        f.write('{"version": 1, "batches": [{"id": 7}]')
    with BatchFake() as srv:
        r = batch(srv, inp, out)
        assert len(srv.batches) == 0
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert f"{state}: not a batch state file of this version of reformat.py" in r.stderr


# ---------------------------------------------------------------- files without an API

def test_write_batch_file_bodies_equal_what_online_sends(tmp_path):
    recs = records(12)
    recs[3]["system"] = "Always answer in French."
    inp = write_json(tmp_path / "in.json", recs)
    req = tmp_path / "requests.jsonl"
    flags = ["--top_k", "2", "--temperature", "0.7", "--target_length", "900", "--model", "m-1"]
    w = run_script("reformat.py", "--input_data_path", inp, "--output_directory", tmp_path / "out",
                   "--write_batch_file", req, *flags, env={"OPENAI_API_KEY": ""})
    assert w.returncode == 0, w.stderr
    assert "vllm run-batch -i" in w.stdout and not os.path.exists(tmp_path / "out")
    lines = read_lines(req)
    with OpenAIFake() as srv:
        o = run_script("reformat.py", "--input_data_path", inp, "--output_directory", tmp_path / "online",
                       "--base_url", f"{srv.url}/v1", "--quiet", *flags, env={"OPENAI_API_KEY": ""})
        online = [json.loads(q["body"]) for q in srv.requests]
    assert o.returncode == 0, o.stderr
    key = lambda body: json.dumps(body["messages"])  # noqa: E731
    assert sorted(map(key, online)) == sorted(key(line["body"]) for line in lines)
    by_messages = {key(b): b for b in online}
    assert all(line["body"] == by_messages[key(line["body"])] for line in lines)
    assert [parse_custom_id(line["custom_id"])[0] for line in lines] == list(range(12))
    assert all(line["method"] == "POST" and line["url"] == "/v1/chat/completions" for line in lines)


def vllm_like_output(request_file, output_file, skip=(), fake_kw=None):
    """What `vllm run-batch -i REQUESTS -o OUTPUT` writes: one output line per request line, in
    vLLM's shape, answered by OpenAIFake; lines whose record id is in `skip` get an error line."""
    rows = []
    with OpenAIFake(**(fake_kw or {})) as fake:
        for n, line in enumerate(read_lines(request_file)):
            rid, _ = parse_custom_id(line["custom_id"])
            if rid in skip:
                rows.append({"id": f"vllm-{n}", "custom_id": line["custom_id"],
                             "response": {"status_code": 400, "request_id": f"vllm-batch-{n}", "body": None},
                             "error": {"object": "error", "message": "This model's maximum context length is "
                                       "2048 tokens. However, you requested 5000 tokens.", "type":
                                       "BadRequestError", "param": None, "code": 400}})
                continue
            status, _, body = fake.respond("POST", "/v1/chat/completions", {}, json.dumps(line["body"]).encode())
            rows.append({"id": f"vllm-{n}", "custom_id": line["custom_id"],
                         "response": {"status_code": status, "request_id": f"vllm-batch-{n}",
                                      "body": json.loads(body)}, "error": None})
    output_file.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_read_batch_output_finishes_the_shard(tmp_path):
    recs = records(20) + [make_record(100, cat="story_generation")]
    inp = write_json(tmp_path / "in.json", recs)
    req, res, out = tmp_path / "requests.jsonl", tmp_path / "results.jsonl", tmp_path / "out"
    common = ["--input_data_path", inp, "--output_directory", out, "--top_k", "2"]
    assert run_script("reformat.py", *common, "--write_batch_file", req).returncode == 0
    vllm_like_output(req, res, skip={5})
    lines = res.read_text().splitlines()
    res.write_text("\n".join(lines[:-1]) + "\n")  # the last request has no reply at all
    r = run_script("reformat.py", *common, "--read_batch_output", res, env={"OPENAI_API_KEY": ""})
    assert r.returncode == 1, r.stderr
    done, failed = outcome(out)
    assert len(done) == 19 and {f["id"] for f in failed} == {5, 19}
    reasons = {f["id"]: f["reason"] for f in failed}
    assert "maximum context length" in reasons[5] and reasons[19] == f"no reply in {res}"
    assert "19 replies read from" in r.stdout and "--write_batch_file writes only what is left" in r.stdout


def test_read_batch_output_of_another_dataset_refused(tmp_path):
    inp = write_json(tmp_path / "in.json", records(5))
    res = tmp_path / "results.jsonl"
    res.write_text(json.dumps({"custom_id": '"other-1"', "response": {"status_code": 200, "body": {
        "choices": [{"message": {"content": "x"}, "finish_reason": "stop"}]}}, "error": None}) + "\n")
    r = run_script("reformat.py", "--input_data_path", inp, "--output_directory", tmp_path / "out",
                   "--read_batch_output", res)
    assert r.returncode == 2 and "none of its 1 replies is for a record" in r.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"hello": 1}\n')
    r = run_script("reformat.py", "--input_data_path", inp, "--output_directory", tmp_path / "out",
                   "--read_batch_output", bad)
    assert r.returncode == 2 and f"{bad}: line 1: not a batch output line" in r.stderr


# ---------------------------------------------------------------- refusals and the dry run

@pytest.mark.parametrize("extra, says", [
    (["--engine", "ray"], "--engine ray does not combine with batch mode"),
    (["--backend", "local"], "--batch needs a Batch API (--backend openai), not --backend local"),
    (["--backend", "vllm"], "--batch needs a Batch API (--backend openai), not --backend vllm"),
    (["--cancel_batch", "--read_batch_output", "x.jsonl"], "do not go together"),
    (["--poll_interval", "0"], "--poll_interval must be positive"),
])
def test_batch_refused_in_one_line(tmp_path, extra, says):
    inp = write_json(tmp_path / "in.json", records(3))
    r = run_script("reformat.py", "--input_data_path", inp, "--output_directory", tmp_path / "out", "--batch",
                   *extra, env={"OPENAI_API_KEY": KEY})
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and says in r.stderr, r.stderr


def test_dry_run_shows_batch_price_beside_online(tmp_path):
    inp = write_json(tmp_path / "in.json", records(50))
    r = run_script("reformat.py", "--input_data_path", inp, "--output_directory", tmp_path / "out", "--batch",
                   "--dry_run", "--price_in", "2", "--price_out", "8", env={"OPENAI_API_KEY": ""})
    assert r.returncode == 0, r.stderr
    cost = next(line for line in r.stdout.splitlines() if line.startswith("estimated cost"))
    online, batched = [float(part.split("$")[1].split()[0]) for part in cost.split(",")[:2]]
    assert batched == pytest.approx(online / 2, abs=0.01) and "with --batch" in cost
    assert "50 records in 1 batch" in r.stdout


# ---------------------------------------------------------------- pieces

@pytest.mark.parametrize("rid", [0, 12345678901234567890, "a", "a#1", "x\"#2", "中文 id", "7", ""])
def test_custom_id_round_trip(rid):
    assert parse_custom_id(custom_id(rid)) == (rid, None)
    assert parse_custom_id(custom_id(rid, 3)) == (rid, 3)


@pytest.mark.parametrize("bad", ["nope", "1#x", "[1]", "true", "#3", None])
def test_custom_id_not_ours(bad):
    with pytest.raises(ValueError):
        parse_custom_id(bad)


def test_nothing_listening_before_a_batch_is_exit_2(tmp_path):
    inp = write_json(tmp_path / "in.json", records(5))
    r = run_script("reformat.py", "--input_data_path", inp, "--output_directory", tmp_path / "out", "--batch",
                   "--base_url", "http://127.0.0.1:9/v1", env={"OPENAI_API_KEY": KEY})
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "the Batch API refused to upload the request file: http://127.0.0.1:9/v1: connection refused" in r.stderr
    assert not os.path.exists(tmp_path / "out")


def test_lost_connection_while_batches_run_is_retried_then_unreachable(tmp_path):
    """Once a batch runs on the server, a refused connection (a laptop asleep, a proxy restarting)
    is no misconfiguration: it is retried, then BatchUnreachable (exit 1, rerun to pick it up)."""
    import asyncio

    from realign.lengths import approx_tokens
    from realign.llm.base import BackendConfig, make_backend
    from realign.llm.batch import BatchRun, BatchSettings, BatchUnreachable
    from realign.rewrite import Settings, ShardWork

    out = str(tmp_path / "shard.jsonl")
    backend = make_backend("openai", BackendConfig(model="m", base_url="http://127.0.0.1:9/v1", api_key=KEY))
    with ShardWork([], out, str(tmp_path / "fail.jsonl"), Settings(), approx_tokens) as work:
        run = BatchRun(backend, work, BatchSettings(api_retries=1), str(tmp_path / "state.json"))
        run.state.batches.append({"id": "batch-1", "input_file_id": "file-1", "ids": [1], "parts": 1,
                                  "status": "in_progress", "collected": False, "counts": None})
        with pytest.raises(BatchUnreachable, match=r"could not look at batch batch-1 .*connection refused; 2 tries"):
            asyncio.run(run._api("look at batch batch-1", lambda: backend.client.batches.retrieve("batch-1")))
        assert "batch-1 keeps running on the server" in run.interrupted_hint()


def test_request_files_split_at_max_bytes_a_record_never_split(tmp_path):
    from realign.lengths import approx_tokens
    from realign.llm.base import BackendConfig, make_backend
    from realign.llm.batch import BatchRun, BatchSettings
    from realign.rewrite import Settings, ShardWork

    backend = make_backend("openai", BackendConfig(model="m", api_key=KEY))
    backend.shape.n = False  # a model that refuses n > 1: three lines a record
    with ShardWork(records(10), str(tmp_path / "s.jsonl"), str(tmp_path / "f.jsonl"), Settings(top_k=3),
                   approx_tokens) as work:
        one = BatchRun(backend, work, BatchSettings(), None)
        size = next(one._request_files(work.to_send()[:1]))["bytes"]
        run = BatchRun(backend, work, BatchSettings(max_bytes=int(size * 2.5)), None)
        chunks = list(run._request_files(work.to_send()))
    assert [c["ids"] for c in chunks] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert all(c["parts"] == 3 and c["lines"] == 6 and c["bytes"] <= size * 2.5 for c in chunks)
    lines = [json.loads(line) for line in open(chunks[0]["path"])]
    assert [line["custom_id"] for line in lines] == [custom_id(r, k) for r in (0, 1) for k in range(3)]
    for c in chunks:
        os.unlink(c["path"])
