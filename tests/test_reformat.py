"""reformat.py end to end against a real local OpenAI-shaped server (tests/servers/openai_fake.py)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, make_record, run_script, write_json
from realign.records import input_hash
from realign.shards import failures_path, shard_bounds, shard_path
from tests.servers.openai_fake import OpenAIFake, revised_text

KEY = "sk-fake-DISTINCTIVE-7f3a9c2e5b81d4"


def rewrite_records(n, cat="math_puzzles", prefix="q"):
    return [make_record(i, q=f"{prefix} {i}", a=f"answer {i}", cat=cat) for i in range(n)]


def reformat(srv, inp, out, *extra, env=None, timeout=60):
    args = ["--input_data_path", inp, "--output_directory", out, "--base_url", f"{srv.url}/v1",
            "--quiet", "--max_retries", "2", *extra]
    return run_script("reformat.py", *args, env={"OPENAI_API_KEY": "", **(env or {})}, timeout=timeout)


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def outputs(out_dir, i=0, n=1):
    return read_lines(shard_path(out_dir, i, n)), read_lines(failures_path(out_dir, i, n))


def bodies(srv):
    return [json.loads(r["body"]) for r in srv.requests]


# ---------------------------------------------------------------- happy path

def test_top_k_candidates_longest_kept_and_pass_through_sends_nothing(tmp_path):
    records = rewrite_records(6)
    records += [make_record(10, cat="story_generation"), make_record(11, cat=None), make_record(12, cat="default")]
    records[0]["items"].append({"from": "human", "value": "a later turn"})
    inp = write_json(tmp_path / "in.json", records)
    with OpenAIFake(latency=0.01) as srv:
        r = reformat(srv, inp, tmp_path / "out", "--top_k", "4", "--model", "m1")
        sent = bodies(srv)
    assert r.returncode == 0, r.stderr
    done, failed = outputs(tmp_path / "out")
    assert failed == []
    assert sorted(rec["id"] for rec in done) == [0, 1, 2, 3, 4, 5, 10, 11, 12]
    assert len(sent) == 6 and all(b["n"] == 4 and b["model"] == "m1" for b in sent)
    by_id = {rec["id"]: rec for rec in done}
    for rec in records:
        got = by_id[rec["id"]]
        if rec["id"] >= 10:  # passed through unchanged, saying why, with what it was made from
            why = {10: "task not rewritten", 11: "no category", 12: "task not rewritten"}[rec["id"]]
            assert got == {**rec, "items": [rec["items"][0], {**rec["items"][1], "kept_original": why,
                                                              "input_hash": input_hash(rec)}]}
            continue
        gpt = got["items"][1]
        assert len(gpt["revised_response_list"]) == 4
        assert gpt["revised_response"] == gpt["revised_response_list"][2]  # candidate 2 has the most words
        assert gpt["revised_response"].endswith("word word word word")
        assert gpt["value"] == rec["items"][1]["value"] and got["items"][2:] == rec["items"][2:]
        assert gpt["input_hash"] == input_hash(rec)
    assert "1 without category" in r.stdout and "6 rewritten" in r.stdout


def test_servers_that_ignore_n_are_topped_up(tmp_path):
    inp = write_json(tmp_path / "in.json", rewrite_records(2))
    with OpenAIFake(ignore_n=True) as srv:
        r = reformat(srv, inp, tmp_path / "out", "--top_k", "3")
        count = srv.request_count
    assert r.returncode == 0, r.stderr
    done, _ = outputs(tmp_path / "out")
    assert all(len(rec["items"][1]["revised_response_list"]) == 3 for rec in done)
    assert count == 6


def test_servers_that_refuse_n_get_one_choice_per_call(tmp_path):
    inp = write_json(tmp_path / "in.json", rewrite_records(4))
    with OpenAIFake(refuse_n=True) as srv:
        r = reformat(srv, inp, tmp_path / "out", "--top_k", "3", "--concurrency", "1", "--max_retries", "0")
        counts = dict(srv.status_counts)
    assert r.returncode == 0, r.stderr
    done, failed = outputs(tmp_path / "out")
    assert failed == [] and all(len(rec["items"][1]["revised_response_list"]) == 3 for rec in done)
    assert counts == {400: 1, 200: 12}  # refused once, then asked one choice at a time
    assert "13 requests" in r.stdout  # the summary counts the calls made, not the 4 records


def test_rpm_counts_every_call_to_a_server_that_ignores_n(tmp_path):
    inp = write_json(tmp_path / "in.json", rewrite_records(4))
    with OpenAIFake(ignore_n=True) as srv:
        r = reformat(srv, inp, tmp_path / "out", "--top_k", "2", "--rpm", "60", "--concurrency", "1")
        times = sorted(req["t"] for req in srv.requests)
    assert r.returncode == 0, r.stderr
    assert len(times) == 8 and "8 requests" in r.stdout
    # 1 request/s after a burst of 1. The first record finds out that n is ignored; the second
    # was already charged for one call while it waited; the last two are charged 2 each: 0, 1, 3, 5 s
    assert times[-1] - times[0] >= 4.5


def test_request_timeout_is_per_call_when_a_server_ignoring_n_is_asked_n_times(tmp_path):
    inp = write_json(tmp_path / "in.json", rewrite_records(1))
    with OpenAIFake(ignore_n=True, latency=2.0) as srv:  # 4 calls of 2 s each, every one within 2.5 s
        r = reformat(srv, inp, tmp_path / "out", "--top_k", "4", "--request_timeout", "2.5", "--max_retries", "0")
    assert r.returncode == 0, r.stderr + r.stdout
    assert len(outputs(tmp_path / "out")[0][0]["items"][1]["revised_response_list"]) == 4


def test_evidence_goes_into_rag_prompts_unless_no_retrieval(tmp_path):
    rec = make_record(1, q="Who wrote Hamlet?", a="Shakespeare", cat="open_qa")
    rec["items"][0]["evidence"] = ["EVIDENCE-PASSAGE about Hamlet"]
    inp = write_json(tmp_path / "in.json", [rec])
    with OpenAIFake() as srv:
        assert reformat(srv, inp, tmp_path / "a").returncode == 0
        assert reformat(srv, inp, tmp_path / "b", "--no_retrieval").returncode == 0
        with_ev, without = (b["messages"][-1]["content"] for b in bodies(srv))
    assert "EVIDENCE-PASSAGE" in with_ev and "EVIDENCE-PASSAGE" not in without


def test_limit_says_how_many_of_the_shard_were_attempted(tmp_path):
    inp = write_json(tmp_path / "in.json", rewrite_records(4) + [make_record(9, cat="roleplay")])
    with OpenAIFake() as srv:
        r = reformat(srv, inp, tmp_path / "out", "--limit", "2")
        whole = reformat(srv, inp, tmp_path / "out")
    assert r.returncode == 0 and whole.returncode == 0, r.stderr + whole.stderr
    assert "2 of 5 records attempted (--limit): 2 rewritten" in r.stdout
    assert "2 requests" in r.stdout and "2 left to rewrite, about " in r.stdout
    assert "5 records: 2 rewritten, 1 passed through (0 without category), 0 failed, 2 already done" in whole.stdout
    assert "attempted" not in whole.stdout and "left to rewrite" not in whole.stdout


def test_summary_of_a_model_we_run_speaks_of_time_per_rewrite_not_429s():
    from realign.rewrite import Summary

    line = Summary(total=10, attempted=4, later=6, rewritten=4, passed_through=0, requests=5, seconds=120.0,
                   throttles=False).line()
    assert line.startswith("4 of 10 records attempted (--limit): 4 rewritten")
    assert "5 model calls; 120.0 s, 30.0 s per rewrite; 6 left to rewrite, about 3 min at this pace" in line
    assert "429" not in line and "requests" not in line
    assert Summary(total=1, failed=1, requests=1, seconds=9.0, throttles=False).line().endswith("1 model calls; 9.0 s")


# ---------------------------------------------------------------- faults

def test_429_retry_after_is_honoured(tmp_path):
    inp = write_json(tmp_path / "in.json", rewrite_records(1))
    with OpenAIFake(throttle_first=2, retry_after=1) as srv:
        r = reformat(srv, inp, tmp_path / "out", "--concurrency", "1")
        times = [req["t"] for req in srv.requests]
        counts = dict(srv.status_counts)
    assert r.returncode == 0, r.stderr
    assert counts == {429: 2, 200: 1}
    assert all(b - a >= 1.0 for a, b in zip(times, times[1:]))  # waited as told, each time
    assert "2 answered 429" in r.stdout


def test_500s_are_retried(tmp_path):
    inp = write_json(tmp_path / "in.json", rewrite_records(1))
    with OpenAIFake(fail_first=2) as srv:
        r = reformat(srv, inp, tmp_path / "out", "--concurrency", "1")
        counts = dict(srv.status_counts)
    assert r.returncode == 0, r.stderr
    assert counts == {500: 2, 200: 1}
    assert len(outputs(tmp_path / "out")[0]) == 1


def test_malformed_replies_are_retried_then_fail_with_a_reason(tmp_path):
    records = rewrite_records(3)
    records[1]["items"][0]["value"] += " [[malformed]]"
    inp = write_json(tmp_path / "in.json", records)
    with OpenAIFake(malformed_first=1) as srv:  # record 0 or 2 gets one bad reply, then good ones
        r = reformat(srv, inp, tmp_path / "out", "--concurrency", "1", "--max_retries", "1")
        count = srv.request_count
    assert r.returncode == 1
    done, failed = outputs(tmp_path / "out")
    assert sorted(rec["id"] for rec in done) == [0, 2]
    assert [f["id"] for f in failed] == [1] and "Revised response" in failed[0]["reason"]
    assert count == 1 + 2 + 2  # record 1 tried twice, the other bad reply retried once
    assert "failed" in r.stdout and "failures_0_of_1.jsonl" in r.stdout


def test_a_hanging_server_times_out_into_a_failure(tmp_path):
    records = rewrite_records(3)
    records[2]["items"][0]["value"] += " [[hang]]"
    inp = write_json(tmp_path / "in.json", records)
    with OpenAIFake() as srv:
        t0 = time.monotonic()
        r = reformat(srv, inp, tmp_path / "out", "--request_timeout", "0.5", "--max_retries", "1", timeout=30)
        elapsed = time.monotonic() - t0
    assert r.returncode == 1, r.stderr
    done, failed = outputs(tmp_path / "out")
    assert sorted(rec["id"] for rec in done) == [0, 1]
    assert [f["id"] for f in failed] == [2] and "timed out" in failed[0]["reason"]
    assert elapsed < 20


def test_every_record_ends_exactly_once_under_mixed_faults(tmp_path):
    records = rewrite_records(100) + [make_record(f"p{i}", cat="roleplay") for i in range(10)]
    for i in range(0, 100, 17):
        records[i]["items"][0]["value"] += " [[error500]]"
    for i in range(5, 100, 23):
        records[i]["items"][0]["value"] += " [[malformed]]"
    inp = write_json(tmp_path / "in.json", records)
    # 429s on any machine: seeded random ones (the 17th request's draw is the first under 0.1),
    # and the rpm cap's wherever the client is fast enough to hit it (not on 2 busy cores)
    with OpenAIFake(latency=0.02, rpm_cap=3000, random_429=0.1, fail_first=5, malformed_first=10) as srv:
        r = reformat(srv, inp, tmp_path / "out", "--concurrency", "32", "--max_retries", "1", "--top_k", "2")
        throttled = srv.status_counts.get(429, 0)
    assert r.returncode == 1, r.stderr
    done, failed = outputs(tmp_path / "out")
    ids = [rec["id"] for rec in done] + [f["id"] for f in failed]
    assert sorted(map(str, ids)) == sorted(str(rec["id"]) for rec in records)  # each exactly once
    assert {f["id"] for f in failed} >= set(range(0, 100, 17)) | set(range(5, 100, 23))
    assert throttled > 0  # 429s happened, and they alone lost nothing


# ---------------------------------------------------------------- resume and shards

def _run_until_killed(srv, inp, out, lines_before_kill):
    cmd = [sys.executable, str(ROOT / "reformat.py"), "--input_data_path", str(inp), "--output_directory", str(out),
           "--base_url", f"{srv.url}/v1", "--quiet", "--concurrency", "4", "--top_k", "2", "--max_retries", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OPENAI_API_KEY": ""})
    path = shard_path(out, 0, 1)
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if os.path.exists(path) and open(path, "rb").read().count(b"\n") >= lines_before_kill:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)


def test_resume_after_kill_9_gives_the_same_records(tmp_path):
    records = rewrite_records(60) + [make_record(100, cat="default")]
    records[5]["items"][0]["value"] += " [[error500]]"  # one failure in both runs
    inp = write_json(tmp_path / "in.json", records)
    with OpenAIFake(latency=0.03) as srv:
        reference = reformat(srv, inp, tmp_path / "ref", "--top_k", "2", "--max_retries", "0")
        _run_until_killed(srv, inp, tmp_path / "out", lines_before_kill=15)
        with open(shard_path(tmp_path / "out", 0, 1), "a") as f:
            f.write('{"id": 17, "items": [{"from": "hu')  # what a kill mid-write leaves
        resumed = reformat(srv, inp, tmp_path / "out", "--top_k", "2", "--max_retries", "0")
    assert reference.returncode == resumed.returncode == 1
    assert "already done" in resumed.stdout and " 0 already done" not in resumed.stdout
    ref_done, ref_failed = outputs(tmp_path / "ref")
    done, failed = outputs(tmp_path / "out")
    ids = [rec["id"] for rec in done]
    assert len(ids) == len(set(ids)) == 60
    assert sorted(done, key=lambda r: r["id"]) == sorted(ref_done, key=lambda r: r["id"])
    assert [f["id"] for f in failed] == [f["id"] for f in ref_failed] == [5]


def test_earlier_failures_are_retried_and_the_failures_file_shrinks(tmp_path):
    records = rewrite_records(3)
    inp = write_json(tmp_path / "in.json", records)
    with OpenAIFake(fail_first=3) as srv:  # the first attempt of each record fails, no retries
        first = reformat(srv, inp, tmp_path / "out", "--max_retries", "0")
        assert first.returncode == 1 and len(outputs(tmp_path / "out")[1]) == 3
        second = reformat(srv, inp, tmp_path / "out", "--max_retries", "0")
    assert second.returncode == 0, second.stderr
    done, failed = outputs(tmp_path / "out")
    assert sorted(rec["id"] for rec in done) == [0, 1, 2] and failed == []


def test_shards_split_the_input_contiguously(tmp_path):
    records = rewrite_records(10)
    inp = write_json(tmp_path / "in.json", records)
    seen = []
    with OpenAIFake() as srv:
        for i in range(3):
            r = reformat(srv, inp, tmp_path / "out", "--dataset_batch_id", i, "--dataset_batch_num", 3)
            assert r.returncode == 0, r.stderr
            done, _ = outputs(tmp_path / "out", i, 3)
            lo, hi = shard_bounds(10, i, 3)
            assert sorted(rec["id"] for rec in done) == list(range(lo, hi))
            seen += [rec["id"] for rec in done]
    assert sorted(seen) == list(range(10))


def test_output_from_another_input_is_refused(tmp_path):
    inp = write_json(tmp_path / "in.json", rewrite_records(2))
    other = write_json(tmp_path / "other.json", [make_record("x", cat="default")])
    with OpenAIFake() as srv:
        assert reformat(srv, other, tmp_path / "out").returncode == 0
        r = reformat(srv, inp, tmp_path / "out")
    assert r.returncode == 2 and "another dataset's run" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------- keys, dry run, bad input

def _assert_key_absent(r, folder):
    assert KEY not in r.stdout and KEY not in r.stderr
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        assert KEY not in open(os.path.join(folder, name), encoding="utf-8").read(), name


@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_rejected_key_stops_the_run_without_showing_the_key(tmp_path, how):
    inp = write_json(tmp_path / "in.json", rewrite_records(3))
    extra, env = (["--openai_key", KEY], None) if how == "flag" else ([], {"OPENAI_API_KEY": KEY})
    with OpenAIFake(api_key="the-right-key") as srv:  # 401 whose message echoes the key sent
        r = reformat(srv, inp, tmp_path / "out", *extra, env=env)
    assert r.returncode == 2
    errors = [x for x in r.stderr.strip().splitlines() if not x.startswith("warning: --openai_key is readable")]
    assert "401" in r.stderr and "Traceback" not in r.stderr and len(errors) == 1
    _assert_key_absent(r, tmp_path / "out")


def test_server_errors_echoing_the_key_are_scrubbed_from_failures(tmp_path):
    records = rewrite_records(2)
    records[0]["items"][0]["value"] += " [[error500]]"
    inp = write_json(tmp_path / "in.json", records)
    with OpenAIFake(api_key=KEY, echo_key=True) as srv:
        r = reformat(srv, inp, tmp_path / "out", "--max_retries", "0", env={"OPENAI_API_KEY": KEY})
    assert r.returncode == 1
    _, failed = outputs(tmp_path / "out")
    assert failed[0]["id"] == 0 and "500" in failed[0]["reason"]
    _assert_key_absent(r, tmp_path / "out")


def test_dry_run_sends_nothing_and_prices_the_run(tmp_path):
    records = rewrite_records(4) + [make_record(9, cat="roleplay"), make_record(8, cat=None)]
    inp = write_json(tmp_path / "in.json", records)
    with OpenAIFake() as srv:
        r = reformat(srv, inp, tmp_path / "out", "--dry_run", "--top_k", "2", "--price_in", "1", "--price_out", "2")
        count = srv.request_count
    assert r.returncode == 0, r.stderr
    assert count == 0 and not (tmp_path / "out").exists()
    assert "6 records, 4 to rewrite, 2 passed through" in r.stdout
    assert "math_puzzles" in r.stdout and "default (no category)" in r.stdout
    marks = {line.split()[1]: line.split(None, 2)[2].strip() for line in r.stdout.splitlines() if line.startswith("    ")}
    assert marks == {"math_puzzles": "rewritten", "roleplay": "passed through unchanged",
                     "default": "(no category)  passed through unchanged"}
    assert "estimated tokens" in r.stdout and "estimated cost: $" in r.stdout


def test_dry_run_after_a_partial_run_prices_only_what_is_left(tmp_path):
    inp = write_json(tmp_path / "in.json", rewrite_records(5))
    with OpenAIFake() as srv:
        assert reformat(srv, inp, tmp_path / "out", "--limit", "3").returncode == 0
        r = reformat(srv, inp, tmp_path / "out", "--dry_run")
    assert r.returncode == 0, r.stderr
    assert "2 records, 2 to rewrite, 0 passed through unchanged; 3 more already done" in r.stdout


@pytest.mark.parametrize("content, flags, message", [
    ('{"not": "a list"}', [], "expected a JSON list"),
    ("[{]", [], "not valid JSON"),
    ('[{"id": 1, "items": []}]', [], "record 0"),
    (None, ["--dataset_batch_id", "3", "--dataset_batch_num", "2"], "--dataset_batch_id"),
    (None, ["--top_k", "0"], "--top_k"),
    (None, ["--rpm", "-1"], "--rpm"),
    (None, ["--rpm", "0"], "--rpm"),
    (None, ["--tpm", "-5"], "--tpm"),
    (None, ["--temperature", "5"], "--temperature must be between 0 and 2, got 5"),
    (None, ["--top_p", "2"], "--top_p must be between 0 and 1, got 2"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, content, flags, message):
    inp = tmp_path / "in.json"
    if content is None:
        write_json(inp, rewrite_records(2))
    else:
        inp.write_text(content)
    with OpenAIFake() as srv:
        r = reformat(srv, inp, tmp_path / "out", *flags)
        count = srv.request_count
    assert r.returncode == 2
    assert message in r.stderr
    assert content is None or str(inp) in r.stderr  # data errors name the file
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert count == 0 and not (tmp_path / "out").exists()


def test_an_output_directory_that_cannot_be_created_exits_2(tmp_path):
    inp = write_json(tmp_path / "in.json", rewrite_records(1))
    (tmp_path / "file").write_text("")
    with OpenAIFake() as srv:
        r = reformat(srv, inp, tmp_path / "file" / "out")
        count = srv.request_count
    assert r.returncode == 2 and "--output_directory" in r.stderr and "Traceback" not in r.stderr
    assert count == 0


def test_no_key_and_no_base_url_is_a_usage_error(tmp_path):
    inp = write_json(tmp_path / "in.json", rewrite_records(1))
    r = run_script("reformat.py", "--input_data_path", inp, "--output_directory", tmp_path / "out",
                   env={"OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""})
    assert r.returncode == 2 and "OPENAI_API_KEY" in r.stderr


def test_the_fake_names_its_candidates_deterministically():
    assert revised_text("p", 2) == revised_text("p", 2) != revised_text("p", 1)


# ---------------------------------------------------------------- the vLLM backend, without vLLM

class _FakeVLLM:
    """Stands in for the `vllm` module: records each batch handed to LLM.generate."""

    batches = []

    class SamplingParams:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    class LLM:
        def __init__(self, model, **opts):
            self.model, self.opts = model, opts

        def get_tokenizer(self):
            class Tok:
                chat_template = "fake"

                def apply_chat_template(self, messages, tokenize, add_generation_prompt):
                    assert not tokenize and add_generation_prompt
                    return "".join(f"<|{m['role']}|>{m['content']}" for m in messages) + "<|assistant|>"
            return Tok()

        def generate(self, prompts, params, use_tqdm=False):
            _FakeVLLM.batches.append(list(prompts))
            if any("[[too long]]" in p for p in prompts):  # as vLLM does: one bad prompt fails the batch
                raise ValueError("The decoder prompt is longer than the maximum model length")

            class Out:
                def __init__(self, prompt, n):
                    finish = "length" if "[[cut]]" in prompt else "stop"  # CompletionOutput.finish_reason
                    asked = prompt.removesuffix("<|assistant|>").rsplit("|>", 1)[-1][-30:]  # no template token
                    self.outputs = [type("C", (), {"text": f"Revised response: {asked} {i}",
                                                   "finish_reason": finish})()
                                    for i in range(n)]
            return [Out(p, sp.n) for p, sp in zip(prompts, params)]


def test_vllm_backend_batches_requests_through_the_chat_template(monkeypatch):
    import asyncio

    from realign.llm.base import BackendConfig, Request, Sampling, make_backend
    from realign.llm.runner import run_all
    from realign.rewrite import make_check

    monkeypatch.setitem(sys.modules, "vllm", _FakeVLLM)
    _FakeVLLM.batches = []
    backend = make_backend("vllm", BackendConfig(model="/models/some-model", options={"tensor_parallel_size": 1}))
    assert backend.llm.model == "/models/some-model" and backend.llm.opts == {"tensor_parallel_size": 1}
    requests = [Request(key=i, messages=[{"role": "user", "content": f"question {i}"}], sampling=Sampling(n=2))
                for i in range(40)]
    done = []
    stats = asyncio.run(run_all(backend, requests, done.append, check=make_check(len)))
    assert stats.failed == 0 and sorted(o.request.key for o in done) == list(range(40))
    assert all(o.result[0] == "rewrite" and len(o.result[2]) == 2 for o in done)
    assert sum(map(len, _FakeVLLM.batches)) == 40 and len(_FakeVLLM.batches) < 5  # batched, not one by one
    assert _FakeVLLM.batches[0][0].startswith("<|user|>question") and _FakeVLLM.batches[0][0].endswith("<|assistant|>")


def test_vllm_a_cut_at_max_tokens_is_not_used(monkeypatch):
    import asyncio

    from realign.llm.base import BackendConfig, Request, make_backend
    from realign.llm.runner import run_all
    from realign.limits import RetryPolicy
    from realign.rewrite import make_check

    monkeypatch.setitem(sys.modules, "vllm", _FakeVLLM)
    backend = make_backend("vllm", BackendConfig(model="m"))
    requests = [Request(key=i, messages=[{"role": "user", "content": f"q {i}" + (" [[cut]]" if i == 1 else "")}])
                for i in range(3)]
    done = []
    asyncio.run(run_all(backend, requests, done.append, check=make_check(len, max_tokens=77),
                        policy=RetryPolicy(max_retries=5, base=0.01)))
    by_key = {o.request.key: o for o in done}
    assert by_key[0].ok and by_key[2].ok
    assert by_key[1].error == "truncated at --target_length 77 (after 2 attempts)"


def test_vllm_a_prompt_the_engine_refuses_fails_alone(monkeypatch):
    import asyncio

    from realign.llm.base import BackendConfig, Request, make_backend
    from realign.llm.runner import run_all

    monkeypatch.setitem(sys.modules, "vllm", _FakeVLLM)
    _FakeVLLM.batches = []
    backend = make_backend("vllm", BackendConfig(model="m"))
    bad = {3, 17}
    requests = [Request(key=i, messages=[{"role": "user", "content": f"q {i}" + (" [[too long]]" if i in bad else "")}])
                for i in range(32)]
    done = []
    asyncio.run(run_all(backend, requests, done.append))
    assert sorted(o.request.key for o in done) == list(range(32))
    assert {o.request.key for o in done if not o.ok} == bad
    assert all("longer than the maximum model length" in o.error for o in done if not o.ok)


def test_vllm_backend_without_vllm_is_a_usage_error(tmp_path, monkeypatch):
    from realign.errors import UsageError
    from realign.llm.base import BackendConfig, make_backend

    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(UsageError, match="vllm"):
        make_backend("vllm", BackendConfig(model="m"))


def test_a_fatal_error_stops_the_runner():
    import asyncio

    from realign.llm.base import BackendConfig, BackendError, Request, make_backend
    from realign.llm.runner import run_all

    async def go(url):
        backend = make_backend("openai", BackendConfig(model="m", base_url=url, api_key="wrong-key"))
        try:
            await run_all(backend, [Request(key=i, messages=[{"role": "user", "content": "x"}]) for i in range(50)],
                          lambda o: None, concurrency=4)
        finally:
            await backend.aclose()

    with OpenAIFake(api_key="right-key") as srv:
        with pytest.raises(BackendError) as err:
            asyncio.run(go(f"{srv.url}/v1"))
        assert srv.request_count < 50
    assert err.value.fatal and err.value.status == 401


def test_runner_raw_prompts_and_client_rpm_cap():
    """A raw prompt goes to /v1/completions (the classifier's path); --rpm spaces the sends."""
    import asyncio

    from realign.llm.base import BackendConfig, Request, Sampling, make_backend
    from realign.llm.runner import run_all

    async def go(url):
        backend = make_backend("openai", BackendConfig(model="m", base_url=url))
        done = []
        try:
            await run_all(backend, [Request(key=i, prompt=f"Task name for query {i}:", sampling=Sampling(n=2))
                                    for i in range(6)], done.append, concurrency=8, rpm=120)
        finally:
            await backend.aclose()
        return done

    with OpenAIFake() as srv:
        done = asyncio.run(go(f"{srv.url}/v1"))
        paths = {r["path"] for r in srv.requests}
        times = sorted(r["t"] for r in srv.requests)
    assert paths == {"/v1/completions"}
    assert sorted(o.request.key for o in done) == list(range(6)) and all(len(o.result) == 2 for o in done)
    assert times[5] - times[2] >= 1.3  # 120 rpm, burst 2: after the burst, one send every 0.5 s


# ---------------------------------------------------------------- reading replies (tests/fixtures/cases)

CASES = ROOT / "tests" / "fixtures" / "cases"
EGG_Q, EGG_A = "How do I boil an egg?", "Boil the egg for about nine minutes, then cool it in cold water and peel it."
EGG_LIST = "1. Put the egg in boiling water for about nine minutes.\n2. Then cool it in cold water and peel it."


def case(name):
    return json.loads((CASES / name).read_text())


@pytest.mark.parametrize("name, revised, failure", [
    ("reply_think.json", EGG_LIST, None),            # the draft inside <think> is not the answer
    ("reply_fence.json", EGG_LIST, None),            # unwrapped, not "adds code"
    ("reply_truncate.json", None, "truncated at --target_length 300 (after 2 attempts)"),
    ("reply_refuse_label.json", None, "the model refused: \"I'm sorry, but I can't help with that request.\" (after 2 attempts)"),
])
def test_recorded_replies_are_read_strictly(tmp_path, name, revised, failure):
    inp = write_json(tmp_path / "in.json", [make_record(1, EGG_Q, EGG_A, "how_to_generation")])
    with OpenAIFake(replay=case(name)) as srv:
        r = reformat(srv, inp, tmp_path / "out", "--target_length", "300", "--max_retries", "5")
        sent = srv.request_count
    done, failed = outputs(tmp_path / "out")
    if revised:
        assert r.returncode == 0, r.stderr
        assert done[0]["items"][1]["revised_response"] == revised and failed == [] and sent == 1
    else:
        assert r.returncode == 1 and done == []
        assert [(f["id"], f["reason"]) for f in failed] == [(1, failure)]
        assert sent == 2  # a repeatable fault: one more try, not five


def test_a_truncation_at_temperature_0_is_not_retried(tmp_path):
    inp = write_json(tmp_path / "in.json", [make_record(1, EGG_Q, EGG_A, "how_to_generation")])
    with OpenAIFake(replay=case("reply_truncate.json")) as srv:
        r = reformat(srv, inp, tmp_path / "out", "--temperature", "0", "--target_length", "64")
        sent = srv.request_count
    assert r.returncode == 1 and sent == 1
    assert [f["reason"] for f in outputs(tmp_path / "out")[1]] == ["truncated at --target_length 64"]
    assert "1 of them were cut at --target_length 64: rerun with a larger --target_length" in r.stdout


def test_at_temperature_0_a_reply_that_failed_a_check_is_not_retried(tmp_path):
    """The same prompt gives the same reply: a retry can only fail the same way, and costs a call."""
    records = rewrite_records(3)
    records[1]["items"][0]["value"] += " [[malformed]]"
    inp = write_json(tmp_path / "in.json", records)
    with OpenAIFake() as srv:
        r = reformat(srv, inp, tmp_path / "out", "--temperature", "0", "--max_retries", "5")
        sent = srv.request_count
    assert r.returncode == 1 and sent == 3
    assert [(f["id"], "Revised response" in f["reason"]) for f in outputs(tmp_path / "out")[1]] == [(1, True)]


def test_a_reply_that_loops_until_the_limit_does_not_ask_for_a_larger_limit(tmp_path):
    looping = json.loads(json.dumps(case("reply_truncate.json")))
    looping["body"]["choices"][0]["message"]["content"] = (
        "Reasoning: a numbered list.\n\nRevised response: 1. Put the egg in boiling water.\n"
        + "2. Then cool it in cold water and peel it.\n" * 80)
    inp = write_json(tmp_path / "in.json", [make_record(1, EGG_Q, EGG_A, "how_to_generation")])
    with OpenAIFake(replay=looping) as srv:
        r = reformat(srv, inp, tmp_path / "out", "--temperature", "0", "--target_length", "512")
        sent = srv.request_count
    assert r.returncode == 1 and sent == 1
    reason = outputs(tmp_path / "out")[1][0]["reason"]
    assert reason == "truncated at --target_length 512: the reply repeats itself, a larger limit only makes it longer"
    assert "1 of them repeated themselves until --target_length 512: a larger limit cannot help" in r.stdout
    assert "rerun with a larger --target_length" not in r.stdout


def test_a_loop_is_told_from_long_lists_and_tables():
    from realign.textchecks import repeats_itself

    table = "| day | task | hours |\n|---|---|---|\n" + "".join(f"| day {i} | chapter {i} of the book | {i % 5 + 1} |\n"
                                                                for i in range(60))
    steps = "".join(f"{i}. Add {i * 3} grams of flour and stir for {i} minutes.\n" for i in range(1, 40))
    assert not repeats_itself(table) and not repeats_itself(steps) and not repeats_itself(EGG_LIST * 3)
    assert repeats_itself("Intro.\n" + "The sea is blue because the sky is blue. " * 50)


def test_empty_originals_are_not_sent_and_counted(tmp_path):
    from realign.convert import convert_records

    records, _ = convert_records(case("alpaca_empty_output.json"), "alpaca_empty_output.json")
    for rec in records:
        rec["items"][0]["category"] = "how_to_generation"
    inp = write_json(tmp_path / "in.json", records)
    with OpenAIFake(faithful=True) as srv:
        plan = reformat(srv, inp, tmp_path / "plan", "--dry_run")
        r = reformat(srv, inp, tmp_path / "out")
        sent = bodies(srv)
    assert "3 records, 1 to rewrite, 2 passed through unchanged (2 with an empty original)" in plan.stdout
    assert r.returncode == 0, r.stderr
    assert len(sent) == 1 and "cold brew" in sent[0]["messages"][-1]["content"]
    done, failed = outputs(tmp_path / "out")
    by_id = {rec["id"]: rec for rec in done}
    assert failed == [] and len(done) == 3
    for rec in records[:2]:  # unchanged but for the reason
        assert by_id[rec["id"]]["items"][1] == {**rec["items"][1], "kept_original": "empty original",
                                                "input_hash": input_hash(rec)}
    assert "2 empty original" in r.stdout and "1 rewritten" in r.stdout
    merged = tmp_path / "merged.json"
    m = run_script("parallel_data_merge.py", "--input_data_path", inp, "--output_directory", tmp_path / "out",
                   "--final_output_path", merged)
    assert m.returncode == 0, m.stderr
    assert "2 passed through (2 empty original)" in m.stdout
    assert [rec["items"][1]["value"] for rec in json.loads(merged.read_text())[:2]] == ["", "   "]


def test_the_valve_keeps_the_original_and_counts_per_task(tmp_path):
    records = [make_record(1, "Write a poem about rain [[keep]]", "Rain on the roof.", "planning"),
               make_record(2, "Plan my week [[keep]]", "Study. Rest.", "planning"),
               make_record(3, "Tell me a joke [[keep]]", "Why did the egg cross?", "recommendations"),
               make_record(4, "Plan a trip", "Pack a bag. Book a train.", "planning")]
    inp = write_json(tmp_path / "in.json", records)
    with OpenAIFake(faithful=True) as srv:
        r = reformat(srv, inp, tmp_path / "out", "--top_k", "2")
        again = reformat(srv, inp, tmp_path / "out")  # a rerun: all four are done, none is asked again
        sent = srv.request_count
    assert r.returncode == 0, r.stderr
    assert "4 already done" in again.stdout and sent == 4
    done, failed = outputs(tmp_path / "out")
    by_id = {rec["id"]: rec for rec in done}
    assert failed == [] and len(done) == 4
    for rec in records[:3]:
        assert by_id[rec["id"]]["items"][1] == {**rec["items"][1], "kept_original": "format does not fit",
                                                "input_hash": input_hash(rec)}
    assert by_id[4]["items"][1]["revised_response"] == "- Pack a bag.\n- Book a train."
    assert "3 format does not fit" in r.stdout
    assert "format does not fit:      2  planning" in r.stdout and "format does not fit:      1  recommendations" in r.stdout
    merged = tmp_path / "merged.json"
    m = run_script("parallel_data_merge.py", "--input_data_path", inp, "--output_directory", tmp_path / "out",
                   "--final_output_path", merged)
    assert m.returncode == 0 and "1 rewritten, 3 passed through (3 format does not fit), 0 failed" in m.stdout
    for rec, got in zip(records[:3], json.loads(merged.read_text())):  # originals, accounted once, saying why
        assert got["items"][1] == {**rec["items"][1], "kept_original": "format does not fit",
                                   "input_hash": input_hash(rec)}


def test_the_valve_needs_as_many_votes_as_the_rewrites():
    from realign.llm.base import Completion, Unusable
    from realign.rewrite import KEEP, REWRITE, make_check

    check = make_check(len, original_of=lambda request: "Rest. Study.", max_tokens=99)
    ok, keep = Completion("Revised response: - Rest.\n- Study."), Completion("KEEP ORIGINAL")
    cut, refused = Completion("Revised response: - Re", "length"), Completion("", "stop", "I can't do that.")
    assert check([ok, keep], None)[0] == KEEP and check([keep, cut], None)[0] == KEEP
    assert check([ok, ok, keep], None)[:2] == (REWRITE, "- Rest.\n- Study.")
    assert check([cut, ok], None)[0] == REWRITE  # a cut candidate is dropped, the other one is used
    with pytest.raises(Unusable) as err:
        check([cut, cut], None)
    assert str(err.value) == "truncated at --target_length 99 (all 2 candidates)" and err.value.retries == 1
    with pytest.raises(Unusable) as err:
        check([cut, refused], None)
    assert "truncated" in str(err.value) and "refused: \"I can't do that.\"" in str(err.value)
    with pytest.raises(Unusable) as err:
        check([cut, Completion("no label")], None)
    assert err.value.retries is None  # an ordinary bad reply: the usual --max_retries
