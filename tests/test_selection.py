"""rewrite_data_selection.py: each rule, the rule sets, and the step end to end."""

import importlib.util
import json
import re

import pytest

from conftest import ROOT, make_record, write_json
from realign.lengths import approx_tokens
from realign.selection import ACCEPT, Pair
from realign.textchecks import final_number, has_code

spec = importlib.util.spec_from_file_location("sel", ROOT / "rewrite_data_selection.py")
sel = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sel)


def pair(original, rewrite, cat="open_qa", question="q?"):
    return Pair("x", question, original, rewrite, cat, approx_tokens)


LONG = "The capital of France is Paris, a city on the Seine with about two million people."


def test_length_ratio():
    assert sel.length_ratio(pair(LONG, "Paris.")).startswith("rewrite is <= 0.5x")
    assert sel.length_ratio(pair(LONG, LONG + " It is also the largest city.")) is None


def test_code_consistency_both_ways():
    code = "```python\nprint(1)\n```"
    assert sel.code_consistency(pair(code, "Just print one.")) == "the original has code, the rewrite does not"
    assert sel.code_consistency(pair("Print one.", code)) == "the rewrite adds code the original did not have"
    assert sel.code_consistency(pair("def f(x):\n    return x", code)) is None
    assert has_code("def f(x):\n  y = 1\n  return y") and not has_code("define and return home")


def test_exam_original_length():
    assert sel.exam_original_too_short(pair("B", "The answer is B.", cat="exam_problem_solving_tutor"))
    assert sel.exam_original_too_short(pair("B", "The answer is B.", cat="open_qa")) is None
    assert sel.exam_original_too_short(pair("B, since x", "...", cat="math_puzzles")) is None


def test_true_false_always_accepted():
    assert sel.true_false_original(pair("True.", "x")) == ACCEPT
    assert sel.true_false_original(pair("Truely", "x")) is None


def test_single_char_answer_must_stand_alone():
    assert sel.single_char_answer_kept(pair("C", "The answer is C.")) is None
    assert sel.single_char_answer_kept(pair("C", "Calcium carbonate wins")).startswith("the original answer 'C'")


def test_template_leak_default_label_and_planning():
    assert sel.prompt_template_leak(pair("### Instruction: hi", "x"))
    assert sel.not_default(pair("a", "b", cat="default")) == "task is default"
    assert sel.no_leftover_label(pair("a", "Revised Response: b"))
    own = "Draft: teh cat.\nRevised response: The cat."  # the original's own label is data
    assert sel.no_leftover_label(pair(own, "- Draft: teh cat.\n- Revised response: The cat.")) is None
    assert sel.no_leftover_label(pair(own, "Revised response: - Draft.\nRevised response: The cat."))
    assert sel.planning_needs_a_plan(pair("a", "b", cat="planning", question="Organise my week"))
    assert sel.planning_needs_a_plan(pair("a", "b", cat="planning", question="Plan my week")) is None


@pytest.mark.parametrize("text,number", [
    ("So she has 12 apples.\n#### 12", 12), ("x = 3/4, so the answer is 0.75 m", 0.75),
    ("Total: 1,200 dollars", 1200), ("\\boxed{-5} and then 7 more words", -5), ("no digits", None),
])
def test_final_number(text, number):
    assert final_number(text) == number


def test_final_answer_kept_for_math_only():
    orig = "3 + 4 = 7. The answer is 7."
    assert sel.final_answer_kept(pair(orig, "Step 1: add.\nFinal answer: 7", cat="math_puzzles")) is None
    assert "7 -> 8" in sel.final_answer_kept(pair(orig, "Final answer: 8", cat="math_puzzles"))
    assert sel.final_answer_kept(pair(orig, "Final answer: 8", cat="open_qa")) is None


def _run(tmp_path, script, rules="open_platypus"):
    originals = [
        make_record(0, "What is the capital of France?", LONG, cat="open_qa"),
        make_record(1, "2+2?", "2 + 2 = 4. The answer is 4.", cat="math_puzzles"),
        make_record(2, "Hi there", "Hello! How can I help?", cat="default"),
        make_record(3, "Which is a noble gas? A) O B) Ne", "B", cat="exam_problem_solving_tutor"),
    ]
    rewrites = json.loads(json.dumps(originals))
    rewrites[0]["items"][1]["value"] = "**Paris.** " + LONG
    rewrites[1]["items"][1]["value"] = "Add the numbers: 2 + 2.\nFinal answer: 5"
    rewrites[3]["items"][1]["value"] = "Neon is a noble gas, so the answer is B."
    o = write_json(tmp_path / "orig.json", originals)
    w = write_json(tmp_path / "rew.json", rewrites)
    out, rep = tmp_path / "final.json", tmp_path / "report.json"
    r = script("rewrite_data_selection.py", "--input_original_data_path", o, "--input_rewrite_data_path", w,
               "--output_path", out, "--report_path", rep, "--rules", rules)
    return r, out, rep


