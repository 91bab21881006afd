"""Output people can trust: reformat.py -> parallel_data_merge.py -> rewrite_data_selection.py
(default rules) as subprocesses against a fake endpoint that misbehaves the way real models do.

Most records get a faithful rewrite (the original's sentences as bullets). One record per
misbehaviour gets a planted reply (tests/servers/openai_fake.py, MISBEHAVIOURS), and two
originals are empty. Whatever a model does, the final file must hold only faithful rewrites
or the untouched originals, and the filter must still accept nearly every faithful rewrite.
"""

import json
import random

import pytest

from conftest import make_record, run_script, write_json
from realign.prompts import KEEP_MARKER
from tests.servers.openai_fake import REFUSAL, SAME_TEXT, OpenAIFake

# (task, question, original): human-written answers, every one different
FAITHFUL = [
    ("how_to_generation", "How do I make cold brew coffee?",
     "Mix one part coarse coffee with four parts cold water. Steep it in the fridge for 12 to 18 hours. "
     "Strain it through a paper filter and dilute to taste."),
    ("how_to_generation", "How do I repot a houseplant?",
     "Water the plant a day before. Ease it out of the old pot and loosen the roots. "
     "Set it in a pot one size larger on fresh soil, fill the sides and water well."),
    ("planning", "Make me a plan to study for a chemistry exam in two weeks.",
     "Spend the first week on one chapter a day and write a summary of each. "
     "In the second week do two past papers every other day. Keep the last day for rest and a light review."),
    ("planning", "Plan a day in Lisbon for a first-time visitor.",
     "Start at the Belem Tower in the morning and try a pastel de nata nearby. "
     "Take tram 28 through Alfama after lunch. End the day at the Miradouro da Senhora do Monte for the sunset."),
    ("recommendations", "Recommend two books about the history of mathematics.",
     "Try Men of Mathematics by E. T. Bell for lively portraits of mathematicians. "
     "Journey through Genius by William Dunham walks through twelve great theorems."),
    ("open_qa", "Who was the first person to walk on the Moon?",
     "Neil Armstrong was the first person to walk on the Moon. He stepped onto the surface on 20 July 1969 "
     "during the Apollo 11 mission."),
    ("open_qa", "What is the boiling point of water at sea level?",
     "Water boils at 100 degrees Celsius at sea level. That is 212 degrees Fahrenheit."),
    ("math_puzzles", "A train travels 180 km in 2 hours. What is its average speed?",
     "Average speed is distance divided by time. 180 km divided by 2 hours is 90 km per hour. The answer is 90."),
    ("math_puzzles", "What is 15% of 240?",
     "Fifteen percent is 0.15. Multiply 240 by 0.15 to get 36. The answer is 36."),
    ("email_generation", "Write a short email asking my manager for Friday off.",
     "Hi Dana, I would like to take this Friday off to attend a family event. My tasks for the week will be "
     "done by Thursday. Thanks, Sam"),
    ("explain_answer", "Why is the sky blue?",
     "Sunlight is scattered by the molecules in the air. Blue light has a shorter wavelength, so it is "
     "scattered much more than red light. That scattered blue light reaches our eyes from every direction."),
    ("text_correction", "Fix the grammar: 'She don't like apples.'",
     "The correct sentence is: She doesn't like apples. The verb must agree with the singular subject."),
]
TAILS = ["Ask me if you want more detail.", "Tell me how it goes.", "I hope this helps.", "Good luck with it.",
         "Let me know if anything is unclear."]


def faithful_records():
    """60 records with distinct originals (5 variants of each base answer)."""
    records = []
    for k, (task, q, a) in enumerate(FAITHFUL):
        for v, tail in enumerate(TAILS):
            records.append(make_record(f"f{k}-{v}", f"{q} (variant {v})", f"{a} {tail}", task))
    return records


