"""Endpoints that no retry fixes, provider quirks, pacing by the server, one writer per shard (issue 13).

Every case runs the real script against a real local server (tests/servers/) that behaves like the
misconfigured or quirky endpoint: a closed port, an HTML login page, a mistyped scheme, 401/404,
a spent quota, a 400 every record gets, a server that never answers, Gemma's "System role not
supported", Azure OpenAI's deployment routes, x-ratelimit headers.
"""

import json
import socket
import time

import pytest

from conftest import make_record, run_script, write_json
from realign.shards import failures_path, shard_path
from tests.servers.openai_fake import OpenAIFake

KEY = "sk-fake-ENDPOINT-0c9d8e7f6a5b4c3d"


def records(n, prefix="q"):
    return [make_record(i, q=f"{prefix} {i}", a=f"answer {i}", cat="math_puzzles") for i in range(n)]


def reformat(base_url, inp, out, *extra, env=None, timeout=60):
    args = ["--input_data_path", inp, "--output_directory", out, "--base_url", base_url, "--quiet", *extra]
    return run_script("reformat.py", *args, env={"OPENAI_API_KEY": "", **(env or {})}, timeout=timeout)


def lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(x) for x in f if x.strip()]
    except FileNotFoundError:
        return []


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_refused(r, *needles, elapsed=None):
    """Exit 2, one line on stderr naming the endpoint and saying what is wrong, no traceback."""
    err = "\n".join(x for x in r.stderr.strip().splitlines() if "%|" not in x)  # retrieval.py's progress bar
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], err[-2000:])
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    assert KEY not in r.stdout + r.stderr
    if elapsed is not None:
        assert elapsed < 15, elapsed


# ---------------------------------------------------------------- fail fast at the start of a run

def test_a_closed_port_stops_500_records_within_seconds(tmp_path):
    inp = write_json(tmp_path / "in.json", records(500))
    port = closed_port()
    t0 = time.monotonic()
    r = reformat(f"http://127.0.0.1:{port}/v1", inp, tmp_path / "out", env={"OPENAI_API_KEY": KEY})
    assert_refused(r, f"http://127.0.0.1:{port}/v1/chat/completions", "connection refused", "is the server running",
                   elapsed=time.monotonic() - t0)
    assert lines(shard_path(tmp_path / "out", 0, 1)) == []


def test_a_mistyped_scheme_is_named(tmp_path):
    inp = write_json(tmp_path / "in.json", records(50))
    r = reformat(f"htp://127.0.0.1:{closed_port()}/v1", inp, tmp_path / "out")
    assert_refused(r, "htp://127.0.0.1:", "bad URL", "http:// or https://")


def test_an_html_login_page_is_not_an_api(tmp_path):
    inp = write_json(tmp_path / "in.json", records(200))
    with OpenAIFake(html=True) as srv:
        t0 = time.monotonic()
        r = reformat(srv.url, inp, tmp_path / "out")
        elapsed = time.monotonic() - t0
        sent = srv.request_count
    assert_refused(r, f"{srv.url}/chat/completions", "HTML page", "Sign in - Example Portal", "/v1", elapsed=elapsed)
    assert sent <= 32 * 2


@pytest.mark.parametrize("refuse, needles", [
    ((404, "The model `gpt-5-typo` does not exist or you do not have access to it."), ["HTTP 404", "gpt-5-typo"]),
    ((429, "You exceeded your current quota, please check your plan and billing details.", "insufficient_quota"),
     ["HTTP 429", "exceeded your current quota", "quota is spent"]),
    ((400, "Chat completions are not enabled for the deployment 'ocr-only'."), ["HTTP 400", "not enabled"]),
])
def test_what_every_record_would_get_stops_the_run_with_the_servers_message(tmp_path, refuse, needles):
    inp = write_json(tmp_path / "in.json", records(300))
    with OpenAIFake(refuse=refuse) as srv:
        t0 = time.monotonic()
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out", "--concurrency", "8", env={"OPENAI_API_KEY": KEY})
        elapsed = time.monotonic() - t0
        sent = srv.request_count
    assert_refused(r, f"{srv.url}/v1/chat/completions", *needles, elapsed=elapsed)
    assert sent <= 2 * 8  # the first wave, no retries: 240 requests in 27 s before
    assert lines(shard_path(tmp_path / "out", 0, 1)) == []


def test_a_chat_model_on_the_completions_route_suggests_chat(tmp_path):
    inp = write_json(tmp_path / "in.json", [{"id": i, "items": [{"from": "human", "value": f"q {i}"},
                                                                {"from": "gpt", "value": "a"}]} for i in range(40)])
    message = ("This is a chat model and not supported in the v1/completions endpoint. "
               "Did you mean to use v1/chat/completions?")
    with OpenAIFake(refuse=(404, message)) as srv:
        r = run_script("classify.py", "--input_data_path", inp, "--output_path", tmp_path / "out.json",
                       "--backend", "openai", "--model", "gpt-4o-mini", "--llm_prompt", "spec", "--base_url",
                       f"{srv.url}/v1", "--quiet", env={"OPENAI_API_KEY": KEY}, timeout=60)
    assert_refused(r, f"{srv.url}/v1/completions", "This is a chat model", "try --chat")
    assert not (tmp_path / "out.json").exists()


