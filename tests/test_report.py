"""The filter step's HTML report: written by `rewrite_data_selection.py --report_dir`, then
opened in a real headless Debian chromium, which must show the run's numbers and render
the figures. Chromium is installed in CI (`apt-get install -y chromium`); without it the
browser test is skipped locally, never in CI."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from matplotlib import image as mpimg

from conftest import make_record, run_script, write_json
from realign.report import COLORS, diff_html, pick_samples

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def make_run(tmp_path):
    """A small before/after pair of files: 3 accepted, 2 rejected (two rules), 2 passed through."""
    long_answer = "Paris is the capital of France. It lies on the Seine and has about two million people."
    originals = [
        make_record(1, "What is the capital of France?", long_answer, "open_qa",),
        make_record(2, "What is 12 * 3?", "12 * 3 = 36. The answer is 36.", "math_puzzles"),
        make_record(3, "Tips for sleep?", "Go to bed at the same time. Avoid screens late.", "how_to_generation"),
        make_record(4, "Why is the sky blue?", long_answer * 2, "explain_answer"),
        make_record(5, "What is 7 + 5?", "7 + 5 = 12. The answer is 12.", "math_puzzles"),
        make_record(6, "A poem about rain", "Rain on the roof.", "poem_generation"),
        make_record(7, "hello", "Hi there!", "default"),
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
    for key, value in {"total": 7, "rewritten": 5, "accepted": 3, "rejected": 2, "not_rewritten": 2,
                       "evidence": 1}.items():
        assert f'id="n-{key}">{value}<' in page
    assert 'id="rule-length_ratio"' in page and 'id="rule-final_answer_kept"' in page
    assert "<del>" in page and "<ins>" in page
    assert "Paris is the capital and largest city of France." in page  # evidence shown
    assert "relevance 0.90</span> Paris is the capital" in page and "relevance 0.67" in page  # with its score
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


def test_diff_marks_changes_and_escapes():
    left, right = diff_html("keep <b> old", "keep <b> new")
    assert left == "keep &lt;b&gt; <del>old</del>" and right == "keep &lt;b&gt; <ins>new</ins>"


def test_samples_are_bounded_and_mix_verdicts():
    decisions = [{"id": i, "category": f"c{i % 4}", "accepted": i % 3 != 0} for i in range(100)]
    picked = pick_samples(decisions, n=6)
    assert len(picked) == 6 and len({d["id"] for d in picked}) == 6
    assert {d["accepted"] for d in picked} == {True, False}
    assert len({d["category"] for d in picked}) >= 3


def _chromium(report, *mode, tmp_path):
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", f"--user-data-dir={tmp_path / 'chrome-profile'}", "--window-size=1200,1600",
            *mode, (report / "report.html").as_uri()]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=90, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.skipif(not CHROMIUM and not os.environ.get("CI"),
                    reason="chromium not installed (apt-get install -y chromium); CI always runs this")
def test_headless_chromium_shows_numbers_and_figures(report, tmp_path):
    assert CHROMIUM, "CI is set but chromium is missing: apt-get install -y chromium"
    dom = _chromium(report, "--dump-dom", tmp_path=tmp_path)
    for key, value in {"total": 7, "accepted": 3, "rejected": 2}.items():
        assert re.search(rf'id="n-{key}">{value}<', dom), key
    assert "final_answer_kept" in dom

    shot = tmp_path / "shot.png"
    _chromium(report, f"--screenshot={shot}", tmp_path=tmp_path)
    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[0] >= 1000 and pixels.std() > 0.05, "blank screenshot"
    # The figures' bar colours appear only inside the PNGs, so seeing them means the images rendered.
    for outcome in ("accepted", "rejected"):
        rgb = np.array([int(COLORS[outcome][k:k + 2], 16) / 255 for k in (1, 3, 5)])
        near = np.abs(pixels - rgb).max(axis=-1) < 0.03
        assert near.sum() > 200, f"no {outcome}-coloured bar pixels: figure not rendered"
