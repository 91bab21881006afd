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
    ("Done.<eos>", "<eos>"), ("Done.<|eot|>", "<|eot|>"), ("Done.<|END_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>"),
    ("x<|header_start|>user<|header_end|>", "<|header_start|>"), ("a <|channel|>final", "<|channel|>"),
    ("a || b and x <| y |> z", None),
])
def test_template_tokens(text, token):
    assert template_token(text) == token


@pytest.mark.parametrize("end", ["<eos>", "<|eot|>", "<|eot_id|>", "<|END_OF_TURN_TOKEN|>", "</s>", "<end_of_turn>",
                                 "<|end|>", "<end_of_turn>\n<eos>", "<|im_end|>\n<|endoftext|>", "<|return|>",
                                 "<|eom_id|>", "<|end_of_text|>"])
def test_every_families_end_tokens_trailing_a_reply_are_stripped(end):
    assert read_reply(f"Revised response: - A.{end}\n", "A.") == (REPLY_OK, "- A.")


def test_refusal_phrase_names_the_phrase():
    assert refusal_phrase("Well.\nI'm  sorry, but I cannot.") == "I'm sorry, but I"
    assert refusal_phrase(EGG) is None


# ---------------------------------------------------------------- numbers in every script and in words

from realign.facts import new_facts  # noqa: E402
from realign.textchecks import final_number, numbers  # noqa: E402


@pytest.mark.parametrize("text, values", [
    ("咖啡粉用冷水浸泡12小时，然后过滤。", [12]),            # glued to CJK text
    ("لمدة ١٨ ساعة", [18]), ("for １８ hours", [18]),      # Arabic-Indic and fullwidth digits
    ("3k, 50%, $5, 3/4 cup, 2 million, 3万", [3000, 50, 5, 0.75, 2e6, 3e4]),
    ("twelve, twenty-five, two million", [12, 25, 2e6]),
    ("H2O, mp3, v1.5.3, B12", []),                         # inside words and version strings
    ("浸泡十二小时，约三万五千人，二〇二四年，两个，一百零五", [12, 35000, 2024, 2, 105]),   # Chinese numerals
    ("这十分重要，千万不要，万一下雨，统一，一起，一些", []),          # idioms and words, not numbers
])
def test_numbers_in_every_script(text, values):
    assert [n.value for n in numbers(text)] == values


def test_final_number_reads_what_facts_read():
    assert final_number("So the total is 1k.") == 1000 and final_number("The answer is twelve.") == 12
    assert final_number("pages 3-5") == 5 and final_number("\\boxed{-5}") == -5
    assert final_number("Final answer: 3/4 of the cake") == 0.75


def test_a_changed_number_is_seen_in_every_script(tmp_path, script):
    """turn3/numbers_glued: 12 -> 18 in Arabic-Indic, fullwidth and CJK-glued digits and in words
    is rejected; 12 -> ١٢ (the same number) is kept."""
    cases = ROOT.parent / "shared" / "cases" / "turn3"
    out, rep = tmp_path / "final.json", tmp_path / "report.json"
    r = script("rewrite_data_selection.py", "--input_original_data_path", cases / "numbers_glued_orig.json",
               "--input_rewrite_data_path", cases / "numbers_glued_merged.json", "--output_path", out,
               "--report_path", rep)
    assert r.returncode == 0, r.stderr
    import json
    decisions = {d["id"]: d for d in json.loads(rep.read_text())["decisions"]}
    assert {rid for rid, d in decisions.items() if d["accepted"]} == {"d3"}
    assert "'18'" in decisions["d5"]["reason"] and "'twelve'" in decisions["d6"]["reason"]


def test_a_number_changed_in_chinese_numerals_is_seen_and_the_same_number_in_digits_is_kept():
    """breakit-20 F7: 十二小时 -> 十八小时 was accepted; 十二 and 12 are the same number."""
    original = "把咖啡粉用冷水浸泡十二小时，然后过滤。"
    assert sel.numbers_kept(pair(original, "1. 用冷水浸泡咖啡粉十八小时。\n2. 过滤。")) is not None
    assert sel.numbers_kept(pair(original, "1. 用冷水浸泡咖啡粉12小时。\n2. 过滤。")) is None
    assert sel.numbers_kept(pair(original, "1. 用冷水浸泡咖啡粉十二小时。\n2. 这一步十分重要：然后过滤。")) is None


def test_number_words_must_survive_but_a_rewrite_may_count_its_parts():
    original = "Steep the coffee for twelve hours."
    assert sel.numbers_kept(pair(original, "1. Steep the coffee for eighteen hours.")) is not None
    assert sel.numbers_kept(pair(original, "1. Steep the coffee for 12 hours.")) is None
    assert new_facts("There are two ways: flexbox and grid.", ["Use flexbox or grid."]) == []


def test_the_prompt_wording_is_the_rewrite_prompts_only():
    """Other prompts living in realign.prompts (the classifier's) are not what a rewrite echoes:
    their labels and lines would reject faithful rewrites."""
    from realign.textchecks import prompt_wording
    w = prompt_wording()
    other = prompts.TASKS_SYSTEM_PROMPT if hasattr(prompts, "TASKS_SYSTEM_PROMPT") else prompts.PROMPT_INPUT_FOR_TASK_CLS
    import re as _re
    own = "\n".join(prompts.REWRITE_PROMPT_PARTS).lower()
    for label in _re.findall(r"^([A-Z][a-z]+(?: [a-z]+){0,3}):", other, _re.M):
        if label.lower() + ":" not in own:
            assert label.lower() + ":" not in w.phrases and not (w.line_labels and w.line_labels.search(label.lower() + ":"))
    assert echoed_prompt("revised response: x") and "revised response:" in w.phrases


def test_a_rewrite_that_copies_the_question_as_a_line_is_rejected():
    """newcomer-final #1: the demo's houseplant rewrite opened with the question word for word."""
    q = "Can you recommend some houseplants that are hard to kill?"
    original = "Snake plants and pothos survive low light and irregular watering."
    assert sel.question_repeated(pair(original, f"{q}\n1. Snake plant: survives low light.\n2. Pothos: survives "
                                                "irregular watering.", question=q))
    assert sel.question_repeated(pair(original, f"**Question:** {q.lower()}\n\nSnake plants and pothos.", question=q))
    assert not sel.question_repeated(pair(original, "## Hard-to-kill houseplants\n1. Snake plant\n2. Pothos",
                                          question=q))
    assert not sel.question_repeated(pair(f"{q}\n{original}", f"{q}\n- {original}", question=q))  # the original did too
    assert not sel.question_repeated(pair("Yes.", "Yes.\nSummarise this", question="Summarise this"))  # too short


def test_code_that_loses_its_indentation_is_no_longer_the_same_code():
    """newcomer-final #2: a rewrite put '- ' before every line, fences included; the code block is gone."""
    original = "Fixed:\n```python\ndef add(a, b):\n    return a + b\n```\nIt used to subtract."
    broken = "- Fixed:\n- ```python\n- def add(a, b):\n- return a + b\n- ```\n- It used to subtract."
    assert "return a + b" in sel.code_consistency(pair(original, broken))
    listed = "1. The fix:\n\n   ```python\n   def add(a, b):\n       return a + b\n   ```\n2. It used to subtract."
    assert sel.code_consistency(pair(original, listed)) is None   # indented inside a list item: still code
    tabs = "## Fix\n```python\ndef add(a, b):\n\treturn a + b\n```\nIt used to subtract."
    assert sel.code_consistency(pair(original, tabs)) is None
