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
from test_endpoints import lines, reformat
from realign.llm.shape import REASONING_ROOM
from tests.servers.openai_fake import SERVER_CLASSES, OpenAIFake

KEY = "sk-fake-SERVERS-7d6c5b4a3f2e1d0c"
CASES = Path(__file__).resolve().parent.parent.parent / "shared" / "cases"


def records(n, prefix="q", cat="math_puzzles"):
    return [make_record(i, q=f"{prefix} {i}", a=f"The answer is {i}. It follows from the rule.", cat=cat)
            for i in range(n)]


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
    assert "max_tokens" not in last and last["max_completion_tokens"] == 4096 + REASONING_ROOM
    assert "temperature" not in last
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


@pytest.mark.parametrize("model, thinks", [("gpt-5-mini", 5000), ("gpt-5-mini", 12000), ("corp-reasoner", 5000)])
def test_a_reasoning_model_gets_room_to_think_beyond_the_target_length(tmp_path, model, thinks):
    """A reasoning model spends max_completion_tokens on thinking first: 5,000 tokens of it used
    to leave no room under --target_length 4096 (empty replies, cut). A known family gets room
    from the start, an unknown one once its 400 says max_completion_tokens; a model thinking
    more than that is given more after the first cut reply (said once) and the retry fits."""
    inp = write_json(tmp_path / "in.json", records(8))
    with OpenAIFake(reasoning=True, reasoning_tokens=thinks) as srv:
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out", "--model", model, "--concurrency", "2")
    assert r.returncode == 0, r.stderr
    assert len(rewritten(outputs(tmp_path / "out")[0])) == 8
    assert ("room to reason raised" in r.stdout) == (thinks > 4096 + REASONING_ROOM - 200), r.stdout


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
    tags = {0: "[[im_end]]", 1: "[[run_on]]", 2: "[[content_filter]]", 3: "[[truncate]]", 6: "[[gemma_eos]]",
            7: "[[llama4_eot]]", 8: "[[cohere_eot]]"}
    recs = records(9)
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
    assert reasons[1] == "the reply holds the chat-template token '<|im_end|>' (the model ran past its turn) " \
                         "(after 2 attempts)"  # the template's doing: one more try at most
    assert reasons[2] == "cut by the provider's content filter (finish_reason content_filter) (after 2 attempts)"
    assert reasons[3] == "truncated at --target_length 4096 (after 2 attempts)"
    assert sum("[[content_filter]]" in a for a in asked) == 2  # one more try at most, not five
    assert sorted(reasons) == [1, 2, 3]
    for rec in done:
        if rec["id"] in (0, 6, 7, 8):  # end tokens of ChatML, Gemma, Llama 4, Command-R stripped
            i = rec["id"]
            assert rec["items"][1]["revised_response"] == f"- The answer is {i}.\n- It follows from the rule."
    merged, final = tmp_path / "merged.json", tmp_path / "final.json"
    assert run_script("parallel_data_merge.py", "--input_data_path", inp, "--output_directory", out,
                      "--final_output_path", merged, "--allow_partial").returncode == 0
    assert run_script("rewrite_data_selection.py", "--input_original_data_path", inp, "--input_rewrite_data_path",
                      merged, "--output_path", final).returncode == 0
    text = final.read_text(encoding="utf-8")
    assert "<|" not in text and "DRAFT" not in text and "<eos>" not in text and "<end_of_turn>" not in text