def test_step_end_to_end(tmp_path, script):
    r, out, rep = _run(tmp_path, script)
    assert r.returncode == 0, r.stderr
    final = json.loads(out.read_text())
    assert [f["tag"] for f in final] == ["rewrite", "original", "original", "original"]
    assert final[0]["items"][1]["value"].startswith("**Paris.**")
    assert final[1]["items"][1]["value"] == "2 + 2 = 4. The answer is 4."
    report = json.loads(rep.read_text())
    assert report["accepted"] == 1 and report["rejected"] == 2 and report["not_rewritten"] == 1
    assert report["rejected_by_rule"] == {"final_answer_kept": 1, "exam_original_too_short": 1}
    assert "selected 4 records" in r.stdout


def test_rules_none_accepts_every_rewrite(tmp_path, script):
    r, out, _ = _run(tmp_path, script, rules="none")
    assert [f["tag"] for f in json.loads(out.read_text())] == ["rewrite", "rewrite", "original", "rewrite"]


def test_id_mismatch_is_exit_2(tmp_path, script):
    o = write_json(tmp_path / "o.json", [make_record(0), make_record(1)])
    w = write_json(tmp_path / "w.json", [make_record(0)])
    r = script("rewrite_data_selection.py", "--input_original_data_path", o, "--input_rewrite_data_path", w,
               "--output_path", tmp_path / "f.json")
    assert r.returncode == 2 and "1 ids of" in r.stderr and "missing (1)" in r.stderr
    assert not (tmp_path / "f.json").exists()


def test_same_ids_with_other_questions_are_exit_2(tmp_path, script):
    o = write_json(tmp_path / "o.json", [make_record(0, "q0"), make_record(1, "q1")])
    w = write_json(tmp_path / "w.json", [make_record(0, "q0"), make_record(1, "another dataset's q1")])
    r = script("rewrite_data_selection.py", "--input_original_data_path", o, "--input_rewrite_data_path", w,
               "--output_path", tmp_path / "f.json")
    assert r.returncode == 2 and "1 ids have a different question" in r.stderr and "(1)" in r.stderr
    assert not (tmp_path / "f.json").exists()


@pytest.mark.parametrize("flag", ["--output_path", "--report_path"])
def test_outputs_may_not_overwrite_inputs(tmp_path, script, flag):
    o = write_json(tmp_path / "o.json", [make_record(0)])
    w = write_json(tmp_path / "w.json", [make_record(0)])
    before = o.read_text()
    args = {"--output_path": tmp_path / "f.json", flag: o}
    r = script("rewrite_data_selection.py", "--input_original_data_path", o, "--input_rewrite_data_path", w,
               *[x for kv in args.items() for x in kv])
    assert r.returncode == 2 and "overwrite the input" in r.stderr and o.read_text() == before


def test_report_dir_that_is_a_file_is_exit_2(tmp_path, script):
    o = write_json(tmp_path / "o.json", [make_record(0)])
    r = script("rewrite_data_selection.py", "--input_original_data_path", o, "--input_rewrite_data_path", o,
               "--output_path", tmp_path / "f.json", "--report_dir", o)
    assert r.returncode == 2 and "--report_dir is a file" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "f.json").exists()


def test_missing_tokenizer_folder_is_exit_2(tmp_path, script):
    o = write_json(tmp_path / "o.json", [make_record(0)])
    r = script("rewrite_data_selection.py", "--input_original_data_path", o, "--input_rewrite_data_path", o,
               "--output_path", tmp_path / "f.json", "--tokenizer_path", tmp_path / "no" / "such")
    assert r.returncode == 2 and "--tokenizer_path" in r.stderr and "not found" in r.stderr
    assert not (tmp_path / "f.json").exists()


# ---------------------------------------------------------------- faithfulness rules

FAITHFUL_RULES = {"empty_original", "refusal_added", "prompt_echo", "no_leftover_label", "same_rewrite_many_records",
                  "truncated", "final_answer_kept", "new_facts", "numbers_kept"}


