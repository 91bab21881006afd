"""The optional LLM judge of rewrite_data_selection.py, against a real local HTTP judge server
(tests/servers/judge_fake.py): structured replies and lenient reading, the journal a rerun
resumes from, its cost in a dry run, keys, and its reasons in the report."""

import json

import pytest

from conftest import make_record, write_json
from realign.judge import JudgeVerdict, read_verdict
from realign.llm.base import Unusable
from tests.servers.judge_fake import JudgeFake

KEY = "sk-judge-test-0123456789"

TEA_Q = "How should I brew green tea?"
TEA = "Use water at about 80 degrees, not boiling. Steep the leaves briefly and remove them."
RECORDS = [  # (question, original, rewrite, what the judge should say)
    (TEA_Q, TEA, "## Brewing green tea\n\n- Use water at about 80 degrees, not boiling.\n"
                 "- Steep the leaves briefly and remove them.", "faithful"),
    (TEA_Q, TEA, "## Brewing green tea\n\n- Use water at about 80 degrees, not boiling.\n"
                 "- Steep the leaves briefly and remove them.\n- Cover the cup to keep the aroma.", "unsupported"),
    ("How do I keep basil alive?", "Water it when the soil is dry. Give it plenty of sunlight. Pinch off flowers.",
     "## Basil care\n\n1. Water it when the soil is dry.\n2. Give it plenty of sunlight.", "lost"),
]


def make_files(tmp_path, extra=()):
    originals, merged = [], []
    for i, (q, a, r, _) in enumerate(list(RECORDS) + list(extra)):
        rec = make_record(i, q, a, cat="how_to_generation")
        originals.append(rec)
        merged.append(json.loads(json.dumps(rec)))
        merged[-1]["items"][1]["value"] = r
    return write_json(tmp_path / "orig.json", originals), write_json(tmp_path / "merged.json", merged)


def run_filter(script, tmp_path, srv, *extra, key=KEY, extra_records=()):
    """The filter with the judge as its only rule (--rules none): the CPU checker of the presets
    catches these plain flaws itself, and these tests are about the judge."""
    o, m = make_files(tmp_path, extra_records)
    out = tmp_path / "final.json"
    r = script("rewrite_data_selection.py", "--input_original_data_path", o, "--input_rewrite_data_path", m,
               "--output_path", out, "--report_path", tmp_path / "report.json", "--judge_model", "judge-1",
               "--judge_base_url", srv.url + "/v1", "--rules", "none", *extra, env={"OPENAI_API_KEY": key})
    return r, out


@pytest.mark.parametrize("text", [
    '{"unsupported": [{"claim": "Cover the cup.", "why": "not in the original"}], "lost": []}',
    '```json\n{"unsupported": [{"claim": "Cover the cup.", "why": "not in the original"}], "lost": []}\n```',
    'My verdict:\n{"unsupported": [{"claim": "Cover the cup.", "why": "not in the original"}]}\nDone.',
    '<think>{"draft": 1} hmm</think>{"unsupported": [{"statement": "Cover the cup.", "reason": "not in the original"}],'
    ' "lost": []}',
])
def test_verdicts_are_read_leniently(text):
    assert read_verdict(text) == JudgeVerdict([("Cover the cup.", "not in the original")], [])


def test_items_may_be_strings_and_a_reply_without_a_verdict_is_unusable():
    assert read_verdict('{"unsupported": [], "lost": ["Pinch off flowers."]}').lost == [("Pinch off flowers.", "")]
    for text in ("Looks faithful to me.", "", '{"verdict": "ok"}', '{"unsupported": "none"}'):
        with pytest.raises(Unusable):
            read_verdict(text)


def test_the_judge_rejects_what_the_rules_let_through_and_says_why(tmp_path, script):
    with JudgeFake(api_key=KEY) as srv:
        r, out = run_filter(script, tmp_path, srv)
    assert r.returncode == 0, r.stderr
    assert [rec["tag"] for rec in json.loads(out.read_text())] == ["rewrite", "original", "original"]
    report = json.loads((tmp_path / "report.json").read_text())
    d = {x["id"]: x for x in report["decisions"]}
    assert d[0]["accepted"] and d[0]["judge"] == {"unsupported": [], "lost": []}
    assert d[1]["rule"] == "judge" and "unsupported claim 'Cover the cup to keep the aroma.'" in d[1]["reason"]
    assert d[1]["marks"] == ["Cover the cup to keep the aroma."]
    assert d[2]["rule"] == "judge" and "lost fact 'Pinch off flowers.'" in d[2]["reason"]
    assert d[2]["original_marks"] == ["Pinch off flowers."]  # highlighted in the original
    assert report["judge"]["judged"] == 3 and report["judge"]["rejected"] == 2
    assert all(srv.formats)  # every request carried the JSON schema
    assert "judge judge-1: 3 rewrites judged" in r.stdout and KEY not in r.stdout + r.stderr


def test_a_rerun_asks_only_what_the_journal_lacks(tmp_path, script):
    more = [("How do I boil an egg? [[error500]]", "Boil it for nine minutes, then cool it in cold water.",
             "1. Boil it for nine minutes.\n2. Cool it in cold water.", "faithful")]
    with JudgeFake(api_key=KEY) as srv:
        r, out = run_filter(script, tmp_path, srv, "--judge_max_retries", "0", extra_records=more)
        first = srv.request_count
    assert r.returncode == 0, r.stderr
    assert "1 could not be judged and keep the rules' verdict" in r.stdout and first == 4
    assert len((tmp_path / "final.json.judge.jsonl").read_text().splitlines()) == 3
    with JudgeFake(api_key=KEY) as srv:  # the egg record's question is fixed; the rest are in the journal
        more[0] = (more[0][0].replace(" [[error500]]", ""),) + more[0][1:]
        r, out = run_filter(script, tmp_path, srv, extra_records=more)
        assert srv.request_count == 1
    assert "4 rewrites judged (3 from the journal" in r.stdout
    assert [rec["tag"] for rec in json.loads(out.read_text())] == ["rewrite", "original", "original", "rewrite"]