def test_only_a_natural_stop_is_a_finished_reply(tmp_path):
    """OpenRouter's "error", vLLM's "abort", Gemini's "OTHER", Cohere's ERROR_TOXIC, "incomplete",
    "cancelled", a stream cut before its end, null content: none is used, each names its reason,
    and none is tried more than twice. Gemini's "STOP" (any case) and Anthropic's "end_turn" are
    finished answers; a 200 with no choices at all is no reason to ask one choice per call."""
    tags = ["[[finish=error]]", "[[finish=abort]]", "[[finish=OTHER]]", "[[finish=ERROR_TOXIC]]",
            "[[finish=incomplete]]", "[[finish=cancelled]]", "[[stream_cut]]", "[[null_content]]",
            "[[finish=STOP]]", "[[finish=end_turn]]", "[[no_choices]]"]
    recs = records(len(tags) + 3)
    for i, tag in enumerate(tags):
        recs[i]["items"][0]["value"] += f" {tag}"
    inp = write_json(tmp_path / "in.json", recs)
    with OpenAIFake(faithful=True) as srv:
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out", "--top_k", "2")
        asked = [json.dumps(b) for b in bodies(srv)]
    assert r.returncode == 1, r.stderr
    done, failed = outputs(tmp_path / "out")
    reasons = {f["id"]: f["reason"] for f in failed}
    cut = "cut by the server (finish_reason {!r}), not used (all 2 candidates) (after 2 attempts)"
    assert reasons[0] == cut.format("error") and reasons[1] == cut.format("abort")
    assert reasons[2] == cut.format("other") and reasons[4] == cut.format("incomplete")
    assert reasons[5] == cut.format("cancelled") and reasons[6] == cut.format("stream ended early")
    assert reasons[3] == ("cut by the provider's content filter (finish_reason content_filter) (all 2 candidates) "
                          "(after 2 attempts)")
    assert reasons[7] == "empty reply (no content) (all 2 candidates) (after 2 attempts)"
    assert sorted(reasons) == [0, 1, 2, 3, 4, 5, 6, 7, 10]
    for i, tag in enumerate(tags[:8]):
        assert sum(tag in a for a in asked) == 2, tag  # one more try at most
    assert sorted(d["id"] for d in rewritten(done)) == [8, 9, 11, 12, 13]
    assert all(b.get("n") == 2 for b in map(json.loads, asked)), "one choice per call was wrongly learned"
    assert "adapted to the server" not in r.stdout


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
    ("A.", "Revised response: - A.<|eot_id|><|start_header_id|>user<|end_header_id|>", "truncated",
     "the reply holds the chat-template token '<|eot_id|>' (the model ran past its turn)"),
])
def test_protocol_markers_inside_the_data_are_data(original, reply, verdict, value):
    from realign.prompts import read_reply
    assert read_reply(reply, original) == (verdict, value)


def test_geminis_per_minute_429_worded_as_a_spent_quota_is_waited_for(tmp_path):
    """Gemini's free tier answers a per-minute limit with "You exceeded your current quota …",
    RESOURCE_EXHAUSTED and a RetryInfo delay: a rate limit, waited for, not a spent quota. The
    429s come first and keep coming; every record is rewritten and the 429s are counted."""
    inp = write_json(tmp_path / "in.json", records(12))
    with OpenAIFake(gemini_rpm=(4, 2.0)) as srv:
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out", "--model", "gemini-2.0-flash", timeout=120)
        statuses = dict(srv.status_counts)
    assert r.returncode == 0, r.stderr
    assert len(rewritten(outputs(tmp_path / "out")[0])) == 12 and statuses.get(429, 0) >= 8
    assert "quota is spent" not in r.stdout + r.stderr


@pytest.mark.parametrize("body, spent", [
    ('{"error": {"message": "You exceeded your current quota, please check your plan and billing details.", '
     '"type": "insufficient_quota", "code": "insufficient_quota"}}', True),
    ('[{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "You exceeded your current quota. Please '
     'retry in 7.96s."}}]', False),
    ('[{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "You exceeded your current quota.", '
     '"details": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}, {"retryDelay": "50s"}]}}]', True),
    ('{"error": {"message": "Rate limit reached for gpt-4o-mini", "code": "rate_limit_exceeded"}}', False),
])
def test_which_429s_mean_a_spent_quota(body, spent):
    from realign.llm.openai_http import error_fields, quota_spent, retry_delay
    message, code, _ = error_fields(json.loads(body))
    assert quota_spent(code, message, retry_delay(body), body) is spent


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


@pytest.mark.parametrize("style, said", [
    ("azure", "HTTP 400: The response was filtered"),
    ("openrouter", "HTTP 403: openai/gpt-4o-mini requires moderation on OpenRouter. Your input was flagged for "
                   "\"violence\" (reasons: violence)")])
def test_a_prompt_content_filter_fails_only_the_flagged_records(tmp_path, style, said):
    """turn3/flagged_first.json: 12 records trip Azure's prompt filter (400 content_filter), or
    OpenRouter's moderation (403 with metadata.reasons), before 6 plain ones; the rerun too."""
    inp = write_json(tmp_path / "in.json", _case("flagged_first.json"))
    for rerun in (False, True):
        with OpenAIFake(prompt_filter="TRIGGER", filter_style=style) as srv:
            r = reformat(f"{srv.url}/v1", inp, tmp_path / "out")
            sent = srv.request_count
        assert r.returncode == 1, r.stderr
        done, failed = outputs(tmp_path / "out")
        assert len(rewritten(done)) == 6 and len(failed) == 12 and sent == (12 if rerun else 18)
        assert all(f["reason"].startswith(f"prompt caught by a content filter: {said}") for f in failed), failed[0]