def test_a_server_that_never_answers_stops_after_the_first_timeouts(tmp_path):
    inp = write_json(tmp_path / "in.json", records(100))
    with OpenAIFake(hang_all=True, max_seconds=60) as srv:
        t0 = time.monotonic()
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out", "--request_timeout", "1", timeout=60)
        elapsed = time.monotonic() - t0
    assert_refused(r, "timed out after 1 s", "does not answer", "--request_timeout", elapsed=elapsed)


# ---------------------------------------------------------------- the circuit breaker later in a run

def test_a_key_revoked_mid_run_trips_the_breaker_and_a_rerun_resumes(tmp_path):
    inp = write_json(tmp_path / "in.json", records(200))
    out = tmp_path / "out"
    with OpenAIFake(refuse=(401, "Incorrect API key provided."), refuse_after=30) as srv:
        r = reformat(f"{srv.url}/v1", inp, out, "--concurrency", "4", env={"OPENAI_API_KEY": KEY})
        sent = srv.request_count
    assert r.returncode == 1, r.stderr
    assert "stopped early" in r.stderr and "requests in a row failed" in r.stderr and "HTTP 401" in r.stderr
    assert "rerun" in r.stderr and KEY not in r.stdout + r.stderr
    done, failed = lines(shard_path(out, 0, 1)), lines(failures_path(out, 0, 1))
    assert len(done) == 30 and sent < 30 + 20                   # stopped within a few requests of the cause
    assert sorted([x["id"] for x in done] + [x["id"] for x in failed]) == list(range(200))
    assert any(f["reason"].startswith("not sent: the run stopped") for f in failed)
    with OpenAIFake() as srv:                                   # fixed: the same command resumes
        r = reformat(f"{srv.url}/v1", inp, out, env={"OPENAI_API_KEY": KEY})
        assert r.returncode == 0, r.stderr and srv.request_count == 170
    assert sorted(x["id"] for x in lines(shard_path(out, 0, 1))) == list(range(200))


# ---------------------------------------------------------------- provider quirks

def test_a_model_without_a_system_role_gets_it_folded_into_the_user_turn(tmp_path):
    inp = write_json(tmp_path / "in.json", records(40))
    with OpenAIFake(no_system_role=True) as srv:
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out", "--concurrency", "4")
        statuses = dict(srv.status_counts)
        later = [json.loads(x["body"]) for x in srv.requests[-10:]]
    assert r.returncode == 0, r.stderr
    assert len(lines(shard_path(tmp_path / "out", 0, 1))) == 40
    assert statuses.get(400, 0) <= 4 and statuses[200] == 40     # refused once per request in flight, then folded
    for body in later:
        assert [m["role"] for m in body["messages"]] == ["user"]
        assert "Revised response" in body["messages"][0]["content"]  # the system text leads the user turn


def test_azure_openai_deployment_route_api_version_and_key_header(tmp_path):
    inp = write_json(tmp_path / "in.json", records(10))
    env = {"AZURE_OPENAI_API_KEY": KEY}
    with OpenAIFake(azure=True, api_key=KEY, deployment="gpt-4o-dep") as srv:
        r = reformat(srv.url, inp, tmp_path / "out", "--api_type", "azure", "--api_version", "2024-10-21",
                     "--model", "gpt-4o-dep", env=env)
        paths = {x["path"] for x in srv.requests}
        sent_keys = {x["headers"].get("api-key") for x in srv.requests}
    assert r.returncode == 0, r.stderr
    assert paths == {"/openai/deployments/gpt-4o-dep/chat/completions?api-version=2024-10-21"}
    assert sent_keys == {KEY} and KEY not in r.stdout + r.stderr
    assert len(lines(shard_path(tmp_path / "out", 0, 1))) == 10
    with OpenAIFake(azure=True, api_key=KEY) as srv:
        r = reformat(srv.url, inp, tmp_path / "out2", "--api_type", "azure", "--model", "no-such-dep", env=env)
    assert_refused(r, "/openai/deployments/no-such-dep/chat/completions", "deployment for this resource does not exist")
    r = reformat("https://x.openai.azure.com", inp, tmp_path / "out3", "--api_type", "azure")
    assert_refused(r, "AZURE_OPENAI_API_KEY")


def test_the_summary_counts_the_calls_really_made_when_n_is_refused(tmp_path):
    inp = write_json(tmp_path / "in.json", records(6))
    with OpenAIFake(refuse_n=True) as srv:
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out", "--top_k", "3", "--concurrency", "1")
        calls = srv.request_count
    assert r.returncode == 0, r.stderr
    assert f"{calls} requests" in r.stdout and calls == 6 * 3 + 1  # one refused n=3, then one choice per call


# ---------------------------------------------------------------- pace by the server

