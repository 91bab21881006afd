"""realign.textchecks: the one home of every text check, and reformat's reader and the filter
rules agreeing on what they find."""

import importlib.util

import pytest

from conftest import ROOT
from realign import prompts
from realign.lengths import approx_tokens
from realign.prompts import REPLY_BAD, REPLY_OK, REPLY_REFUSED, read_reply
from realign.selection import Pair
from realign.textchecks import (echoed_prompt, has_code, refusal_phrase, template_token, unwrap_prose_fence,
                                whole_fence)

spec = importlib.util.spec_from_file_location("sel", ROOT / "rewrite_data_selection.py")
sel = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sel)

EGG = "Boil the egg for nine minutes, then cool it in cold water and peel it."


def pair(original, rewrite, question="How do I boil an egg?"):
    return Pair("x", question, original, rewrite, "open_qa", approx_tokens)


REFUSALS = ["I'm sorry, but I can't help with that request.", "I\u2019m sorry, I cannot provide that.",
            "As an AI language model, I cannot answer this.", "I can't assist with that.",
            "I won't help with this.", "I'm unable to provide that information.",
            "Here is the recipe. However, as an AI, I cannot taste it."]
NOT_REFUSALS = ["I'm sorry to hear that. Here is how to cope: rest.", "Sorry for the wait! The answer is 4.",
                EGG, "You cannot help noticing the colour change."]


@pytest.mark.parametrize("text", REFUSALS + NOT_REFUSALS)
def test_reformat_and_the_filter_agree_on_refusals(text):
    reader = read_reply(f"Reasoning: x.\nRevised response: {text}", EGG)[0]
    rule = sel.refusal_added(pair(EGG, text))
    assert (reader == REPLY_REFUSED) == (rule is not None) == (text in REFUSALS)


ECHOES = ["Keep every fact, number, name, piece of code and the final answer of the original.",
          "Do not pad the list with generic words.",
          "[Original answer]\n" + EGG,
          "Boil it.\nReasoning: it needed steps.",
          EGG + " Where it and the layout disagree, follow the system prompt."]


@pytest.mark.parametrize("text", ECHOES + [EGG, "1. Boil the egg.\n2. Cool and peel it."])
def test_reformat_and_the_filter_agree_on_prompt_echoes(text):
    reader = read_reply(f"Reasoning: x.\nRevised response: {text}", EGG)[0]
    rule = sel.prompt_echo(pair(EGG, text))
    assert (reader == REPLY_BAD) == (rule is not None) == (text in ECHOES)


def test_the_echo_reason_quotes_the_prompt_not_the_answer():
    answer = "Boil the egg for nine minutes. Keep every fact, number, name, piece of code and the final answer."
    verdict, why = read_reply(f"Revised response: {answer}", EGG)
    assert verdict == REPLY_BAD and "boil" not in why.lower()
    assert "keep every fact, number" in why.lower() or "keep every fact number" in why.lower()


def test_a_prompt_quoted_by_the_original_is_not_an_echo():
    original = "Our editors follow one rule: keep every fact, number, name, piece of code and the final answer."
    assert echoed_prompt(original + " Always.", exclude=original) is None
    assert read_reply(f"Revised response: **Rule:** {original}", original)[0] == REPLY_OK


def test_the_prompt_wording_includes_every_section_label_we_send():
    _, user = prompts.build_rewrite_messages("open_qa", "Q?", "A.", evidence=["E."], system="Be brief.")
    for label in ("[Request]", "[Original answer]", "[Evidence]"):
        assert label in user["content"] and echoed_prompt(f"{label}\nA.") == label.lower()


@pytest.mark.parametrize("text, expected", [
    ("```\nplain words\n```", ("", "plain words")),
    ("```markdown title\n# Head\n```\n", ("markdown", "# Head")),
    ("```python\nprint(1)\n```", ("python", "print(1)")),
    ("```\na\n```\nand\n```\nb\n```", None),
    ("no fence", None),
])
def test_whole_fence(text, expected):
    assert whole_fence(text) == expected


def test_the_reader_and_the_code_rule_read_one_fence():
    fenced = "```\n1. Boil the egg.\n2. Peel it.\n```"
    assert read_reply(f"Revised response:\n{fenced}", EGG) == (REPLY_OK, "1. Boil the egg.\n2. Peel it.")
    assert unwrap_prose_fence(fenced) == "1. Boil the egg.\n2. Peel it." and sel.code_consistency(pair(EGG, fenced)) is None
    code = "```python\ndef f(x):\n    return x\n```"
    assert unwrap_prose_fence(code) == code and has_code(code)


@pytest.mark.parametrize("text, token", [
    ("The answer is 4.<|im_end|>", "<|im_end|>"), ("Done.<|endoftext|>", "<|endoftext|>"),
    ("Done.<|eot_id|>", "<|eot_id|>"), ("Done.<end_of_turn>\n", "<end_of_turn>"), ("Done.</s>", "</s>"),
    ("Use <b>bold</b> and a | b.", None), ("x < y and [1, 2]", None),
])
def test_template_tokens(text, token):
    assert template_token(text) == token


def test_refusal_phrase_names_the_phrase():
    assert refusal_phrase("Well.\nI'm  sorry, but I cannot.") == "I'm sorry, but I"
    assert refusal_phrase(EGG) is None
