"""classify.py's cascade (embedded model first, an LLM for the unsure records) and reading LLM
answers, against a real local HTTP server that answers classifier prompts (tests/servers/classifier_fake.py)."""

import json
from pathlib import Path

import pytest

import classify
from conftest import make_record, run_script, write_json
from realign.classifier.backends import THINKING_MAX_TOKENS, classify_request, prompt_for
from realign.classifier.model import FALLBACK_BELOW, TaskClassifier
from realign.constant import TASK_DESCRIPTIONS, TASKS
from realign.llm.shape import REASONING_ROOM
from realign.prompts import CLASSIFIER_MAX_TOKENS, TASK_ANSWER_SCHEMA, build_task_messages, read_task
from tests.servers.classifier_fake import CHATTY, ClassifierFake, query_of

TEMPLATE = (Path(__file__).parent / "fixtures" / "classifier_prompt.txt").read_text(encoding="utf-8")
# What the embedded model is sure of, and what it is not (checked in `confidences` below).
SURE = ["What is the capital of Peru?", "Translate into French: good morning, my friend.",
        "Fix the bug in this Python code: def add(a, b): return a - b"]
UNSURE = ["Describe the water cycle."]


def read(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def firsts(path):
    return [rec["items"][0] for rec in read(path)]


@pytest.fixture(scope="module")
def confidences():
    """{question: confidence} of the shipped model, for the prompts the tests send."""
    texts = SURE + UNSURE
    _, conf = TaskClassifier.load().classify(texts)
    found = dict(zip(texts, conf))
    assert all(found[q] >= FALLBACK_BELOW for q in SURE) and all(found[q] < FALLBACK_BELOW for q in UNSURE), found
    return found


def run_classify(capsys, *args):
    code = classify.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


# ---------------------------------------------------------------- reading an answer

@pytest.mark.parametrize("reply, task", [
    (" advice_giving\n", "advice_giving"), ("open_qa", "open_qa"), ("**open_qa**", "open_qa"),
    ("The task is: open_qa.", "open_qa"), ("Task name: `planning`", "planning"), ("Open QA", "open_qa"),
    ("Advice giving", "advice_giving"), ("text-summarization", "text_summarization"),
    ('{"task": "math_puzzles"}', "math_puzzles"), ('```json\n{"task": "roleplay"}\n```', "roleplay"),
    ("<think>Could be closed_qa. No passage though.</think>\nopen_qa", "open_qa"),
    ("I would say this is explain_answer rather than open_qa.", "explain_answer"),
    ("Not closed_qa: the answer is open_qa.", "open_qa"),
    ("The answer is **default**.", "default"), ("default", "default"), ("Rejecting", "rejecting"),
    # no task named: plain English words that happen to be one-word task names do not count
    ("", None), ("I think this is a question.", None), ("By default I would go with planning ahead.", None),
    ("<think>open_qa maybe", None), (CHATTY, None), (None, None),
])
def test_reply_reading_is_lenient_but_not_credulous(reply, task):
    assert read_task(reply) == task


# ---------------------------------------------------------------- the prompts

def test_the_gair_model_gets_the_spec_prompt_and_others_ours():
    assert prompt_for("GAIR/ReAlign-Task-Classifier") == "spec"
    assert prompt_for("/models/realign-task-classifier-13b") == "spec"
    assert prompt_for("gpt-4o-mini") == prompt_for("default") == "tasks"
    assert prompt_for("gpt-4o-mini", "spec") == "spec"
    spec = classify_request(0, "hello", "spec")
    assert spec.prompt == TEMPLATE.format(input="hello") and spec.messages is None and spec.response_format is None
    ours = classify_request(0, "hello", "tasks", structured=True)
    system, user = ours.messages
    assert all(task in system["content"] and " ".join(TASK_DESCRIPTIONS[task].split()) in system["content"]
               for task in TASKS)
    assert user["content"].endswith("Request:\n<<<\nhello\n>>>\n\nTask name:")
    assert ours.response_format["json_schema"]["schema"] == TASK_ANSWER_SCHEMA and ours.sampling.max_tokens == 50


def test_a_long_query_keeps_its_head_and_its_ask_at_the_end():
    query = "Here is my essay. " + "word " * 3000 + "Please fix the grammar."
    sent = build_task_messages(query)[1]["content"]
    assert len(sent) < 4200 and sent.count("Here is my essay.") == 1 and "Please fix the grammar." in sent


# ---------------------------------------------------------------- the cascade

def test_only_the_unsure_records_go_to_the_llm(tmp_path, capsys, confidences):
    questions = SURE + UNSURE
    inp = write_json(tmp_path / "in.json", [{"instruction": q, "output": "x"} for q in questions])
    out = tmp_path / "out.json"
    with ClassifierFake(answer=lambda q: "explain_answer") as srv:
        code, stdout, _ = run_classify(capsys, "--input_data_path", inp, "--output_path", out, "--quiet",
                                       "--fallback_model", "small-llm", "--base_url", f"{srv.url}/v1")
        bodies = [json.loads(r["body"]) for r in srv.requests]
    assert code == 0
    assert [query_of(b) for b in bodies] == UNSURE
    assert all(b["model"] == "small-llm" and b["messages"][0]["role"] == "system" for b in bodies)
    got = dict(zip(questions, firsts(out)))
    for q in SURE:
        assert got[q]["category_source"] == "embedded" and got[q]["category_confidence"] >= FALLBACK_BELOW
    for q in UNSURE:
        assert got[q]["category"] == "explain_answer" and got[q]["category_source"] == "llm"
        assert "category_confidence" not in got[q]
    assert f"LLM small-llm (openai, tasks prompt): {len(UNSURE)} records sent, {len(UNSURE)} labelled, " \
           "0 unreadable replies, 0 failed; 1 requests, ~" in stdout
    assert stdout.strip().splitlines()[-1].startswith(
        f"classify (embedded + small-llm under {FALLBACK_BELOW:g}): 4 records (alpaca): 4 classified, 0 kept their "
        f"category, 0 failed, {len(UNSURE)} sent to the LLM; ")


def test_fallback_below_moves_the_line(tmp_path, capsys, confidences):
    inp = write_json(tmp_path / "in.json", [{"instruction": q, "output": "x"} for q in SURE + UNSURE])
    written = sorted(round(c, 4) for c in confidences.values())  # the written confidence is the one compared
    below = (written[1] + written[2]) / 2  # between the second and third most unsure: two go
    expected = [q for q in SURE + UNSURE if round(confidences[q], 4) < below]
    assert UNSURE[0] in expected and len(expected) == 2
    with ClassifierFake() as srv:
        code, _, _ = run_classify(capsys, "--input_data_path", inp, "--output_path", tmp_path / "out.json",
                                  "--quiet", "--fallback_model", "m", "--base_url", f"{srv.url}/v1",
                                  "--fallback_below", below)
        assert code == 0 and sorted(srv.queries) == sorted(expected)
    with ClassifierFake() as srv:
        code, _, _ = run_classify(capsys, "--input_data_path", inp, "--output_path", tmp_path / "out2.json",
                                  "--quiet", "--fallback_model", "m", "--base_url", f"{srv.url}/v1",
                                  "--fallback_below", 0)
        assert code == 0 and srv.queries == []


def test_decorated_answers_are_read_and_unreadable_ones_counted(tmp_path, capsys):
    tags = ["bold", "sentence", "spaced", "think", "json", "chatty", "empty"]
    questions = [f"Tell me about volcanoes [[{tag}]]" for tag in tags]
    inp = write_json(tmp_path / "in.json", [{"instruction": q, "output": "x"} for q in questions])
    out = tmp_path / "out.json"
    with ClassifierFake(answer=lambda q: "open_qa") as srv:
        code, stdout, stderr = run_classify(capsys, "--input_data_path", inp, "--output_path", out, "--quiet",
                                            "--backend", "openai", "--model", "chatty-model", "--base_url",
                                            f"{srv.url}/v1")
    assert code == 0
    got = firsts(out)
    assert [f["category"] for f in got] == ["open_qa"] * 5 + ["default"] * 2
    assert {f["category_source"] for f in got} == {"llm"}
    assert "7 records sent, 5 labelled, 2 unreadable replies, 0 failed" in stdout
    assert "unreadable replies (first: names no task: 'This request is asking" in stdout
    assert "warning: 2 of 7 LLM replies named no task" in stderr and "are labelled default" in stderr


def test_unreadable_answers_in_the_cascade_keep_the_embedded_label(tmp_path, capsys, confidences):
    questions = [UNSURE[0] + " [[chatty]]", UNSURE[0] + " [[empty]]"]
    inp = write_json(tmp_path / "in.json", [{"instruction": q, "output": "x"} for q in questions])
    out = tmp_path / "out.json"
    with ClassifierFake(answer=lambda q: "open_qa") as srv:
        code, stdout, stderr = run_classify(capsys, "--input_data_path", inp, "--output_path", out, "--quiet",
                                            "--fallback_model", "m", "--base_url", f"{srv.url}/v1",
                                            "--fallback_below", 1.0)
    assert code == 0 and "2 unreadable replies" in stdout and "keep the embedded model's label" in stderr
    assert "names no task" in stdout  # the first one quoted
    for first in firsts(out):
        assert first["category_source"] == "embedded" and first["category"] != "open_qa"


def test_a_rerun_sends_only_what_failed_or_was_unsure_and_unanswered(tmp_path, capsys, confidences):
    """Resume: LLM failures keep the embedded label and go again on a rerun over the output; records
    the LLM labelled, and sure ones, are not sent again."""
    questions = SURE + UNSURE + [UNSURE[0] + " [[error500]]"]
    inp = write_json(tmp_path / "in.json", [make_record(i, q=q, cat=None) for i, q in enumerate(questions)])
    out1, out2 = tmp_path / "out1.json", tmp_path / "out2.json"
    flags = ["--quiet", "--fallback_model", "m", "--max_retries", "0"]
    with ClassifierFake(answer=lambda q: "explain_answer") as srv:
        code, stdout, _ = run_classify(capsys, "--input_data_path", inp, "--output_path", out1, *flags,
                                       "--base_url", f"{srv.url}/v1")
    assert code == 1 and "1 records could not be classified (they keep the embedded model's label)" in stdout
    failed = firsts(out1)[-1]
    assert failed["category_source"] == "embedded" and failed["category_confidence"] < FALLBACK_BELOW
    with ClassifierFake(answer=lambda q: "explain_answer") as srv:
        srv_queries = srv.queries
        stripped = [dict(rec) for rec in read(out1)]
        stripped[-1]["items"][0]["value"] = UNSURE[0] + " (again)"  # the server is fixed: no more 500
        rerun_in = write_json(tmp_path / "rerun_in.json", stripped)
        code, stdout, _ = run_classify(capsys, "--input_data_path", rerun_in, "--output_path", out2, *flags,
                                       "--base_url", f"{srv.url}/v1")
    assert code == 0 and srv_queries == [UNSURE[0] + " (again)"]
    assert "5 kept their category" in stdout
    assert [f["category_source"] for f in firsts(out2)] == ["embedded"] * len(SURE) + ["llm", "llm"]


def test_an_answer_the_embedded_model_all_but_ruled_out_is_overruled(tmp_path, capsys, confidences):
    """A small LLM's stray answer (data_generation for "Describe the water cycle.", which the
    embedded model gives well under 1 %) keeps the embedded label; --fallback_guard 0 takes it."""
    inp = write_json(tmp_path / "in.json", [{"instruction": q, "output": "x"} for q in UNSURE])
    with ClassifierFake(answer=lambda q: "data_generation") as srv:
        code, stdout, _ = run_classify(capsys, "--input_data_path", inp, "--output_path", tmp_path / "a.json",
                                       "--quiet", "--fallback_model", "m", "--base_url", f"{srv.url}/v1")
        assert code == 0 and "1 records sent, 0 labelled, 0 unreadable replies, 1 overruled (a task the embedded " \
                             "model gives under 0.01), 0 failed" in stdout
        (first,) = firsts(tmp_path / "a.json")
        assert first["category_source"] == "embedded" and first["category"] != "data_generation"
        code, stdout, _ = run_classify(capsys, "--input_data_path", inp, "--output_path", tmp_path / "b.json",
                                       "--quiet", "--fallback_model", "m", "--base_url", f"{srv.url}/v1",
                                       "--fallback_guard", "0")
        (first,) = firsts(tmp_path / "b.json")
        assert code == 0 and first["category"] == "data_generation" and first["category_source"] == "llm"


def test_an_embedded_run_then_the_cascade_on_its_output(tmp_path, capsys, confidences):
    """The default command first; later, the cascade over its output sends only the unsure records."""
    inp = write_json(tmp_path / "in.json", [{"instruction": q, "output": "x"} for q in SURE + UNSURE])
    plain = tmp_path / "plain.json"
    assert run_classify(capsys, "--input_data_path", inp, "--output_path", plain, "--quiet")[0] == 0
    with ClassifierFake(answer=lambda q: "default") as srv:
        code, stdout, _ = run_classify(capsys, "--input_data_path", plain, "--output_path", tmp_path / "c.json",
                                       "--quiet", "--fallback_model", "m", "--base_url", f"{srv.url}/v1")
        assert code == 0 and srv.queries == UNSURE


# ---------------------------------------------------------------- structured output

def test_structured_output_is_asked_for_and_dropped_when_the_server_refuses_it(tmp_path, capsys):
    inp = write_json(tmp_path / "in.json", [{"instruction": f"question {i} [[json]]", "output": "x"} for i in range(4)])
    flags = ["--quiet", "--backend", "openai", "--model", "m", "--concurrency", "1"]
    with ClassifierFake(answer=lambda q: "open_qa", schema_json=True) as srv:
        code, _, _ = run_classify(capsys, "--input_data_path", inp, "--output_path", tmp_path / "a.json", *flags,
                                  "--base_url", f"{srv.url}/v1")
        formats = [json.loads(r["body"]).get("response_format") for r in srv.requests]
    assert code == 0 and {f["category"] for f in firsts(tmp_path / "a.json")} == {"open_qa"}
    assert all(f["type"] == "json_schema" and f["json_schema"]["schema"]["properties"]["task"]["enum"] == list(TASKS)
               for f in formats)
    with ClassifierFake(answer=lambda q: "open_qa", schema_400=True) as srv:
        code, _, _ = run_classify(capsys, "--input_data_path", inp, "--output_path", tmp_path / "b.json", *flags,
                                  "--base_url", f"{srv.url}/v1")
        statuses = [("response_format" in json.loads(r["body"])) for r in srv.requests]
    assert code == 0 and {f["category"] for f in firsts(tmp_path / "b.json")} == {"open_qa"}
    assert statuses == [True, False, False, False, False]  # one refusal, then plain requests
    with ClassifierFake(answer=lambda q: "open_qa") as srv:
        run_classify(capsys, "--input_data_path", inp, "--output_path", tmp_path / "c.json", *flags,
                     "--base_url", f"{srv.url}/v1", "--no_structured_output")
        assert not any("response_format" in json.loads(r["body"]) for r in srv.requests)


def test_the_gair_model_gets_the_spec_prompt_verbatim_as_fallback(tmp_path, capsys, confidences):
    inp = write_json(tmp_path / "in.json", [{"instruction": q, "output": "x"} for q in UNSURE])
    with ClassifierFake(answer=lambda q: "default") as srv:
        code, _, _ = run_classify(capsys, "--input_data_path", inp, "--output_path", tmp_path / "o.json", "--quiet",
                                  "--fallback_model", "GAIR/ReAlign-Task-Classifier", "--base_url", f"{srv.url}/v1")
        (body,) = [json.loads(r["body"]) for r in srv.requests]
    assert code == 0 and body["prompt"] == TEMPLATE.format(input=UNSURE[0])
    assert body["max_tokens"] == 50 and body["temperature"] == 0.0 and "response_format" not in body


# ---------------------------------------------------------------- cost, dry run, flags

def test_dry_run_estimates_and_sends_and_writes_nothing(tmp_path, capsys, confidences):
    inp = write_json(tmp_path / "in.json", [{"instruction": q, "output": "x"} for q in SURE + UNSURE])
    out = tmp_path / "out.json"
    with ClassifierFake() as srv:
        code, stdout, _ = run_classify(capsys, "--input_data_path", inp, "--output_path", out, "--quiet",
                                       "--fallback_model", "gpt-x", "--base_url", f"{srv.url}/v1", "--dry_run",
                                       "--price_in", "0.15", "--price_out", "0.6")
        assert srv.request_count == 0
    assert code == 0 and not out.exists()
    assert f"{len(UNSURE)} of them under confidence {FALLBACK_BELOW:g}" in stdout
    assert f"would go to the LLM gpt-x (openai, tasks prompt): {len(UNSURE)} records, {len(UNSURE)} requests, ~" \
           in stdout and "$" in stdout


def test_dry_run_needs_no_key(tmp_path):
    inp = write_json(tmp_path / "in.json", [{"instruction": q, "output": "x"} for q in UNSURE])
    r = run_script("classify.py", "--input_data_path", inp, "--output_path", tmp_path / "o.json", "--backend",
                   "openai", "--model", "gpt-x", "--dry_run", env={"OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""})
    assert r.returncode == 0, r.stderr
    assert "would go to the LLM gpt-x (openai, tasks prompt): 1 records, 1 requests" in r.stdout


def test_the_summary_prices_what_was_sent(tmp_path, capsys):
    inp = write_json(tmp_path / "in.json", [{"instruction": f"q{i}", "output": "x"} for i in range(3)])
    with ClassifierFake(answer=lambda q: "open_qa") as srv:
        code, stdout, _ = run_classify(capsys, "--input_data_path", inp, "--output_path", tmp_path / "o.json",
                                       "--quiet", "--backend", "openai", "--model", "m", "--base_url",
                                       f"{srv.url}/v1", "--price_in", "1", "--price_out", "1")
    line = next(s for s in stdout.splitlines() if s.startswith("LLM m"))
    tokens = int(line.split("~")[1].split(" ")[0].replace(",", ""))
    assert code == 0 and "3 requests" in line and tokens > 3 * 1500  # the 46 descriptions go with each one
    assert "~$0.0" in line


@pytest.mark.parametrize("flags, needle", [
    (["--fallback_model", "m", "--backend", "openai"], "--fallback_model backs up the embedded model"),
    (["--fallback_model", "m", "--fallback_below", "2"], "between 0 and 1"),
    (["--fallback_model", "m", "--price_in", "-1"], "dollars per million tokens"),
    (["--eval", "x.json", "--dry_run"], "does not go with --train or --eval"),
])
def test_bad_cascade_flags_are_exit_2(tmp_path, flags, needle):
    inp = write_json(tmp_path / "in.json", [make_record(0, cat=None)])
    r = run_script("classify.py", "--input_data_path", inp, "--output_path", tmp_path / "out.json",
                   "--base_url", "http://127.0.0.1:9/v1", *flags)
    assert r.returncode == 2 and needle in r.stderr and not (tmp_path / "out.json").exists()


def test_eval_of_the_cascade_reports_both(tmp_path, capsys, confidences):
    rows = [{"instruction": q, "category": c} for q, c in
            [(SURE[0], "open_qa"), (SURE[1], "text_to_text_translation"), (UNSURE[0], "default")]]
    data = write_json(tmp_path / "eval.json", rows)
    with ClassifierFake(answer=lambda q: "default") as srv:
        code, stdout, _ = run_classify(capsys, "--eval", data, "--quiet", "--fallback_model", "m",
                                       "--base_url", f"{srv.url}/v1")
    assert code == 0 and srv.queries == UNSURE
    assert "cascade: the 1 instructions under confidence 0.8 sent to the LLM" in stdout
    assert "cascade 100.0%" in stdout


# ---------------------------------------------------------------- servers as they really are

def llm_only(capsys, srv, tmp_path, model, questions, *flags):
    inp = write_json(tmp_path / "in.json", [{"instruction": q, "output": "x"} for q in questions])
    out = tmp_path / "out.json"
    code, stdout, stderr = run_classify(capsys, "--input_data_path", inp, "--output_path", out, "--quiet",
                                        "--backend", "openai", "--model", model, "--base_url", f"{srv.url}/v1",
                                        "--concurrency", "1", *flags)
    bodies = [json.loads(r["body"]) for r in srv.requests if r["body"]]
    return code, stdout, stderr, [f["category"] for f in firsts(out)] if out.exists() else None, bodies


def test_a_reasoning_model_by_its_name_gets_its_shape_and_room_to_think(tmp_path, capsys):
    """o3-mini: max_completion_tokens with the shape's room to think, default temperature: nothing
    refused, nothing cut."""
    with ClassifierFake(answer=lambda q: "open_qa", reasoning=True, thinks=300) as srv:
        code, stdout, _, labels, bodies = llm_only(capsys, srv, tmp_path, "o3-mini", ["q1", "q2"])
    assert code == 0 and labels == ["open_qa", "open_qa"], stdout
    assert [b["max_completion_tokens"] for b in bodies] == [CLASSIFIER_MAX_TOKENS + REASONING_ROOM] * 2
    assert all("max_tokens" not in b and "temperature" not in b for b in bodies)
    assert "2 records sent, 2 labelled, 0 unreadable replies, 0 failed; 2 requests" in stdout


def test_a_reasoning_model_under_an_unknown_name_is_learned_from_its_refusals(tmp_path, capsys):
    """A name no table knows: its refusals teach max_completion_tokens (with the shape's room to
    reason, so a model that thinks for 300 tokens is not cut) and the default temperature."""
    with ClassifierFake(answer=lambda q: "math_puzzles", reasoning=True, thinks=300) as srv:
        code, stdout, _, labels, bodies = llm_only(capsys, srv, tmp_path, "house-reasoner", ["q1", "q2", "q3"])
    assert code == 0 and labels == ["math_puzzles"] * 3, stdout
    assert "adapted to the server: max_tokens sent as max_completion_tokens" in stdout
    assert "adapted to the server: temperature left to the server's default" in stdout
    limits = [b.get("max_completion_tokens") for b in bodies]
    assert limits[0] is None and limits[-3:] == [CLASSIFIER_MAX_TOKENS + REASONING_ROOM] * 3
    assert "temperature" not in bodies[-1]


def test_a_model_that_thinks_within_max_tokens_is_asked_again_with_room(tmp_path, capsys):
    """A model that takes max_tokens but thinks for 300 tokens first: the first reply comes back
    empty, cut at the classifier's limit; a cut record is asked once more with THINKING_MAX_TOKENS,
    and requests made after that get it from the start (one already on its way may still go at the
    small limit, and is asked again the same way)."""
    with ClassifierFake(answer=lambda q: "math_puzzles", thinks=300) as srv:
        code, stdout, _, labels, bodies = llm_only(capsys, srv, tmp_path, "house-thinker", ["q1", "q2", "q3"])
    assert code == 0 and labels == ["math_puzzles"] * 3, stdout
    limits = [b.get("max_tokens") for b in bodies]
    assert limits[0] == CLASSIFIER_MAX_TOKENS and limits.count(THINKING_MAX_TOKENS) == 3, limits
    assert set(limits) == {CLASSIFIER_MAX_TOKENS, THINKING_MAX_TOKENS} and len(limits) < 6, limits


@pytest.mark.parametrize("knobs", [dict(exclusive_sampling=True), dict(stream="always"), dict(content_parts=True),
                                   dict(stream="default")],
                         ids=["claude-via-gateway", "always-streams", "content-parts", "streams-unless-told"])
def test_gateway_and_server_quirks_still_give_task_names(tmp_path, capsys, knobs):
    with ClassifierFake(answer=lambda q: "recommendations", **knobs) as srv:
        code, stdout, _, labels, bodies = llm_only(capsys, srv, tmp_path, "bedrock/anthropic.claude-3-5-sonnet",
                                                   ["any good podcasts?", "books like Dune? [[bold]]"])
    assert code == 0 and labels == ["recommendations"] * 2, stdout
    assert all(b.get("stream") is False for b in bodies)


def test_a_gateway_error_inside_a_200_fails_those_records_and_keeps_the_embedded_label(tmp_path, capsys,
                                                                                        confidences):
    inp = write_json(tmp_path / "in.json", [{"instruction": q, "output": "x"} for q in SURE + UNSURE])
    out = tmp_path / "out.json"
    with ClassifierFake(error_200=(502, "Provider returned error")) as srv:
        code, stdout, _ = run_classify(capsys, "--input_data_path", inp, "--output_path", out, "--quiet",
                                       "--fallback_model", "openrouter/some-model", "--base_url", f"{srv.url}/v1",
                                       "--max_retries", "1")
    assert code == 1 and "1 records could not be classified (they keep the embedded model's label)" in stdout
    assert "Provider returned error" in stdout
    assert [f["category_source"] for f in firsts(out)] == ["embedded"] * 4


def test_an_answer_the_server_says_broke_off_is_not_taken(tmp_path, capsys, confidences):
    """finish_reason "error" (OpenRouter; vLLM says "abort"): the text may be a task name cut short
    ("open_q...") or the start of a longer answer. Asked again once, then the record fails and
    keeps the embedded label, and a rerun sends it again."""
    inp = write_json(tmp_path / "in.json", [{"instruction": UNSURE[0] + " [[abort]]", "output": "x"}])
    out = tmp_path / "out.json"
    with ClassifierFake(answer=lambda q: "open_qa") as srv:
        code, stdout, _ = run_classify(capsys, "--input_data_path", inp, "--output_path", out, "--quiet",
                                       "--fallback_model", "m", "--base_url", f"{srv.url}/v1", "--fallback_below", 1.0)
        assert len(srv.queries) == 2
    assert code == 1 and "1 records could not be classified" in stdout, stdout
    assert "cut by the server (finish_reason 'error')" in stdout
    assert [f["category_source"] for f in firsts(out)] == ["embedded"]