# misbehaviour tag -> (task, question, original)
PLANTED = {
    "think_unclosed": ("how_to_generation", "How do I boil an egg?", "Boil it for nine minutes, then cool it."),
    "truncate": ("planning", "Plan my week of running.", "Run 5 km on Monday and Thursday. Rest on Sunday."),
    "refusal_field": ("open_qa", "What is the capital of Peru?", "The capital of Peru is Lima."),
    "null_content": ("open_qa", "How many legs does a spider have?", "A spider has eight legs."),
    "refuse_label": ("open_qa", "What colour is a ripe banana?", "Yellow."),
    "echo": ("recommendations", "Recommend a board game for two.", "Try Patchwork; it is quick and calm."),
    "keep": ("planning", "Write a haiku about autumn.", "Red leaves drift and fall / the cold wind hums."),
    "new_number": ("how_to_generation", "How long should I steep cold brew?",
                   "Steep it for 12 to 18 hours in the fridge."),
    "new_name": ("open_qa", "What is photosynthesis?",
                 "Photosynthesis is how plants turn light, water and carbon dioxide into sugar and oxygen."),
}
SAME = [("open_qa", "What is the capital of France?", "Paris."),
        ("open_qa", "What is the largest planet?", "Jupiter."),
        ("open_qa", "What is the chemical symbol for gold?", "Au."),
        ("open_qa", "Which ocean is the largest?", "The Pacific."),
        ("open_qa", "What gas do plants take in?", "Carbon dioxide.")]
# replies whose form is off but whose answer is faithful: they must come out clean, and accepted
FORM_ONLY = {"think": "planning", "think_open": "how_to_generation", "fence": "recommendations",
             "fence_revised": "planning", "reasoning_content": "how_to_generation"}
# what the planted misbehaviours may not leave in the final data: those reformat reads itself,
# then those only the filter rules can see (invented facts, one text for many records)
READER_TRACES = ["DRAFT-NOT-FINAL", "<think", "</think", "```", REFUSAL, "I cannot assist", "Revised response",
                 "complete rewritten answer", KEEP_MARKER]
FILTER_TRACES = ["Budget: $50", "Margaret Holloway", "1931", SAME_TEXT, "30 to 18"]