def test_x_ratelimit_headers_pace_the_run_from_the_first_answer(tmp_path):
    inp = write_json(tmp_path / "in.json", records(300))
    with OpenAIFake(rpm_cap=3000, ratelimit_headers=True, latency=0.2) as srv:  # 50/s, a burst of 50
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out", "--concurrency", "64")
        statuses = dict(srv.status_counts)
    assert r.returncode == 0, r.stderr
    assert statuses[200] == 300 and statuses.get(429, 0) <= 32  # 64 in flight want 320/s: paced to 50/s


# ---------------------------------------------------------------- retrieval.py's Serper client

def serper_run(url, tmp_path, n=120, *extra):
    recs = [{"id": i, "items": [{"from": "human", "value": f"who wrote book {i}?", "category": "open_qa"},
                                {"from": "gpt", "value": "someone"}]} for i in range(n)]
    inp = write_json(tmp_path / "in.json", recs)
    out = tmp_path / "out.json"
    r = run_script("retrieval.py", "--input_data_path", inp, "--output_path", out, "--serper_url", url, *extra,
                   env={"SERPER_API_KEY": "test-serper-key"}, timeout=60)
    return r, out


@pytest.mark.parametrize("kind", ["closed", "html", "404"])
def test_a_misconfigured_serper_url_stops_retrieval_within_seconds(tmp_path, kind):
    from tests.servers.serper_fake import SerperFake
    t0 = time.monotonic()
    if kind == "closed":
        url = f"http://127.0.0.1:{closed_port()}/search"
        r, out = serper_run(url, tmp_path)
        needles = [url, "connection refused"]
    else:
        with SerperFake(html=kind == "html") as srv:
            url = srv.url + ("/search" if kind == "html" else "/serach")
            r, out = serper_run(url, tmp_path)
        needles = [url, "HTML page" if kind == "html" else "HTTP 404: not found", "--serper_url"]
    assert_refused(r, *needles, elapsed=time.monotonic() - t0)
    assert not out.exists()


def test_serper_refusing_mid_run_trips_the_breaker_and_keeps_what_was_found(tmp_path):
    from tests.servers.serper_fake import SerperFake
    with SerperFake(refuse=(400, "Query quota exceeded for this key"), refuse_after=40) as srv:
        r, out = serper_run(srv.url + "/search", tmp_path, 200, "--batch_size", "20")
        sent = srv.request_count
    assert r.returncode == 1, r.stderr
    assert "stopped early" in r.stderr and "Query quota exceeded" in r.stderr
    assert sent < 40 + 20 + 10                      # the batch in flight, then nothing
    with_evidence = [x for x in json.load(open(out)) if x["items"][0].get("evidence")]
    assert len(with_evidence) == 40


# ---------------------------------------------------------------- one writer per shard

def test_a_second_process_on_the_same_shard_exits_2_naming_the_first(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT
    inp = write_json(tmp_path / "in.json", records(40))
    out = tmp_path / "out"
    with OpenAIFake(latency=0.3) as srv:
        args = [sys.executable, str(ROOT / "reformat.py"), "--input_data_path", str(inp), "--output_directory",
                str(out), "--base_url", f"{srv.url}/v1", "--quiet", "--concurrency", "2"]
        first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            lock = shard_path(out, 0, 1) + ".lock"
            deadline = time.monotonic() + 30
            while not lines(shard_path(out, 0, 1)) and time.monotonic() < deadline:
                time.sleep(0.1)  # the first one is writing
            second = reformat(f"{srv.url}/v1", inp, out, timeout=30)
            assert_refused(second, "another reformat.py is writing this shard", f"pid {first.pid}", lock)
            first.kill()  # kill -9: its lock file stays behind, the kernel drops the lock itself
            first.wait(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
        assert open(lock).read().startswith(f"{first.pid} ")
        third = reformat(f"{srv.url}/v1", inp, out, timeout=60)  # takes the stale lock over and resumes
    assert third.returncode == 0, third.stderr
    ids = [x["id"] for x in lines(shard_path(out, 0, 1))]
    assert sorted(ids) == list(range(40))  # each id once: no second writer
    assert not (out / "rewrite_data_0_of_1_batch.jsonl.lock").exists()


def test_merge_of_a_shard_written_twice_says_how_to_repair_it(tmp_path):
    inp = write_json(tmp_path / "in.json", records(5))
    out = tmp_path / "out"
    with OpenAIFake() as srv:
        assert reformat(f"{srv.url}/v1", inp, out).returncode == 0
    path = shard_path(out, 0, 1)
    first = open(path).read()
    with open(path, "a") as f:  # what two writers on one shard left before shard locks
        f.write(first)
    final = tmp_path / "final.json"
    r = run_script("parallel_data_merge.py", "--input_data_path", inp, "--output_directory", out,
                   "--final_output_path", final)
    assert_refused(r, "5 ids appear more than once", "--keep_first")
    r = run_script("parallel_data_merge.py", "--input_data_path", inp, "--output_directory", out,
                   "--final_output_path", final, "--keep_first")
    assert r.returncode == 0 and "5 rewritten" in r.stdout and "5 duplicate lines dropped" in r.stdout
    assert len(json.load(open(final))) == 5