@pytest.mark.parametrize("wording", ["old", "new"])
def test_vllm_with_a_small_context_and_the_default_target_length_rewrites_every_record_that_fits(tmp_path, wording):
    """vLLM --max-model-len 4096 with the default --target_length 4096: its 400 names the context
    and the prompt's tokens, so the limit is lowered to what the context leaves (learned once,
    said once); only a prompt that alone overflows the context fails its record."""
    recs = records(30)
    recs[4]["items"][1]["value"] = "Long. " * 4000  # about 6000 prompt tokens: over the context on its own
    inp = write_json(tmp_path / "in.json", recs)
    with OpenAIFake(faithful=True, context_tokens=4096, context_wording=wording) as srv:
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out", "--concurrency", "2")
        statuses, sent = dict(srv.status_counts), bodies(srv)
    assert r.returncode == 1, r.stderr
    done, failed = outputs(tmp_path / "out")
    assert len(rewritten(done)) == 29 and [f["id"] for f in failed] == [4]
    assert failed[0]["reason"].startswith("context size exceeded: HTTP 400: This model's maximum context length")
    assert statuses[400] <= 2 + 2 + 1  # the first wave, once learned the rest are sized before they are sent
    assert all(0 < b["max_tokens"] < 4096 for b in sent[-10:])
    notes = [x for x in r.stdout.splitlines() if x.startswith("adapted to the server")]
    assert len(notes) == 1 and "4096-token context" in notes[0], r.stdout


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
    r = run_script("rewrite_data_selection.py", "--input_original_data_path", inp, "--input_rewrite_data_path",
                   merged, "--output_path", final, "--report_dir", tmp_path / "report",
                   "--report_path", tmp_path / "decisions.json")
    assert r.returncode == 0, r.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "in.json"]
    assert {"rewrite_data_0_of_1_batch.jsonl", "merged.json", "final.json", "decisions.json", "report.html"} \
        <= {p.name for p in written}
    assert "***" in final.read_text(encoding="utf-8") + merged.read_text(encoding="utf-8")
    for path in written:
        assert KEY not in path.read_text(encoding="utf-8", errors="replace"), path


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


@pytest.mark.parametrize("style, said", [(True, "HTTP 200 carrying an error: Unexpected endpoint or method. "
                                                 "(POST /chat/completions)"), ("404", "HTTP 404: Not Found")])
def test_a_base_url_without_v1_is_one_line_with_the_v1_hint(tmp_path, style, said):
    """LM Studio answers a path without /v1 with a 200 carrying an error; vLLM with a 404."""
    inp = write_json(tmp_path / "in.json", records(10))
    with OpenAIFake(require_v1=style) as srv:
        r = reformat(srv.url, inp, tmp_path / "out")
    assert r.returncode == 2 and len(stderr_lines(r)) == 1, r.stderr
    assert said in r.stderr and f"did you mean --base_url {srv.url}/v1?" in r.stderr, r.stderr


def test_the_breaker_stops_a_server_down_for_minutes_but_rides_out_a_blip():
    now = [0.0]
    breaker = Breaker(clock=lambda: now[0])
    err = EndpointError("HTTP 503: down", endpoint="http://h/v1")
    breaker.success()
    for _ in range(200):  # a blip: many failures within a minute
        now[0] += 0.3
        breaker.transient(err)
    assert breaker.stopped is None and breaker.down
    assert breaker.may_send() and not breaker.may_send()  # down: one probe, then wait
    now[0] += 1.0
    assert breaker.may_send() and not breaker.may_send()
    breaker.success()
    assert not breaker.down and breaker.may_send() and breaker.may_send()
    for _ in range(200):  # down: failures for over two minutes, no success
        now[0] += 1.0
        breaker.transient(err)
    assert breaker.stopped.startswith("no request has succeeded for 12") and "http://h/v1: HTTP 503" in \
        breaker.stopped
    fresh = Breaker(clock=lambda: now[0])
    for _ in range(100):  # at the start: many failures in seconds are not yet a dead server
        now[0] += 0.05
        fresh.transient(err)
    assert fresh.stopped is None and fresh.down
    now[0] += 30
    fresh.transient(err)
    assert fresh.stopped.startswith("no request has succeeded, 101 attempts failed in 35 s")