def dataset():
    records = faithful_records()
    for tag, (task, q, a) in PLANTED.items():
        records.append(make_record(f"bad-{tag}", f"{q} [[{tag}]]", a, task))
    for i, (task, q, a) in enumerate(SAME):
        records.append(make_record(f"same-{i}", f"{q} [[same]]", a, task))
    for tag, task in FORM_ONLY.items():
        records.append(make_record(f"form-{tag}", f"Give me three tips for sleeping well. [[{tag}]]",
                                   f"Go to bed at the same time each night. Keep the room dark and cool. "
                                   f"Avoid screens for an hour before bed ({tag}).", task))
    records.append(make_record("empty-1", "How do I change a flat bicycle tyre?", "", "how_to_generation"))
    records.append(make_record("empty-2", "Suggest a name for my cat.", "   ", "recommendations"))
    random.Random(12).shuffle(records)  # faults in both shards
    return records


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Run the three steps once (two reformat shards, --top_k 2); returns (input, final, outputs)."""
    tmp = tmp_path_factory.mktemp("trust")
    records = dataset()
    inp = write_json(tmp / "in.json", records)
    out, merged, final = tmp / "out", tmp / "merged.json", tmp / "final.json"
    runs = {}
    with OpenAIFake(faithful=True) as srv:
        for i in range(2):
            runs[f"reformat {i}"] = run_script(
                "reformat.py", "--input_data_path", inp, "--output_directory", out, "--base_url", f"{srv.url}/v1",
                "--dataset_batch_id", i, "--dataset_batch_num", 2, "--top_k", 2, "--target_length", 512,
                "--max_retries", 1, "--quiet", env={"OPENAI_API_KEY": ""}, timeout=120)
    runs["merge"] = run_script("parallel_data_merge.py", "--input_data_path", inp, "--output_directory", out,
                               "--final_output_path", merged)
    runs["select"] = run_script("rewrite_data_selection.py", "--input_original_data_path", inp,
                                "--input_rewrite_data_path", merged, "--output_path", final,
                                "--report_path", tmp / "report.json", "--report_dir", tmp / "report")
    assert runs["merge"].returncode == runs["select"].returncode == 0, {k: r.stderr for k, r in runs.items()}
    assert all(runs[f"reformat {i}"].returncode in (0, 1) for i in range(2))
    return records, json.loads(final.read_text()), runs, out


def by_id(records):
    return {rec["id"]: rec for rec in records}


def test_every_record_is_in_the_final_file_once(pipeline):
    records, final, _, _ = pipeline
    assert sorted(rec["id"] for rec in final) == sorted(rec["id"] for rec in records)


def test_faults_reformat_can_see_end_as_the_untouched_original(pipeline):
    records, final, runs, out = pipeline
    got, want = by_id(final), by_id(records)
    caught_by_reformat = ["think_unclosed", "truncate", "refusal_field", "null_content", "refuse_label", "echo",
                          "keep"]
    for tag in caught_by_reformat:
        rid = f"bad-{tag}"
        assert got[rid]["tag"] == "original" and got[rid]["items"][1] == want[rid]["items"][1], tag
    for rid in ("empty-1", "empty-2"):
        assert got[rid]["tag"] == "original" and got[rid]["items"][1]["value"] == want[rid]["items"][1]["value"]
    failures = {}
    for i in range(2):
        for line in (out / f"failures_{i}_of_2.jsonl").read_text().splitlines():
            row = json.loads(line)
            failures[row["id"]] = row["reason"]
    assert set(failures) == {"bad-think_unclosed", "bad-truncate", "bad-refusal_field", "bad-null_content",
                             "bad-refuse_label", "bad-echo"}
    assert failures["bad-truncate"].startswith("truncated at --target_length 512")
    assert "refused: \"I'm sorry, I cannot assist" in failures["bad-refusal_field"]
    assert "refused: \"I'm sorry, but I can't help" in failures["bad-refuse_label"]
    assert "empty reply" in failures["bad-null_content"] and "echoes the rewrite prompt" in failures["bad-echo"]
    assert "only a <think> block" in failures["bad-think_unclosed"]
    stdout = runs["reformat 0"].stdout + runs["reformat 1"].stdout
    assert "format does not fit:      1  planning" in stdout
    assert "2 empty original, 1 format does not fit" in runs["merge"].stdout or \
        "(1 format does not fit, 2 empty original)" in runs["merge"].stdout


def test_form_faults_come_out_clean_and_accepted(pipeline):
    records, final, _, _ = pipeline
    got = by_id(final)
    for tag in FORM_ONLY:
        rec = got[f"form-{tag}"]
        assert rec["tag"] == "rewrite", tag
        assert rec["items"][1]["value"].startswith("- Go to bed at the same time each night."), tag


@pytest.mark.parametrize("traces", [READER_TRACES, FILTER_TRACES], ids=["read_by_reformat", "seen_by_the_filter"])
def test_no_trace_of_any_misbehaviour_reaches_the_final_data(pipeline, traces):
    _, final, _, _ = pipeline
    for rec in final:
        text = rec["items"][1]["value"]
        assert not [t for t in traces if t in text], (rec["id"], text)


def test_nearly_every_faithful_rewrite_is_accepted(pipeline):
    records, final, _, _ = pipeline
    got = by_id(final)
    faithful = [rec["id"] for rec in records if rec["id"].startswith(("f", "form-"))]
    accepted = [rid for rid in faithful if got[rid]["tag"] == "rewrite"]
    assert len(accepted) >= 0.95 * len(faithful), sorted(set(faithful) - set(accepted))


def test_invented_facts_and_one_text_for_many_records_are_rejected(pipeline):
    records, final, _, out = pipeline
    got, want = by_id(final), by_id(records)
    for rid in ["bad-new_number", "bad-new_name"] + [f"same-{i}" for i in range(len(SAME))]:
        assert got[rid]["tag"] == "original" and got[rid]["items"][1] == want[rid]["items"][1], rid
    report = json.loads((out.parent / "report.json").read_text())
    assert report["rejected_by_rule"]["same_rewrite_many_records"] == len(SAME)
    assert report["rejected_by_rule"]["new_facts"] == 2


def test_the_report_says_why_each_original_was_kept_from_what_merge_carried(pipeline):
    """issue 21 #4: no guessing. Every record that reached the filter with its original says why,
    as reformat and merge recorded it: the failure's own reason, the valve, an empty original."""
    import re
    _, _, runs, out = pipeline
    report = json.loads((out.parent / "report.json").read_text())
    kept = report["kept"]
    assert sum(n for why, n in kept.items() if why.startswith("failed: ")) == 6
    assert kept["format does not fit"] == 1 and kept["empty original"] == 2 and "no reason recorded" not in kept
    assert "(6 failed in reformat, " in runs["select"].stdout
    page = (out.parent / "report" / "report.html").read_text(encoding="utf-8")
    rows = {r["id"]: r for r in json.loads(re.search(r'id="data">(.*?)</script>', page, re.S).group(1))}
    assert rows["bad-truncate"]["reason"].startswith("reformat failed: truncated at --target_length 512")
    assert rows["bad-keep"]["reason"] == "not rewritten: format does not fit"
    assert rows["empty-1"]["reason"] == "not rewritten: empty original"
    assert not any("or returned its answer unchanged" in r["reason"] for r in rows.values())