def test_a_server_without_structured_output_is_read_leniently(tmp_path, script):
    """Requests run concurrently: the three first asks are all built before any 400 comes back,
    so all may carry response_format and reach the server in any order (on a busy machine one
    arrived after a re-sent request without it). What the run owes: every rewrite is judged, and
    no more requests carry it than that first wave plus the throttled one's retry."""
    with JudgeFake(api_key=KEY, structured=False, style="prose", throttle_first=1, truncate_first=1) as srv:
        r, out = run_filter(script, tmp_path, srv)
    assert r.returncode == 0, r.stderr
    assert [rec["tag"] for rec in json.loads(out.read_text())] == ["rewrite", "original", "original"]
    assert srv.formats[0] is True and sum(srv.formats) <= len(RECORDS) + 1, srv.formats


def test_a_verdict_the_server_says_broke_off_is_asked_again_not_used(tmp_path, script):
    """finish_reason "error" (OpenRouter, vLLM's "abort") means the generation broke off upstream:
    its "nothing wrong" verdict would let an unfaithful rewrite through. Asked again, one at a time."""
    with JudgeFake(api_key=KEY, abort_first=1) as srv:
        r, out = run_filter(script, tmp_path, srv, "--judge_concurrency", "1")
        assert srv.request_count == len(RECORDS) + 1
    assert r.returncode == 0, r.stderr
    assert [rec["tag"] for rec in json.loads(out.read_text())] == ["rewrite", "original", "original"]


def test_the_refusal_of_structured_output_is_learned_once_for_the_run(tmp_path, script):
    """One request at a time, the send order is the arrival order: after the first 400 no request
    carries response_format, the refused one re-sent and every later rewrite's first ask alike."""
    with JudgeFake(api_key=KEY, structured=False, style="prose", throttle_first=1) as srv:
        r, out = run_filter(script, tmp_path, srv, "--judge_concurrency", "1")
    assert r.returncode == 0, r.stderr
    assert [rec["tag"] for rec in json.loads(out.read_text())] == ["rewrite", "original", "original"]
    assert srv.formats == [True, True, False, False, False]  # 429, 400, then the three without it


def test_dry_run_prices_the_judge_and_writes_nothing(tmp_path, script):
    with JudgeFake(api_key=KEY) as srv:
        r, out = run_filter(script, tmp_path, srv, "--dry_run", "--price_in", "0.15", "--price_out", "0.6", key="")
        assert srv.request_count == 0
    assert r.returncode == 0, r.stderr
    assert "the rules would accept 3 rewrites" in r.stdout and "would ask about 3 rewrites" in r.stdout
    assert "estimated cost: $" in r.stdout and not out.exists() and not (tmp_path / "report.json").exists()


def test_a_bad_key_is_one_line_and_never_shown(tmp_path, script):
    with JudgeFake(api_key=KEY) as srv:
        r, out = run_filter(script, tmp_path, srv, key="sk-wrong-key-987654321")
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "401" in r.stderr and "sk-wrong-key-987654321" not in r.stderr + r.stdout and not out.exists()


def test_keys_are_read_as_reformat_reads_them(tmp_path, script):
    """The judge's key goes through the same reading as reformat's: a file, stripped; a key
    with a character no HTTP header can carry is one line naming the flag, never the key."""
    (tmp_path / "key.txt").write_text(KEY + "\r\n")
    with JudgeFake(api_key=KEY) as srv:
        r, _ = run_filter(script, tmp_path, srv, "--judge_key_file", tmp_path / "key.txt", key="")
        assert r.returncode == 0, r.stderr
        r, _ = run_filter(script, tmp_path, srv, "--judge_key", "sk-caf\u00e9-123456", key="")
    assert r.returncode == 2 and "--judge_key" in r.stderr and "caf" not in r.stderr


def test_the_report_page_shows_every_finding_of_the_judge(tmp_path, script):
    import re
    import shutil
    import subprocess
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with JudgeFake(api_key=KEY) as srv:
        r, _ = run_filter(script, tmp_path, srv, "--report_dir", tmp_path / "rep")
    assert r.returncode == 0, r.stderr
    page = tmp_path / "rep" / "report.html"
    rows = json.loads(re.search(r'id="data">(.*?)</script>', page.read_text(encoding="utf-8"), re.S).group(1))
    assert rows[2]["judge"]["lost"] == [["Pinch off flowers.", "the edited answer drops 'flowers'"]]
    assert "judge judge-1: 3 rewrites judged" in page.read_text(encoding="utf-8")
    if not chromium:
        pytest.skip("chromium not installed")
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri() + "#open=2&open=0"],
                          capture_output=True, text=True, timeout=90, cwd=tmp_path)
    detail = re.search(r'<tr class="detail" id="detail-2">(.*?)</tr>', proc.stdout, re.S).group(1)
    assert 'lost fact: <mark class="fact">Pinch off flowers.</mark>' in detail
    assert "judge: faithful" in re.search(r'<tr class="detail" id="detail-0">(.*?)</tr>', proc.stdout, re.S).group(1)
