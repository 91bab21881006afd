"""The endpoints people really have (issue 20): reasoning models, gateways, local servers, content
parts, streaming, per-record refusals, 200-with-error, keys; and the breaker for a server where
nothing succeeds (issue 24 #4).

Every case runs the real reformat.py (or classify.py) with default flags against a real local
server (tests/servers/openai_fake.py) that behaves like one class of server; no client is patched.
"""

import json
import time
from pathlib import Path

import pytest

from conftest import make_record, run_script, write_json
from realign.endpoint import Breaker, EndpointError
from realign.shards import failures_path, shard_path
from tests.servers.openai_fake import SERVER_CLASSES, OpenAIFake

KEY = "sk-fake-SERVERS-7d6c5b4a3f2e1d0c"
CASES = Path(__file__).resolve().parent.parent.parent / "shared" / "cases"


def records(n, prefix="q", cat="math_puzzles"):
    return [make_record(i, q=f"{prefix} {i}", a=f"The answer is {i}. It follows from the rule.", cat=cat)
            for i in range(n)]


def reformat(url, inp, out, *extra, env=None, timeout=120):
    args = ["--input_data_path", inp, "--output_directory", out, "--base_url", url, "--quiet", *extra]
    return run_script("reformat.py", *args, env={"OPENAI_API_KEY": "", **(env or {})}, timeout=timeout)


def lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(x) for x in f if x.strip()]
    except FileNotFoundError:
        return []


def outputs(out):
    return lines(shard_path(out, 0, 1)), lines(failures_path(out, 0, 1))


def bodies(srv):
    return [json.loads(r["body"]) for r in srv.requests if r["method"] == "POST"]


def rewritten(done):
    return [rec for rec in done if "revised_response" in rec["items"][1]]


def stderr_lines(r):
    return [x for x in r.stderr.strip().splitlines() if x.strip()]


# ---------------------------------------------------------------- 1. the request fits the model

@pytest.mark.parametrize("server_class", sorted(SERVER_CLASSES))
def test_every_server_class_gets_every_record_rewritten_with_default_flags(tmp_path, server_class):
    inp = write_json(tmp_path / "in.json", records(12))
    with OpenAIFake(faithful=True, **SERVER_CLASSES[server_class]) as srv:
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out", "--model", "my-deployment")
        sent = srv.request_count
    assert r.returncode == 0, (r.stdout, r.stderr)
    done, failed = outputs(tmp_path / "out")
    assert len(rewritten(done)) == 12 and failed == []
    for rec in done:
        assert "DRAFT-NOT-FINAL" not in rec["items"][1]["revised_response"]  # a thinking part is never the answer
    assert sent <= 12 + 2 * 32  # at most a refused first wave per change learned


def test_a_reasoning_model_is_learned_from_its_400s_once_and_said_so(tmp_path):
    """o1/o3/gpt-5 under a name no table knows (an Azure deployment, a gateway alias): max_tokens
    and the temperature are refused; both are learned from the first refusals, once for the run."""
    inp = write_json(tmp_path / "in.json", records(40))
    with OpenAIFake(reasoning=True) as srv:
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out", "--model", "prod-reasoner", "--concurrency", "4")
        statuses, sent = dict(srv.status_counts), bodies(srv)
    assert r.returncode == 0, r.stderr
    assert len(rewritten(outputs(tmp_path / "out")[0])) == 40
    assert statuses[200] == 40 and statuses.get(400, 0) <= 2 * 4
    last = sent[-1]
    assert "max_tokens" not in last and last["max_completion_tokens"] == 4096 and "temperature" not in last
    assert last["stream"] is False and "top_p" not in last and "n" not in last
    notes = [x for x in r.stdout.splitlines() if x.startswith("adapted to the server")]
    assert len(notes) == 2, r.stdout  # said once each, not per request
    assert "max_tokens sent as max_completion_tokens" in notes[0] + notes[1]
    assert "temperature left to the server's default" in notes[0] + notes[1]


