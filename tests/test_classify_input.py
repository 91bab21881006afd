"""classify.py as the step that reads raw data: bad records set aside or named, strict JSON, shapes."""

import json
import shutil
from pathlib import Path

import pytest

from conftest import run_script, write_json

CASES = Path(__file__).parent / "fixtures" / "cases"


def classify(inp, out, *extra):
    return run_script("classify.py", "--input_data_path", inp, "--output_path", out, "--quiet", *extra)


def read_jsonl(path):
    return [json.loads(line, parse_constant=pytest.fail) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def one_line_exit_2(r):
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    return r.stderr


def test_a_bad_record_stops_the_run_and_the_error_suggests_skipping(tmp_path):
    inp = shutil.copy(CASES / "sharegpt_gpt_first.json", tmp_path / "in.json")
    out = tmp_path / "out.json"
    err = one_line_exit_2(classify(inp, out))
    assert f"{inp}: record 1 (id='b2'): conversations[0] is a 'gpt' turn" in err
    assert "--skip_bad_records" in err
    assert not out.exists() and not Path(f"{out}.rejected.jsonl").exists()


def test_skip_bad_records_sets_them_aside_and_counts_them(tmp_path):
    inp = shutil.copy(CASES / "sharegpt_gpt_first.json", tmp_path / "in.json")
    out = tmp_path / "out.jsonl"
    r = classify(inp, out, "--skip_bad_records")
    assert r.returncode == 0, r.stderr
    assert [rec["id"] for rec in read_jsonl(out)] == ["b1"]
    (rej,) = read_jsonl(f"{out}.rejected.jsonl")
    assert rej["index"] == 1 and rej["id"] == "b2" and rej["record"] == json.loads(Path(inp).read_text())[1]
    assert rej["reason"].startswith("conversations[0] is a 'gpt' turn")
    assert "1 records (sharegpt)" in r.stdout and "1 bad records set aside" in r.stdout
    assert f"{out}.rejected.jsonl" in r.stdout
    # fixed input, rerun: the old rejected file does not linger with stale reasons
    write_json(inp, json.loads(Path(inp).read_text())[:1])
    assert classify(inp, out, "--skip_bad_records").returncode == 0
    assert read_jsonl(f"{out}.rejected.jsonl") == []


def test_a_mixed_file_says_it_mixes_formats(tmp_path):
    inp = shutil.copy(CASES / "mixed_formats.json", tmp_path / "in.json")
    err = one_line_exit_2(classify(inp, tmp_path / "out.json"))
    assert "record 1: file mixes formats (record 0 alpaca, record 1 sharegpt)" in err


def test_nan_is_one_line_naming_the_record_and_never_written(tmp_path):
    inp = shutil.copy(CASES / "alpaca_nan.json", tmp_path / "in.json")
    out = tmp_path / "out.json"
    err = one_line_exit_2(classify(inp, out))
    assert "record 0: 'quality_score' is NaN, which strict JSON does not allow" in err
    assert not out.exists()
    # with the flag: both records are bad, they go aside (as strict JSON), and nothing is left to classify
    err = one_line_exit_2(classify(inp, out, "--skip_bad_records"))
    assert "all 2 records are bad" in err and not out.exists()
    rejected = read_jsonl(f"{out}.rejected.jsonl")
    assert [r["record"]["quality_score"] for r in rejected] == ["NaN", "Infinity"]
    assert rejected[1]["reason"].startswith("'quality_score' is Infinity")


def test_field_map_and_a_gsm8k_file(tmp_path):
    inp = write_json(tmp_path / "gsm8k.json", [{"question": "Tom has 3 apples and buys 2 more. How many now?",
                                                "answer": "3 + 2 = 5\n#### 5"}])
    out = tmp_path / "out.json"
    r = classify(inp, out)
    assert r.returncode == 0, r.stderr
    assert "1 records (gsm8k)" in r.stdout
    inp = write_json(tmp_path / "own.json", [{"q": "Tom has 3 apples and buys 2 more. How many now?", "a": "5"}])
    r = classify(inp, out, "--field_map", "question=q,answer=a")
    assert r.returncode == 0, r.stderr
    (rec,) = json.loads(out.read_text())
    assert rec["items"][0]["value"].startswith("Tom") and rec["items"][1]["value"] == "5"
    err = one_line_exit_2(classify(inp, out, "--field_map", "question=q"))
    assert "--field_map needs answer=COLUMN" in err