@pytest.mark.parametrize("blip, records_n, extra", [
    ((0, 5), 200, ()),                                               # 500s for the first 5 s
    ((3, 23), 160, ("--concurrency", "8", "--rpm", "480")),          # 20 s of 500s mid-run
])
def test_a_blip_of_500s_fails_no_record(tmp_path, blip, records_n, extra):
    """A server that answers 500 to everything for a while, at the start or mid-run, then
    recovers: the run waits for it (one probe at a time, few requests), and every record is
    rewritten in the same run."""
    inp = write_json(tmp_path / "in.json", records(records_n))
    with OpenAIFake(fail_during=blip, max_requests=5000) as srv:
        r = reformat(f"{srv.url}/v1", inp, tmp_path / "out", *extra, timeout=120)
        statuses = dict(srv.status_counts)
    assert r.returncode == 0, r.stderr
    done, failed = outputs(tmp_path / "out")
    assert len(rewritten(done)) == records_n and failed == []
    assert 0 < statuses.get(500, 0) <= 100, statuses  # a wave and the probes, not six tries a record


# ---------------------------------------------------------------- the real llama.cpp server

@pytest.mark.slow
def test_the_real_llama_cpp_server_with_a_small_context(tmp_path):
    """llama.cpp's own HTTP server (xllamacpp's llama-server front end, the embedded model, 2048
    tokens of context): a record too long for it fails alone with llama.cpp's message, n above 1 is
    learned from its own 400, and the short records are answered."""
    pytest.importorskip("xllamacpp")
    from tests.servers.llama_http import LlamaServer

    recs = [make_record("long", q="Summarise this.", a="The river floods every spring. " * 500),
            make_record("s1", q="What is 2+2?", a="4.")]
    inp = write_json(tmp_path / "in.json", recs)
    with LlamaServer(n_ctx=2048) as url:
        r = reformat(f"{url}/v1", inp, tmp_path / "out", "--top_k", "2", "--target_length", "32", "--max_retries",
                     "0", "--request_timeout", "900", timeout=1800)
    assert r.returncode in (0, 1) and "stopped early" not in r.stderr, (r.stdout, r.stderr)
    done, failed = outputs(tmp_path / "out")
    reasons = {f["id"]: f["reason"] for f in failed}
    assert reasons["long"].startswith("context size exceeded: HTTP 400: request (")
    assert "exceeds the available context size (2048 tokens)" in reasons["long"]
    assert sorted([rec["id"] for rec in done] + list(reasons)) == ["long", "s1"]
    assert not reasons.get("s1", "").startswith("HTTP")  # the short one was answered
    assert "adapted to the server: one choice per call" in r.stdout and "Field 'n'" in r.stdout


# ---------------------------------------------------------------- the providers' own words

@pytest.mark.parametrize("message, param, sent, change, after", [
    ("Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
     "max_tokens", {"max_tokens": 4096}, "max_tokens sent as max_completion_tokens",
     {"max_completion_tokens": 4096 + REASONING_ROOM}),
    ("Unsupported value: 'temperature' does not support 0.3 with this model. Only the default (1) value is "
     "supported.", "temperature", {"temperature": 0.3}, "temperature left to the server's default", {}),
    ("max_tokens is too large: 100000. This model supports at most 16384 completion tokens, whereas you provided "
     "100000.", "max_tokens", {"max_tokens": 100000}, "max_tokens lowered to 16384", {"max_tokens": 16384}),
    ('BedrockException - {"message":"The model returned the following errors: `temperature` and `top_p` cannot '
     'both be specified for this model. Please use only one."}', None, {"temperature": 0.3, "top_p": 0.9},
     "top_p left out beside temperature", {"temperature": 0.3}),
    ("Field 'n': Value must be between 1 <= value <= 1, but got 2", None, {"n": 2}, "one choice per call", {}),
    ("Only one completion choice is allowed", None, {"n": 3}, "one choice per call", {}),
    ("[{'type': 'extra_forbidden', 'loc': ('body', 'max_completion_tokens'), 'msg': 'Extra inputs are not "
     "permitted'}]", None, {"max_completion_tokens": 64}, "max_completion_tokens sent as max_tokens",
     {"max_tokens": 64}),
])
def test_the_request_shape_learns_from_each_providers_wording(message, param, sent, change, after):
    from realign.llm.base import Sampling
    from realign.llm.shape import RequestShape

    shape = RequestShape()
    if "max_completion_tokens" in sent:
        shape.tokens_field = "max_completion_tokens"
    sampling = Sampling(n=sent.get("n", 1), temperature=sent.get("temperature"), top_p=sent.get("top_p"),
                        max_tokens=sent.get("max_tokens") or sent.get("max_completion_tokens"))
    body = shape.body("m", sampling, sampling.n)
    assert {k: v for k, v in body.items() if k not in ("model", "stream")} == sent
    assert shape.learn(f"HTTP 400: {message}", param, body).startswith(change)
    again = shape.body("m", sampling, sampling.n)
    assert {k: v for k, v in again.items() if k not in ("model", "stream")} == after
    assert shape.learn(f"HTTP 400: {message}", param, again) is None  # learned once; nothing left to change
    assert shape.learn("HTTP 400: Invalid 'messages': empty array.", None, again) is None