def test_a_known_reasoning_family_costs_no_refused_request(tmp_path):
    inp = write_json(tmp_path / "in.json", records(10))
    with OpenAIFake(reasoning=True) as srv:
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out", "--model", "gpt-5-mini")
        statuses = dict(srv.status_counts)
    assert r.returncode == 0, r.stderr
    assert statuses == {200: 10}
    assert "adapted to the server: gpt-5-mini: token limit sent as max_completion_tokens" in r.stdout


def test_a_gateway_refusing_temperature_with_top_p_keeps_the_temperature(tmp_path):
    inp = write_json(tmp_path / "in.json", records(20))
    with OpenAIFake(exclusive_sampling=True) as srv:
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out", "--model", "bedrock/claude-via-alias",
                     "--top_p", "0.9", "--concurrency", "2")
        statuses, last = dict(srv.status_counts), bodies(srv)[-1]
    assert r.returncode == 0, r.stderr
    assert statuses[200] == 20 and statuses.get(400, 0) <= 2
    assert last["temperature"] == 0.3 and "top_p" not in last
    assert "top_p left out beside temperature" in r.stdout


def test_top_p_is_not_sent_unless_set_and_stream_false_always_is(tmp_path):
    inp = write_json(tmp_path / "in.json", records(3))
    with OpenAIFake() as srv:
        assert reformat(f"{srv.url}/v1", inp, tmp_path / "out").returncode == 0
        sent = bodies(srv)
    assert all("top_p" not in b and "n" not in b and b["stream"] is False and b["max_tokens"] == 4096 for b in sent)


def test_a_server_that_streams_anyway_is_read_from_its_events(tmp_path):
    inp = write_json(tmp_path / "in.json", records(5))
    with OpenAIFake(stream="always", faithful=True, content_parts=True) as srv:
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out", "--top_k", "2")
    assert r.returncode == 0, r.stderr
    done, _ = outputs(tmp_path / "out")
    assert len(rewritten(done)) == 5
    assert all(rec["items"][1]["revised_response"].startswith("- The answer is") for rec in done)


# ---------------------------------------------------------------- 2. replies as servers send them

def test_a_200_carrying_an_error_names_the_providers_message(tmp_path):
    inp = write_json(tmp_path / "in.json", records(30))
    with OpenAIFake(error_200=("invalid_model", "'my-model' is not a valid model ID")) as srv:
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out", "--model", "my-model")
    assert r.returncode == 2 and len(stderr_lines(r)) == 1, r.stderr
    assert "HTTP 200 carrying an error: 'my-model' is not a valid model ID" in r.stderr
    recs = records(6)
    recs[2]["items"][0]["value"] += " [[error200]]"  # an upstream provider failing for this one, code 502
    inp = write_json(tmp_path / "in2.json", recs)
    with OpenAIFake() as srv:
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out2", "--max_retries", "1")
    assert r.returncode == 1
    done, failed = outputs(tmp_path / "out2")
    assert len(done) == 5 and [f["id"] for f in failed] == [2]
    assert failed[0]["reason"] == "HTTP 200 carrying an error: Provider returned error (code 502) (after 2 attempts)"


def test_no_template_token_filtered_or_cut_reply_reaches_the_final_data(tmp_path):
    """Trailing end tokens are stripped; a reply running into a new turn, one cut by a content
    filter and one cut at the token limit in Gemini's upper case are not used (and the filtered
    one is not retried five times)."""
    tags = {0: "[[im_end]]", 1: "[[run_on]]", 2: "[[content_filter]]", 3: "[[truncate]]"}
    recs = records(6)
    for i, tag in tags.items():
        recs[i]["items"][0]["value"] += f" {tag}"
    inp = write_json(tmp_path / "in.json", recs)
    out = tmp_path / "out"
    with OpenAIFake(faithful=True, upper_finish=True) as srv:
        r = reformat(f"{srv.url}/v1", inp, out)
        asked = [prompt for prompt in map(json.dumps, bodies(srv))]
    assert r.returncode == 1, r.stderr
    done, failed = outputs(out)
    reasons = {f["id"]: f["reason"] for f in failed}
    assert reasons[1].startswith("the reply holds the chat-template token '<|im_end|>' (the model ran past its turn)")
    assert reasons[2] == "cut by the provider's content filter (finish_reason content_filter) (after 2 attempts)"
    assert reasons[3] == "truncated at --target_length 4096 (after 2 attempts)"
    assert sum("[[content_filter]]" in a for a in asked) == 2  # one more try at most, not five
    assert done[0]["id"] == 0
    assert done[0]["items"][1]["revised_response"] == "- The answer is 0.\n- It follows from the rule."
    merged, final = tmp_path / "merged.json", tmp_path / "final.json"
    assert run_script("parallel_data_merge.py", "--input_data_path", inp, "--output_directory", out,
                      "--final_output_path", merged, "--allow_partial").returncode == 0
    assert run_script("rewrite_data_selection.py", "--input_original_data_path", inp, "--input_rewrite_data_path",
                      merged, "--output_path", final).returncode == 0
    text = final.read_text(encoding="utf-8")
    assert "<|" not in text and "DRAFT" not in text