def test_every_preset_but_none_has_the_faithfulness_rules():
    for name, rules in sel.RULESETS.items():
        names = {r.__name__ for r in rules}
        assert names >= FAITHFUL_RULES if name != "none" else not names, name


def test_faithfulness_rules_run_before_an_outright_accept():
    rules = [r.__name__ for r in sel.RULESETS["open_platypus"]]
    assert max(rules.index(r) for r in FAITHFUL_RULES) < rules.index("true_false_original")


TEA_Q = "How long should I steep cold brew tea?"
TEA = "Steep it in the fridge for 12 to 18 hours, then strain it."


@pytest.mark.parametrize("rewrite,flagged", [
    ("Steep it in the fridge for **12 to 24 hours**, then strain it.", ["24"]),
    ("1. Steep it in the fridge for 12 to 18 hours.\n2. Strain it.\n\nBudget: $50", ["$50"]),
    ("Steep it for 12 to 18 hours, as Ada Lovelace advised in 1843.", ["Ada", "Lovelace", "1843"]),
    ("Steep it for 12 to 18 hours. See https://tea.example.org/guide or write to tea@example.org.",
     ["https://tea.example.org/guide", "tea@example.org"]),
])
def test_new_facts_names_what_was_invented(rewrite, flagged):
    reason = sel.new_facts(pair(TEA, rewrite, question=TEA_Q))
    assert reason and reason.marks == tuple(flagged)
    assert all(repr(w) in reason for w in flagged[:3])


@pytest.mark.parametrize("original,rewrite", [
    (TEA_Q + " " + TEA, "## Cold Brew Tea\n\n1. **Steep** it in the fridge for 12 to 18 hours.\n2. **Strain** it.\n\n"
          "Step 3: Enjoy."),
    ("The city has 1000 residents and grew 5 percent.", "**Residents:** 1,000\n\n- Growth: 5%"),
    ("Paris has about two million people.", "Paris has about 2,000,000 people."),
    ("Sales reached 1,500 units.", "| Metric | Value |\n|---|---|\n| Units Sold | 1.5k |"),
    ("Use a for loop over the list and print each item.",
     "Loop over the list:\n\n```python\nfor Item in [1, 2, 3]:\n    print(Item)\n```"),
    ("paris is on the seine.", "Paris is on the Seine. In Paris, the Seine flows west."),
])
def test_new_facts_ignores_layout(original, rewrite):
    assert sel.new_facts(pair(original, rewrite, question="Tell me.")) is None


def test_new_facts_lets_math_show_its_arithmetic():
    q, orig = "A box holds 12 eggs. How many eggs are in 3 boxes?", "There are 36 eggs."
    rewrite = "Step 1: 12 eggs per box.\nStep 2: 3 boxes x 12 = 36.\n\nFinal answer: 36"
    assert sel.new_facts(pair(orig, rewrite, cat="math_puzzles", question=q)) is None
    assert sel.new_facts(pair(orig, rewrite.replace("12 = 36", "12 = 36, plus 7 spare"), cat="math_puzzles",
                              question=q)).marks == ("7",)


def test_new_facts_reads_the_evidence():
    orig, rewrite = "Kilimanjaro.", "Kilimanjaro, in Tanzania, is 5,895 m high."
    assert sel.new_facts(pair(orig, rewrite, question="Tallest mountain in Africa?")).marks == ("Tanzania", "5,895")
    p = pair(orig, rewrite, question="Tallest mountain in Africa?")
    p.evidence = ("Mount Kilimanjaro in Tanzania rises 5895 metres.",)
    assert sel.new_facts(p) is None


SHORT_ANSWERS = ["Paris.", "Four.", "Yes, water boils at 100 degrees Celsius at sea level."]


@pytest.mark.parametrize("original", SHORT_ANSWERS)
def test_refusal_added(original):
    assert "declines or apologises" in sel.refusal_added(pair(original, "I'm sorry, but I can't help with that request."))
    assert "declines" in sel.refusal_added(pair(original, "As an AI language model, I cannot answer that."))
    assert sel.refusal_added(pair(original, "**Answer:** " + original)) is None


def test_refusal_kept_from_the_original_is_not_added():
    orig = "I'm sorry, but I can't help with making weapons."
    assert sel.refusal_added(pair(orig, "**I'm sorry, but I can't help** with making weapons.")) is None


