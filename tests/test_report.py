"""The filter step's HTML report: written by `rewrite_data_selection.py --report_dir`, then
opened in a real headless Debian chromium, which must show the run's numbers, render the
figures, list every record with its reason, filter them from the address and open a row into
its before/after with new_facts' words highlighted. Chromium is installed in CI
(`apt-get install -y chromium`); without it the browser tests are skipped locally, never in CI."""

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from matplotlib import image as mpimg

from conftest import make_record, run_script, write_json
from realign.records import input_hash
from realign.report import COLORS, record_rows

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def make_run(tmp_path):
    """A small before/after pair of files: 3 accepted, 3 rejected (three rules), 2 passed through."""
    long_answer = "Paris is the capital of France. It lies on the Seine and has about two million people."
    originals = [
        make_record(1, "What is the capital of France?", long_answer, "open_qa",),
        make_record(2, "What is 12 * 3?", "12 * 3 = 36. The answer is 36.", "math_puzzles"),
        make_record(3, "Tips for sleep?", "Go to bed at the same time. Avoid screens late.", "how_to_generation"),
        make_record(4, "Why is the sky blue?", "Air scatters sunlight, and it scatters blue light most, so blue "
                    "light reaches the eye from every part of the sky. " * 2, "explain_answer"),
        make_record(5, "What is 7 + 5?", "7 + 5 = 12. The answer is 12.", "math_puzzles"),
        make_record(6, "A poem about rain", "Rain on the roof.", "poem_generation"),
        make_record(7, "hello", "Hi there!", "default"),
        make_record(8, "Who painted the Mona Lisa?", "Leonardo da Vinci painted it.", "open_qa"),
    ]
    originals[0]["items"][0]["evidence"] = ["Paris is the capital and largest city of France.",
                                            "The Seine flows through Paris."]
    originals[0]["items"][0]["evidence_scores"] = [0.9, 0.667]  # as retrieval.py's clean file has them
    rewrites = {
        1: "**Answer:** Paris.\n\nParis is the capital of France. It lies on the Seine and has about "
           "two million people, according to recent counts.",
        2: "Step 1: multiply 12 by 3.\n12 * 3 = 36.\n\nThe answer is 36.",
        3: "1. Go to bed at the same time every night.\n2. Avoid screens late in the evening.",
        4: "Scattering.",                                           # too short: length_ratio
        5: "Step 1: add 7 and 5.\n7 + 5 = 13.\n\nThe answer is 13.",  # changed: final_answer_kept
        8: "**Leonardo da Vinci** painted it in 1503 in Florence.",  # invented: new_facts
    }
    merged = []
    for rec in originals:
        new = {**rec, "items": [dict(it) for it in rec["items"]]}
        if rec["id"] in rewrites:
            new["items"][1]["value"] = rewrites[rec["id"]]
        merged.append(new)
    return write_json(tmp_path / "orig.json", originals), write_json(tmp_path / "merged.json", merged)


@pytest.fixture
def report(tmp_path):
    orig, merged = make_run(tmp_path)
    out_dir = tmp_path / "report"
    proc = run_script("rewrite_data_selection.py", "--input_original_data_path", orig,
                      "--input_rewrite_data_path", merged, "--output_path", tmp_path / "final.json",
                      "--rules", "alpaca", "--report_dir", out_dir)
    assert proc.returncode == 0, proc.stderr
    assert f"report: {out_dir / 'report.html'}" in proc.stdout
    return out_dir


def test_report_files_and_numbers(report):
    names = sorted(os.listdir(report))
    assert names == ["length_ratio.png", "outcome_per_task.png", "rejections_by_rule.png", "report.html"]
    page = (report / "report.html").read_text(encoding="utf-8")
    for key, value in {"total": 8, "rewritten": 6, "accepted": 3, "rejected": 3, "not_rewritten": 2,
                       "evidence": 1}.items():
        assert f'id="n-{key}">{value}<' in page
    assert 'id="rule-length_ratio"' in page and 'id="rule-final_answer_kept"' in page and 'id="rule-new_facts"' in page
    rows = json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S).group(1))
    assert [r["id"] for r in rows] == [str(i) for i in range(1, 9)]  # every record, in input order
    assert all(r["reason"] for r in rows)
    by_id = {r["id"]: r for r in rows}
    assert by_id["8"]["marks"] == ["1503", "Florence"] and "'1503', 'Florence'" in by_id["8"]["reason"]
    assert by_id["6"]["outcome"] == "not_rewritten" and "'poem_generation' answers are kept" in by_id["6"]["reason"]
    assert by_id["1"]["evidence"][0] == "Paris is the capital and largest city of France."  # evidence shown
    assert by_id["1"]["scores"] == [0.9, 0.667]  # with its relevance scores
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing fetched at view time
    for name in names[:-1]:
        img = mpimg.imread(report / name)
        assert img.shape[0] > 100 and img.shape[1] > 300