@pytest.mark.parametrize("original, reply, verdict, value", [
    # an original that is itself an edited text with a "Revised response:" line
    ("Draft: teh cat.\nRevised response: The cat.", "Reasoning: bullets.\nRevised response: - Draft: teh cat.\n"
     "Revised response: The cat.", "ok", "- Draft: teh cat.\nRevised response: The cat."),
    ("Draft: teh cat.\nRevised response: The cat.", "- Draft: teh cat.\nRevised response: The cat.", "bad",
     "no 'Revised response:' part (the original's own are part of the answer)"),
    ("Draft: teh cat.\nRevised response: The cat.", "Revised response: a\nRevised response: b\nRevised response: c",
     "bad", "2 'Revised response:' parts in one reply (a draft and a final?)"),
    # an original that says KEEP ORIGINAL on a line of its own (a merge tool's instructions)
    ("When git asks, choose:\nKEEP ORIGINAL\nThen save.", "Reasoning: steps.\nRevised response: 1. When git "
     "asks, choose:\nKEEP ORIGINAL\n2. Then save.", "ok", "1. When git asks, choose:\nKEEP ORIGINAL\n2. Then save."),
    ("When git asks, choose:\nKEEP ORIGINAL\nThen save.", "Reasoning: does not fit.\nRevised response: KEEP ORIGINAL",
     "keep", "format does not fit"),
    ("Plain answer.", "Reasoning: no.\n\nKEEP ORIGINAL", "keep", "format does not fit"),
    # template tokens
    ("A.", "Revised response: - A.<|im_end|>\n<|endoftext|>", "ok", "- A."),
    ("A.", "Revised response: - A.<end_of_turn>", "ok", "- A."),
    ("Use <s>old</s> for struck text.", "Revised response: - Use <s>old</s>", "ok", "- Use <s>old</s>"),
    ("A.", "Revised response: - A.<|eot_id|><|start_header_id|>user<|end_header_id|>", "bad",
     "the reply holds the chat-template token '<|eot_id|>' (the model ran past its turn)"),
])
def test_protocol_markers_inside_the_data_are_data(original, reply, verdict, value):
    from realign.prompts import read_reply
    assert read_reply(reply, original) == (verdict, value)


# ---------------------------------------------------------------- 3. a record's own refusal fails that record