@pytest.mark.parametrize("status, message, what", [
    (400, "This model's maximum context length is 8192 tokens. However, your messages resulted in 9100 tokens.",
     "context size exceeded"),
    (400, "'max_tokens' or 'max_completion_tokens' is too large: 4096. This model's maximum context length is 4096 "
          "tokens and your request has 904 input tokens", "context size exceeded"),
    (400, "prompt is too long: 210000 tokens > 200000 maximum", "context size exceeded"),
    (400, "Input is too long for requested model.", "context size exceeded"),
    (400, "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
     "context size exceeded"),
    (422, "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 3000 `inputs` tokens",
     "context size exceeded"),
    (500, "the request exceeds the available context size, try increasing it", "context size exceeded"),
    (413, "<html><title>413 Request Entity Too Large</title></html>", "request too large"),
    (400, "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
     "prompt caught by a content filter"),
    (403, "Input flagged by moderation (reasons: harassment)", "prompt caught by a content filter"),
    (400, "Your request was rejected as a result of our safety system.", "prompt caught by a content filter"),
    (400, "Unsupported parameter: 'max_tokens' is not supported with this model.", None),
    (500, "Internal server error", None),
    (401, "Incorrect API key provided", None),
    (403, "Project does not have access to model gpt-5", None),
])
def test_which_refusals_are_about_one_record(status, message, what):
    from realign.endpoint import record_refusal
    assert record_refusal(status, message) == what


def test_error_bodies_in_each_providers_shape():
    from realign.llm.openai_http import _SYSTEM_ROLE_REFUSED, error_fields
    assert error_fields([{"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}}]) \
        == ("API key not valid.", "400 INVALID_ARGUMENT", None)                                        # Gemini
    assert error_fields({"object": "error", "message": "bad n", "type": "BadRequestError", "code": 400}) \
        == ("bad n", "400 BadRequestError", None)                                                      # vLLM, Mistral
    assert error_fields({"message": "x", "param": "max_tokens", "code": "unsupported_parameter"})[2] == "max_tokens"
    assert error_fields("Bad Gateway") == ("Bad Gateway", "", None)
    assert _SYSTEM_ROLE_REFUSED.search("Unsupported value: 'messages[0].role' does not support 'system' with this "
                                       "model.")                                                       # o1-mini


def test_retrieval_reads_the_serper_key_from_a_file_and_checks_it(tmp_path):
    from tests.servers.serper_fake import SerperFake
    recs = [make_record(i, q=f"who wrote book {i}?", a="someone", cat="open_qa") for i in range(3)]
    inp = write_json(tmp_path / "in.json", recs)
    key_file = tmp_path / "serper.key"
    key_file.write_text("serper-key-0123456789\n")
    with SerperFake(api_key="serper-key-0123456789") as srv:
        r = run_script("retrieval.py", "--input_data_path", inp, "--output_path", tmp_path / "out.json",
                       "--serper_url", f"{srv.url}/search", "--serper_key_file", key_file,
                       env={"SERPER_API_KEY": ""})
        assert r.returncode == 0, r.stderr
        r = run_script("retrieval.py", "--input_data_path", inp, "--output_path", tmp_path / "out2.json",
                       "--serper_url", f"{srv.url}/search", env={"SERPER_API_KEY": "serper-key-0123456789\u00a0"})
        assert r.returncode == 0, r.stderr  # a no-break space around it is whitespace: stripped
        r = run_script("retrieval.py", "--input_data_path", inp, "--output_path", tmp_path / "out3.json",
                       "--serper_url", f"{srv.url}/search", env={"SERPER_API_KEY": "serper-key\u20130123456789"})
        sent = srv.request_count
    assert r.returncode == 2 and sent == 6, (r.stderr, sent)
    assert "the API key from SERPER_API_KEY has a character outside ASCII (U+2013 EN DASH) at position 11" \
        in r.stderr and "0123456789" not in r.stderr