def test_bad_input_writes_no_report(tmp_path):
    orig, _ = make_run(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("[{", encoding="utf-8")
    proc = run_script("rewrite_data_selection.py", "--input_original_data_path", orig,
                      "--input_rewrite_data_path", bad, "--output_path", tmp_path / "final.json",
                      "--report_dir", tmp_path / "report")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert not (tmp_path / "report").exists()


def _row(rid, question, before, after, cat="open_qa", **gpt):
    orig = make_record(rid, question, before, cat)
    return orig, {**orig, "items": [orig["items"][0], {**orig["items"][1], "value": after, **gpt}]}


def test_rows_carry_a_reason_and_keep_to_the_text_budget():
    joined = [_row(0, "q0", "a0", "b0"), _row(1, "q1", "a1", "a1"), _row(2, "q2", "a2", "a2", cat="poem_generation"),
              _row(3, "q3 " + "x" * 50, "a3", "b3")]
    decisions = [{"id": 0, "category": "open_qa", "accepted": True, "rule": None, "reason": None},
                 {"id": 3, "category": "open_qa", "accepted": False, "rule": "r", "reason": "why"}]
    rows = record_rows(joined, decisions, text_budget=40)
    assert [(r["outcome"], r["reason"][:22]) for r in rows] == [
        ("accepted", "every rule passed"), ("not_rewritten", "not rewritten; the mer"),
        ("not_rewritten", "not rewritten ('poem_g"), ("rejected", "why")]
    assert rows[0]["after"] == "b0" and rows[1]["after"] == ""
    assert rows[3].get("cut") and "q" not in rows[3]  # over the budget: the row stays, its texts go


def test_a_kept_original_shows_the_reason_the_merge_carried_never_a_guess():
    """issue 21 #4: merge writes items[1]["kept_original"] for every record it kept; the report
    shows it (a failure as "reformat failed: …"), and a rewrite identical to its original says so."""
    joined = [_row(0, "q", "a", "a", kept_original="failed: HTTP 500 after 5 retries", input_hash="h0"),
              _row(1, "q", "a", "a", kept_original="format does not fit", input_hash="h1"),
              _row(2, "q", "a", "a", input_hash="h2"),
              _row(3, "q", "a", "a", cat="poem_generation", kept_original="task not rewritten", input_hash="h3")]
    reasons = [r["reason"] for r in record_rows(joined, [])]
    assert reasons == ["reformat failed: HTTP 500 after 5 retries", "not rewritten: format does not fit",
                       "not rewritten: reformat's rewrite is the original answer word for word",
                       "not rewritten: task not rewritten ('poem_generation' answers are kept as they are, by design)"]
    assert not any("or returned" in r for r in reasons)


def test_counts_say_how_they_relate_to_the_merge(tmp_path, script):
    """issue 24 newcomer: merge said 17 rewritten, the report 16; the filter now names the one
    rewrite identical to its original, and adds them up as the merge does."""
    originals = [make_record(i, f"q{i}", f"Answer number {i} is here.", "open_qa") for i in range(3)]
    merged = [json.loads(json.dumps(r)) for r in originals]
    merged[0]["items"][1].update(value="**Answer number 0** is here.", input_hash=input_hash(originals[0]))
    merged[1]["items"][1].update(input_hash=input_hash(originals[1]))  # rewritten, word for word the original
    merged[2]["items"][1].update(kept_original="failed: HTTP 500 after 5 retries", input_hash=input_hash(originals[2]))
    o, m = write_json(tmp_path / "o.json", originals), write_json(tmp_path / "m.json", merged)
    r = script("rewrite_data_selection.py", "--input_original_data_path", o, "--input_rewrite_data_path", m,
               "--output_path", tmp_path / "f.json", "--report_dir", tmp_path / "rep")
    assert r.returncode == 0, r.stderr
    assert ("1 rewrites accepted, 0 rejected (original kept), 2 not rewritten (1 failed in reformat, "
            "1 the rewrite is the original word for word)") in r.stdout
    assert "parallel_data_merge.py counted 2 rewritten: these 1 and the 1 identical" in r.stdout
    page = (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    assert "also counts the 1 identical to their original (not rewritten here): 2 in all" in page


def test_page_survives_script_like_text(tmp_path):
    orig, _ = make_run(tmp_path)
    records = json.loads(open(orig).read())
    records[0]["items"][1]["value"] = "</script><script>alert(1)</script> <!-- x"
    write_json(tmp_path / "orig.json", records)
    proc = run_script("rewrite_data_selection.py", "--input_original_data_path", orig,
                      "--input_rewrite_data_path", tmp_path / "merged.json", "--output_path", tmp_path / "f.json",
                      "--report_dir", tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert page.count("</script>") == 2 and "alert(1)" in page and "<script>alert" not in page
    rows = json.loads(re.search(r'id="data">(.*?)</script>', page, re.S).group(1))
    assert rows[0]["before"].startswith("</script><script>alert(1)")


def _chromium(report, *mode, tmp_path, url=None):
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", f"--user-data-dir={tmp_path / 'chrome-profile'}", "--window-size=1200,1600",
            *mode, url or (report / "report.html").as_uri()]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=90, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.skipif(not CHROMIUM and not os.environ.get("CI"),
                    reason="chromium not installed (apt-get install -y chromium); CI always runs this")
def test_headless_chromium_shows_numbers_and_figures(report, tmp_path):
    assert CHROMIUM, "CI is set but chromium is missing: apt-get install -y chromium"
    dom = _chromium(report, "--dump-dom", tmp_path=tmp_path)
    for key, value in {"total": 8, "accepted": 3, "rejected": 3}.items():
        assert re.search(rf'id="n-{key}">{value}<', dom), key
    assert "final_answer_kept" in dom
    # every record is a row of the table, with its reason
    assert len(re.findall(r'<tr class="rec" data-id="\w+"', dom)) == 8
    assert re.search(r'id="matching">8<', dom)
    assert "answers are kept as they are" in dom and "rewrite is &lt;= 0.5x" in dom

    shot = tmp_path / "shot.png"
    _chromium(report, f"--screenshot={shot}", tmp_path=tmp_path)
    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[0] >= 1000 and pixels.std() > 0.05, "blank screenshot"
    # The figures' bar colours appear only inside the PNGs, so seeing them means the images rendered.
    for outcome in ("accepted", "rejected"):
        rgb = np.array([int(COLORS[outcome][k:k + 2], 16) / 255 for k in (1, 3, 5)])
        near = np.abs(pixels - rgb).max(axis=-1) < 0.03
        assert near.sum() > 200, f"no {outcome}-coloured bar pixels: figure not rendered"


@pytest.mark.skipif(not CHROMIUM and not os.environ.get("CI"),
                    reason="chromium not installed (apt-get install -y chromium); CI always runs this")
def test_headless_chromium_filters_and_opens_a_row(report, tmp_path):
    assert CHROMIUM, "CI is set but chromium is missing: apt-get install -y chromium"
    page = report / "report.html"
    dom = _chromium(report, "--dump-dom", tmp_path=tmp_path, url=page.as_uri() + "#outcome=rejected&open=8")
    ids = re.findall(r'<tr class="rec" data-id="(\w+)"', dom)
    assert ids == ["4", "5", "8"]  # the rejected ones only
    detail = re.search(r'<tr class="detail" id="detail-8">(.*?)</tr>', dom, re.S).group(1)
    assert '<mark class="fact">1503</mark>' in detail and '<mark class="fact">Florence</mark>' in detail
    assert "<ins>" in detail and "<del>" not in detail.split('class="after"')[1]
    assert "Who painted the Mona Lisa?" in detail

    dom = _chromium(report, "--dump-dom", tmp_path=tmp_path, url=page.as_uri() + "#open=1")
    detail = re.search(r'<tr class="detail" id="detail-1">(.*?)</tr>', dom, re.S).group(1)
    assert "relevance 0.90</span> Paris is the capital" in detail and "relevance 0.67" in detail  # evidence, scored

    dom = _chromium(report, "--dump-dom", tmp_path=tmp_path, url=page.as_uri() + "#task=math_puzzles&rule=final_answer_kept")
    assert re.findall(r'<tr class="rec" data-id="(\w+)"', dom) == ["5"]