def _case(name):
    return json.loads((CASES / "turn3" / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("status", [400, 500])
def test_records_too_long_for_the_context_fail_alone_even_first_and_on_every_rerun(tmp_path, status):
    """turn3/ctx_long_first.json: 4 records over a small context come first, 8 that fit after."""
    inp = write_json(tmp_path / "in.json", _case("ctx_long_first.json"))
    out = tmp_path / "out"
    for run in range(2):
        with OpenAIFake(context_chars=6000, context_status=status) as srv:
            r = reformat(f"{srv.url}/v1", inp, out)
            sent = srv.request_count
        assert r.returncode == 1, r.stderr
        done, failed = outputs(out)
        assert len(rewritten(done)) == 8 and sorted(f["id"] for f in failed) == ["long0", "long1", "long2", "long3"]
        assert all(f["reason"].startswith("context size exceeded: HTTP") and "exceeds the available context size"
                   in f["reason"] and "attempts" not in f["reason"] for f in failed)
        assert sent == (12 if run == 0 else 4)  # one request each, no retries; the rerun sends only the 4 again
    assert "4 of them do not fit the server's context" in r.stdout


def test_a_prompt_content_filter_fails_only_the_flagged_records(tmp_path):
    """turn3/flagged_first.json: 12 records trip Azure's prompt filter before 6 plain ones."""
    inp = write_json(tmp_path / "in.json", _case("flagged_first.json"))
    with OpenAIFake(prompt_filter="TRIGGER") as srv:
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out")
        sent = srv.request_count
    assert r.returncode == 1, r.stderr
    done, failed = outputs(tmp_path / "out")
    assert len(rewritten(done)) == 6 and len(failed) == 12 and sent == 18
    assert all(f["reason"].startswith("prompt caught by a content filter: HTTP 400: The response was filtered")
               for f in failed)


def test_an_nginx_413_page_fails_the_big_records_only(tmp_path):
    recs = records(10)
    for i in (0, 1, 7):
        recs[i]["items"][1]["value"] = "A long answer. " * 800
    inp = write_json(tmp_path / "in.json", recs)
    with OpenAIFake(max_body=8000) as srv:
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out")
    assert r.returncode == 1, r.stderr
    done, failed = outputs(tmp_path / "out")
    assert len(done) == 7 and sorted(f["id"] for f in failed) == [0, 1, 7]
    assert failed[0]["reason"] == ("request too large: HTTP 413: an HTML page titled "
                                   "'413 Request Entity Too Large'")


def test_per_record_refusals_never_stop_a_run_of_many(tmp_path):
    """60 long records first, then 40 that fit: neither the start-of-run refusal (3 alike) nor the
    later breaker (10 in a row) may count them."""
    recs = [make_record(i, q=f"q {i}", a="Long. " * 2000 if i < 60 else f"Short {i}.") for i in range(100)]
    inp = write_json(tmp_path / "in.json", recs)
    with OpenAIFake(context_chars=6000) as srv:
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out", "--concurrency", "4")
    assert r.returncode == 1 and "stopped early" not in r.stderr, r.stderr
    done, failed = outputs(tmp_path / "out")
    assert len(done) == 40 and len(failed) == 60


# ---------------------------------------------------------------- 4. keys

@pytest.mark.parametrize("bad, where", [(KEY[:10] + "\r" + KEY[10:], "control character (U+000D"),
                                        (KEY[:5] + "\u2010" + KEY[6:], "outside ASCII (U+2010 HYPHEN)")])
def test_a_key_with_a_control_or_look_alike_character_is_one_line_before_any_request(tmp_path, bad, where):
    inp = write_json(tmp_path / "in.json", records(5))
    with OpenAIFake() as srv:
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out", env={"OPENAI_API_KEY": bad})
        sent = srv.request_count
    assert r.returncode == 2 and sent == 0
    err = stderr_lines(r)
    assert len(err) == 1 and err[0].startswith("error: the API key from OPENAI_API_KEY has a") and where in err[0]
    assert "at position" in r.stderr and KEY[:10] not in r.stderr and KEY[12:] not in r.stderr


def test_whitespace_around_a_key_is_stripped_and_a_key_file_is_read(tmp_path):
    inp = write_json(tmp_path / "in.json", records(3))
    key_file = tmp_path / "key.txt"
    key_file.write_text(KEY + "\r\n")
    with OpenAIFake(api_key=KEY) as srv:
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out", env={"OPENAI_API_KEY": f"  {KEY}\n"})
        assert r.returncode == 0, r.stderr
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out2", "--openai_key_file", key_file)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out3", "--openai_key", KEY)
        assert r.returncode == 0
    assert stderr_lines(r) == ["warning: --openai_key is readable by every user of this machine (ps, /proc) while "
                               "the run lasts; prefer the OPENAI_API_KEY environment variable or --openai_key_file"]
    r = reformat("http://127.0.0.1:9/v1", inp, tmp_path / "out4", "--openai_key_file", tmp_path / "nope.txt")
    missing = tmp_path / "nope.txt"
    assert r.returncode == 2 and stderr_lines(r) == [f"error: --openai_key_file {missing}: file not found"]


def test_a_key_echoed_inside_a_reply_is_in_no_file(tmp_path):
    """A proxy or model repeating the Authorization header: masked where replies are read, so the
    shard, the merged file and the report cannot hold it."""
    inp = write_json(tmp_path / "in.json", records(4))
    out = tmp_path / "out"
    with OpenAIFake(api_key=KEY, echo_auth=True, faithful=True) as srv:
        r = reformat(f"{srv.url}/v1", inp, out, env={"OPENAI_API_KEY": KEY})
    assert r.returncode == 0, r.stderr
    done, _ = outputs(out)
    assert all("(sent with Bearer ***)" in rec["items"][1]["revised_response"] for rec in done)
    merged, final = tmp_path / "merged.json", tmp_path / "final.json"
    assert run_script("parallel_data_merge.py", "--input_data_path", inp, "--output_directory", out,
                      "--final_output_path", merged).returncode == 0
    run_script("rewrite_data_selection.py", "--input_original_data_path", inp, "--input_rewrite_data_path", merged,
               "--output_path", final)
    for path in [*out.iterdir(), *tmp_path.glob("*.json*"), *tmp_path.glob("*.html")]:
        assert KEY not in path.read_text(encoding="utf-8"), path


# ---------------------------------------------------------------- 7. nothing succeeds (issue 24 #4)

def test_a_server_answering_500_to_everything_stops_within_a_minute_and_300_requests(tmp_path):
    recs = records(500) + [make_record(f"p{i}", cat="roleplay") for i in range(5)]  # passed through: kept
    inp = write_json(tmp_path / "in.json", recs)
    with OpenAIFake(refuse=(500, "Internal server error"), max_requests=5000) as srv:
        t0 = time.monotonic()
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out")
        elapsed, sent = time.monotonic() - t0, srv.request_count
    assert r.returncode == 1, r.stderr
    assert elapsed < 60 and sent <= 300, (elapsed, sent)
    err = stderr_lines(r)
    assert len(err) == 1 and err[0].startswith("error: stopped early, no request has succeeded"), err
    assert f"{srv.url}/v1/chat/completions: HTTP 500: Internal server error" in err[0]
    done, failed = outputs(tmp_path / "out")
    assert sorted(rec["id"] for rec in done) == [f"p{i}" for i in range(5)] and len(failed) == 500


def test_a_server_that_never_answers_is_refused_within_seconds_with_default_flags(tmp_path):
    inp = write_json(tmp_path / "in.json", records(100))
    with OpenAIFake(hang_all=True, max_seconds=90) as srv:
        t0 = time.monotonic()
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out", timeout=90)
        elapsed = time.monotonic() - t0
    assert r.returncode == 2 and len(stderr_lines(r)) == 1, r.stderr
    assert "no answer to any of" in r.stderr and "GET /models" in r.stderr and "does not answer" in r.stderr
    assert elapsed < 25, elapsed  # 126 s before (the default --request_timeout 120 and its slack)


def test_a_slow_server_that_answers_its_probe_is_waited_for(tmp_path):
    inp = write_json(tmp_path / "in.json", records(2))
    with OpenAIFake(latency=11.5) as srv:
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out", timeout=90)
        probed = [x["path"] for x in srv.requests if x["method"] == "GET"]
    assert r.returncode == 0, r.stderr
    assert probed == ["/v1/models"]


def test_the_breaker_stops_a_server_down_for_minutes_but_rides_out_a_blip():
    now = [0.0]
    breaker = Breaker(clock=lambda: now[0])
    err = EndpointError("HTTP 503: down", endpoint="http://h/v1")
    breaker.success()
    for _ in range(200):  # a blip: many failures within a minute
        now[0] += 0.3
        breaker.transient(err)
    assert breaker.stopped is None
    breaker.success()
    for _ in range(200):  # down: failures for over two minutes, no success
        now[0] += 1.0
        breaker.transient(err)
    assert breaker.stopped.startswith("no request has succeeded for 12") and "http://h/v1: HTTP 503" in \
        breaker.stopped
    fresh = Breaker(clock=lambda: now[0])
    for _ in range(49):
        fresh.transient(err)
    assert fresh.stopped is None
    fresh.transient(err)
    assert fresh.stopped.startswith("no request has succeeded, 50 attempts failed")