def _prompt_lines():
    """Lines of our rewrite prompt long enough to be an echo, read from realign.prompts."""
    from realign import prompts
    from realign.textchecks import ECHO_WORDS
    text = prompts.SYSTEM_PROMPT + "\n" + prompts.REWRITE_TEMPLATE
    lines = [re.sub(r"\{[a-z_]*\}", "", line).strip() for line in text.splitlines()]
    return [line for line in lines if len(line.split()) > ECHO_WORDS]


def test_prompt_echo_catches_every_line_of_our_prompt():
    lines = _prompt_lines()
    assert len(lines) >= 5
    for line in lines:
        assert sel.prompt_echo(pair(LONG, LONG + "\n\n" + line)), line
    assert sel.prompt_echo(pair(LONG, "[Original answer]\n" + LONG)) == "the rewrite echoes our prompt: '[original answer]'"
    assert sel.prompt_echo(pair(LONG, "Reasoning: it lacked a heading.\n\n" + LONG))
    tail = " ".join(_prompt_lines()[-1].split()[-ECHO_TAIL:])
    assert sel.prompt_echo(pair(LONG, tail))


ECHO_TAIL = 8


def test_prompt_echo_leaves_answers_alone():
    assert sel.prompt_echo(pair(LONG, "## Answer\n\n" + LONG + "\n\nThe reasoning: it is the seat of government.")) is None
    quoted = _prompt_lines()[0]
    assert sel.prompt_echo(pair(quoted, "> " + quoted, question="Quote the line.")) is None


@pytest.mark.parametrize("rewrite", [
    LONG + "\n\nIt is also known for the",
    LONG + "\n\n- museums,",
    LONG + "\n\n```python\nprint('Paris')\n",
    "The capital is Paris.\nParis sits on the Seine and has about two million people living",
])
def test_truncated(rewrite):
    assert sel.truncated(pair(LONG, rewrite))


@pytest.mark.parametrize("rewrite", [
    "**Paris**\n\n" + LONG, "- Paris\n- Seine\n- two million people", "## Capital\nParis",
    "```python\nprint('Paris')\n```", "| city | river |\n|---|---|\n| Paris | Seine |",
])
def test_not_truncated(rewrite):
    assert sel.truncated(pair(LONG, rewrite)) is None


def test_truncated_original_is_not_held_against_the_rewrite():
    assert sel.truncated(pair("Paris has about two million people and the", "Paris has about two million people and the")) is None


def test_empty_original():
    assert "empty" in sel.empty_original(pair("  ", "Paris, founded in 250 BC."))
    assert sel.empty_original(pair("Paris.", "**Paris.**")) is None


def test_code_consistency_ignores_a_fence_around_prose():
    prose = "Paris is the capital of France."
    assert sel.code_consistency(pair(prose, "```\n" + prose + "\n```")) is None
    assert sel.code_consistency(pair(prose, "```markdown\n**Paris** is the capital.\n```")) is None
    assert sel.code_consistency(pair(prose, "```python\ndef capital():\n    return 'Paris'\n```"))


def test_same_rewrite_for_many_records_rejects_them_all(tmp_path, script):
    originals = [make_record(i, f"Question {i}?", f"Answer number {i} is here.", cat="open_qa") for i in range(3)]
    originals += [make_record(3, "Same?", "Same answer.", cat="open_qa"), make_record(4, "Same?", "Same answer.", cat="open_qa")]
    rewrites = json.loads(json.dumps(originals))
    for rec in rewrites[:3]:
        rec["items"][1]["value"] = "Here is the answer."
    rewrites[1]["items"][1]["value"] = "**Here is the  answer.**"  # the same text once normalised
    for rec in rewrites[3:]:
        rec["items"][1]["value"] = "**Same answer.**"             # same original: not a duplicate rewrite
    o, w = write_json(tmp_path / "o.json", originals), write_json(tmp_path / "w.json", rewrites)
    r = script("rewrite_data_selection.py", "--input_original_data_path", o, "--input_rewrite_data_path", w,
               "--output_path", tmp_path / "f.json", "--report_path", tmp_path / "r.json", "--rules", "alpaca")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    verdicts = {d["id"]: (d["accepted"], d["rule"]) for d in report["decisions"]}
    assert verdicts == {0: (False, "same_rewrite_many_records"), 1: (False, "same_rewrite_many_records"),
                        2: (False, "same_rewrite_many_records"), 3: (True, None), 4: (True, None)}
    assert "2 other record(s)" in report["decisions"][0]["reason"]


