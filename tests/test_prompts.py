"""The rewrite prompt, the reply parser, token lengths and secret scrubbing."""

import json

import pytest

from realign.constant import RAG_TASKS, REWRITE_TASKS, TASK_FORMATS
from realign.errors import UsageError
from realign.lengths import approx_tokens, make_length_fn
from realign.prompts import build_rewrite_messages, parse_reply
from realign.redact import add_secret, scrub


@pytest.mark.parametrize("reply, revised", [
    ("Reasoning: short.\nRevised response: The answer is 4.", "The answer is 4."),
    ("**Reasoning:** short.\n\n**Revised Response:**\n\nThe answer is 4.\n", "The answer is 4."),
    ("reasoning: x\nREVISED RESPONSE:   The answer is 4.  ", "The answer is 4."),
    ("### Revised response:\nLine one\nLine two", "Line one\nLine two"),
    ("Reasoning: fine. Revised response: inline answer", "inline answer"),
    ("Reasoning: I mention the Revised response: below.\nRevised response: the real one", "the real one"),
    ("Revised_response: underscores", "underscores"),
])
def test_parser_is_lenient_about_the_label(reply, revised):
    assert parse_reply(reply)[1] == revised


@pytest.mark.parametrize("reply", [
    "Here is a better answer without any label.",
    "Reasoning: all reasoning, no answer.",
    "Reasoning: x\nRevised response:   \n",
    "",
    None,
])
def test_parser_refuses_replies_without_the_revised_part(reply):
    assert parse_reply(reply) is None


def test_parser_returns_the_reasoning_without_its_label():
    assert parse_reply("Reasoning: because.\nRevised response: ok") == ("because.", "ok")


def test_prompt_carries_format_question_answer_and_protocol():
    task = REWRITE_TASKS[0]
    system, user = build_rewrite_messages(task, "QUESTION-XYZ", "ANSWER-XYZ")
    assert system["role"] == "system" and user["role"] == "user"
    text = user["content"]
    assert TASK_FORMATS[task] in text and "QUESTION-XYZ" in text and "ANSWER-XYZ" in text
    assert "Reasoning:" in text and "Revised response:" in text
    assert "[Evidence]" not in text


def test_prompt_numbers_evidence_and_bounds_it():
    task = sorted(RAG_TASKS)[0]
    _, user = build_rewrite_messages(task, "q", "a", ["first  passage", "second", "x" * 100_000])
    text = user["content"]
    assert "[Evidence]\n1. first passage\n2. second\n3. xxx" in text
    assert len(text) < 12_000
    _, user = build_rewrite_messages(task, "q", "a", ["  ", "after a blank one"])
    assert "[Evidence]\n1. after a blank one" in user["content"]


def test_every_rewritten_task_builds_a_prompt():
    for task in REWRITE_TASKS:
        build_rewrite_messages(task, "q", "a")


def test_tokenizer_free_length():
    assert approx_tokens("Hello, world!") == 4
    assert approx_tokens("x = 3.14") == 5
    assert approx_tokens("你好世界") == 4
    assert approx_tokens("") == 0
    assert make_length_fn(None) is approx_tokens


def test_length_from_a_local_tokenizer_json(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    length = make_length_fn(str(tmp_path))            # a folder holding tokenizer.json
    assert length("hello world hello") == 3
    assert make_length_fn(str(tmp_path / "tokenizer.json"))("hello") == 1


def test_bad_tokenizer_path_is_a_usage_error(tmp_path):
    (tmp_path / "tokenizer.json").write_text(json.dumps({"not": "a tokenizer"}))
    with pytest.raises(UsageError):
        make_length_fn(str(tmp_path))
    try:
        import transformers  # noqa: F401
    except ImportError:
        with pytest.raises(UsageError, match="tokenizer.json"):
            make_length_fn(str(tmp_path / "missing-dir"))


def test_scrub_masks_registered_and_key_shaped_secrets():
    add_secret("my-very-own-secret-value")
    text = ("key my-very-own-secret-value, Authorization: Bearer abc.def-123, sk-proj-ABCDEF123456, "
            "api_key=zzzzzzzzzz")
    out = scrub(text)
    for secret in ("my-very-own-secret-value", "abc.def-123", "sk-proj-ABCDEF123456", "zzzzzzzzzz"):
        assert secret not in out
    assert scrub("nothing secret here") == "nothing secret here"


def test_evidence_only_reaches_rag_tasks():
    from realign.rewrite import messages_for

    def rec(cat):
        return {"id": 1, "items": [{"from": "human", "value": "q", "category": cat, "evidence": ["EV-TEXT"]},
                                   {"from": "gpt", "value": "a"}]}

    rag, other = sorted(RAG_TASKS)[0], next(t for t in REWRITE_TASKS if t not in RAG_TASKS)
    assert "EV-TEXT" in messages_for(rec(rag))[1]["content"]
    assert "EV-TEXT" not in messages_for(rec(rag), use_evidence=False)[1]["content"]
    assert "EV-TEXT" not in messages_for(rec(other))[1]["content"]


def test_chat_rendering_falls_back_without_a_template():
    from realign.llm.vllm_engine import render_chat

    class Plain:
        chat_template = None

    text = render_chat(Plain(), [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert text == "System: S\n\nUser: U\n\nAssistant:"
