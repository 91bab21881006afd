"""rewrite_data_selection.py: each rule, the rule sets, and the step end to end."""

import importlib.util
import json

import pytest

from conftest import ROOT, make_record, write_json
from realign.lengths import approx_tokens
from realign.selection import ACCEPT, Pair, final_number, has_code

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