def test_new_facts_marks_reach_the_decisions(tmp_path, script):
    orig = [make_record(0, TEA_Q, TEA, cat="how_to_generation")]
    new = json.loads(json.dumps(orig))
    new[0]["items"][1]["value"] = "1. Steep for 12 to 24 hours.\n2. Strain it through a Hario filter."
    o, w = write_json(tmp_path / "o.json", orig), write_json(tmp_path / "w.json", new)
    r = script("rewrite_data_selection.py", "--input_original_data_path", o, "--input_rewrite_data_path", w,
               "--output_path", tmp_path / "f.json", "--report_path", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    d = json.loads((tmp_path / "r.json").read_text())["decisions"][0]
    assert d["rule"] == "new_facts" and d["marks"] == ["24", "Hario"]


def test_code_consistency_lets_code_move_between_inline_and_fenced():
    inline = "Run `python3 -m venv .venv`, then activate it with `source .venv/bin/activate`."
    fenced = "1. Create it:\n```bash\npython3 -m venv .venv\n```\n2. Activate it:\n```bash\nsource .venv/bin/activate\n```"
    assert sel.code_consistency(pair(inline, fenced)) is None
    assert sel.code_consistency(pair(inline, fenced.replace("source", "# then\nsource"))) is None  # comments
    assert sel.code_consistency(pair(inline, fenced + "\n```bash\npip install requests flask gunicorn\n```"))
    assert sel.code_consistency(pair(fenced, inline)) is None
    assert sel.code_consistency(pair("def f(x):\n    return x * 2", "It doubles its input."))


def test_numbers_kept():
    reason = sel.numbers_kept(pair(TEA, "Steep it in the fridge for 12 to 24 hours, then strain it."))
    assert reason == "the original's '18' no longer appear(s) in the rewrite"
    assert sel.numbers_kept(pair("It costs $1,000 and lasts 2 years.", "- **Cost:** 1000 dollars\n- **Lasts:** two years")) is None
    assert sel.numbers_kept(pair("1. Boil.\n2. Steep.", "- Boil.\n- Steep.")) is None  # numbering is not a number


def test_a_batched_rule_sees_only_what_earlier_rules_let_through_all_at_once():
    from realign.selection import apply_rules, batched
    seen = []

    def no_x(p):
        return "has x" if "x" in p.rewrite else None

    @batched
    def model(pairs):
        seen.append([p.rewrite for p in pairs])
        return ["too short" if len(p.rewrite) < 4 else None for p in pairs]

    pairs = [pair(LONG, text) for text in ("abcd", "x123", "ab", "abcdef")]
    decided = apply_rules(pairs, [no_x, model])
    assert seen == [["abcd", "ab", "abcdef"]]  # one call, in order, without the record no_x rejected
    assert decided == {0: (True, None, None), 1: (False, "no_x", "has x"), 2: (False, "model", "too short"),
                       3: (True, None, None)}


def test_worker_processes_decide_as_one_process_does_and_the_judge_runs_once_in_this_one():
    import os
    from realign.selection import apply_rules, batched, whole_run
    calls = []

    @batched
    def model(pairs):  # in the workers: one call per chunk
        return [f"odd ({os.getpid()})" if int(p.rewrite.split()[-1]) % 7 == 0 else None for p in pairs]

    @whole_run
    def judge(pairs):  # here: one call with every record the others let through
        calls.append((os.getpid(), len(pairs)))
        return [sel.reject("judge says no", ["x"]) if int(p.rewrite.split()[-1]) % 5 == 0 else None for p in pairs]

    pairs = [pair(LONG, f"{LONG} x{i}\n{'x' if i % 3 == 0 else 'y'} {i}") for i in range(1200)]
    rules = [sel.code_consistency, sel.truncated, model, judge]
    one = apply_rules(pairs, rules)
    two = apply_rules(pairs, rules, workers=2, chunk=100)
    assert {i: (ok, r) for i, (ok, r, _) in one.items()} == {i: (ok, r) for i, (ok, r, _) in two.items()}
    reached = sum(r in ("judge", None) for ok, r, _ in one.values())
    assert calls == [(os.getpid(), reached)] * 2 and 0 < reached < len(pairs)
    pids = {why.split("(")[1] for ok, r, why in two.values() if r == "model"}
    assert pids and str(os.getpid()) + ")" not in pids  # worker processes, not this one
    assert two[5][2].marks == ("x",)
