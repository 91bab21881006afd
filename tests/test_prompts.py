"""The rewrite prompt, the reply parser, token lengths and secret scrubbing."""

import json
import os
import subprocess
import sys

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


def hf_cache_with(tmp_path, repo, tokenizer):
    """A Hugging Face cache folder (HF_HUB_CACHE layout) holding `repo`'s tokenizer.json, as a
    machine that once downloaded the model has it."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = tmp_path / "hub" / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    tokenizer.save(str(snapshot / "tokenizer.json"))
    return tmp_path / "hub"


def test_a_hub_model_name_is_read_from_the_hf_cache_and_fails_in_one_line_when_absent(tmp_path):
    """The spec's `--tokenizer_path meta-llama/Llama-2-7b-chat-hf`: a Hub name, not a local path.
    Offline (no network in tests), a cached tokenizer.json is used; a missing one is one line.
    In a child process: huggingface_hub reads HF_HUB_CACHE and HF_HUB_OFFLINE when imported."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"hello": 0, "world": 1, "[UNK]": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    env = {**os.environ, "HF_HUB_CACHE": str(hf_cache_with(tmp_path, "meta-llama/Llama-2-7b-chat-hf", tok)),
           "HF_HUB_OFFLINE": "1"}
    code = ("import sys\nfrom realign.errors import UsageError\nfrom realign.lengths import make_length_fn\n"
            "print(make_length_fn('meta-llama/Llama-2-7b-chat-hf')('hello world hello'))\n"
            "try:\n    make_length_fn('meta-llama/Llama-2-13b-chat-hf')\nexcept UsageError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    count, message = r.stdout.splitlines()
    assert count == "3"
    assert message.startswith("--tokenizer_path meta-llama/Llama-2-13b-chat-hf: not a local path") and "HF_TOKEN" in message


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


# ---------------------------------------------------------------- reading replies strictly

from realign.llm.base import Completion, completion_from_choice  # noqa: E402
from realign.prompts import (FORMAT_DOES_NOT_FIT, KEEP_MARKER, REPLY_BAD, REPLY_KEEP, REPLY_OK,  # noqa: E402
                             REPLY_REFUSED, REPLY_TRUNCATED, read_reply)

EGG = "Boil the egg for nine minutes, then cool it in cold water and peel it."
LIST = "1. Boil the egg for nine minutes.\n2. Cool it in cold water and peel it."


@pytest.mark.parametrize("reply", [
    f"<think>\nRevised response: DRAFT\n</think>\n\nReasoning: a list.\nRevised response: {LIST}",
    f"<THINK>draft one</THINK><think>Revised response: DRAFT</think>Revised response: {LIST}",
    f"The template opened the block. Revised response: DRAFT\n</think>\nRevised response: {LIST}",
    f"<thinking>\nRevised response: DRAFT\n</thinking>\nRevised response: {LIST}",
    f"```\nReasoning: a list.\n\nRevised response: {LIST}\n```",
    f"```markdown\nReasoning: a list.\nRevised response: {LIST}\n```\n",
    f"Reasoning: a list.\n\nRevised response:\n```\n{LIST}\n```",
    f"<think>Revised response: DRAFT</think>\n```\nReasoning: a list.\nRevised response: {LIST}\n```",
])
def test_think_blocks_and_whole_fences_are_removed(reply):
    assert read_reply(reply, EGG) == (REPLY_OK, LIST)


def test_a_fence_is_kept_when_the_original_has_one():
    original = "```\nprint('hi')\n```"
    assert read_reply(f"Revised response:\n```\nprint('hi')\n```", original) == (REPLY_OK, original)


def test_think_tags_the_original_talks_about_are_left_alone():
    original = "Wrap the model's reasoning in <think> and </think> tags."
    assert read_reply(f"Revised response: {original}", original) == (REPLY_OK, original)


@pytest.mark.parametrize("reply, reason", [
    ("<think>\nThe user wants a list. Revised response: DRAFT", "only a <think> block"),
    ("<think>all thought</think>\n  ", "only a <think> block"),
    ("", "empty reply"),
    (None, "empty reply"),
    ("   \n", "empty reply"),
    ("Reasoning: x\nRevised response: DRAFT\nHmm, better:\nRevised response: final", "2 'Revised response:' parts"),
    ("Reasoning: list.\nRevised response: the complete rewritten answer, with nothing after it.", "echoes"),
    ("Revised response: Reply in exactly two parts, in this order and with these labels:\nReasoning: two or three "
     "sentences naming what the original lacks", "echoes"),
    ("Sure, here it is: 1. Boil. 2. Peel.", "no 'Revised response:' part"),
])
def test_unusable_replies_say_why(reply, reason):
    verdict, why = read_reply(reply, EGG)
    # an empty reply is read like a cut (retried once at most), the rest are bad
    assert verdict == (REPLY_TRUNCATED if reason == "empty reply" else REPLY_BAD) and reason in why


@pytest.mark.parametrize("finish, used", [("stop", True), ("STOP", True), ("end_turn", True), (None, True),
                                          ("eos", True), ("error", False), ("abort", False), ("OTHER", False),
                                          ("incomplete", False), ("tool_calls", False), ("stream ended early", False)])
def test_only_a_natural_stop_is_a_finished_reply(finish, used):
    verdict, why = read_reply(f"Revised response: {LIST}", EGG, finish_reason=finish)
    assert (verdict == REPLY_OK) == used, why
    assert used or why.startswith("cut by the server (finish_reason")


def test_a_cut_at_the_token_limit_is_never_used():
    verdict, why = read_reply(f"Revised response: {LIST[:20]}", EGG, finish_reason="length", max_tokens=64)
    assert (verdict, why) == (REPLY_TRUNCATED, "truncated at --target_length 64")


@pytest.mark.parametrize("reply, refusal", [
    (None, "I'm sorry, I cannot assist with that request because it breaks a rule that is long enough to cut"),
    ("Reasoning: I should not.\n\nRevised response: I'm sorry, but I can't help with that request.", None),
    ("Revised response: I\u2019m sorry, I cannot provide that.", None),
    ("Revised response: As an AI language model, I cannot answer this.", None),
    ("Revised response: I can't assist with that.", None),
])
def test_refusals_are_named_and_quoted(reply, refusal):
    verdict, why = read_reply(reply, EGG, refusal=refusal)
    assert verdict == REPLY_REFUSED and why.startswith("the model refused: ")
    assert ("I'm sorry" in why or "I cannot" in why or "As an AI" in why or "I can't" in why) and len(why) < 100


def test_a_refusal_the_original_already_made_is_a_faithful_rewrite():
    original = "I'm sorry, but I can't help with making weapons."
    assert read_reply(f"Revised response: {original}", original) == (REPLY_OK, original)


@pytest.mark.parametrize("reply", ["I'm sorry to hear that. Here is how to cope: rest.",
                                   "Sorry for the wait! The answer is 4."])
def test_sympathy_is_not_a_refusal(reply):
    assert read_reply(f"Revised response: {reply}", "x")[0] == REPLY_OK


@pytest.mark.parametrize("reply", [KEEP_MARKER, "keep original", "**KEEP ORIGINAL**", "`KEEP ORIGINAL`.",
                                   "Reasoning: this is a poem, not a plan.\n\nRevised response: KEEP ORIGINAL",
                                   "<think>Revised response: DRAFT</think>\nKEEP ORIGINAL\n"])
def test_the_valve_line_keeps_the_original(reply):
    assert read_reply(reply, EGG) == (REPLY_KEEP, FORMAT_DOES_NOT_FIT)


def test_the_valve_is_a_line_of_its_own_not_a_phrase():
    reply = "Reasoning: no need to keep original wording.\nRevised response: " + LIST
    assert read_reply(reply, EGG) == (REPLY_OK, LIST)


def test_the_prompt_offers_the_valve_in_our_words():
    _, user = build_rewrite_messages(REWRITE_TASKS[0], "q", "a")
    assert f"the single line {KEEP_MARKER} and nothing else" in user["content"]


@pytest.mark.parametrize("choice, expected", [
    ({"message": {"content": "hi"}, "finish_reason": "stop"}, Completion("hi", "stop")),
    ({"message": {"content": "hi", "reasoning_content": "Revised response: DRAFT"}, "finish_reason": "length"},
     Completion("hi", "length")),
    ({"message": {"content": None, "refusal": "I can't."}, "finish_reason": "stop"}, Completion("", "stop", "I can't.")),
    ({"message": {"content": None, "refusal": None}}, Completion("", None)),
    ({"text": "cut", "finish_reason": "max_tokens"}, Completion("cut", "length")),
    ({"text": "cut", "stop_type": "limit"}, Completion("cut", "length")),   # llama.cpp's native shape
    ({"text": "cut", "finish_reason": None, "truncated": True}, Completion("cut", "length")),
])
def test_completions_carry_how_generation_ended(choice, expected):
    assert completion_from_choice(choice, chat="message" in choice) == expected
