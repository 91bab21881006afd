"""The data contract: reading .json/.jsonl, validation errors (one line, exit 2, no traceback,
no output file), atomic writes."""

import json
import os

import pytest

from conftest import make_record, write_json, write_jsonl
from realign.errors import DataError
from realign.files import atomic_open
from realign.records import load_records, write_records

GOOD = [make_record(0), make_record("b", "Tell me a joke", "No.", cat=None)]


def _bad_json(tmp):
    p = tmp / "in.json"
    p.write_text('[{"id": 0, "items": [}')
    return p


def _empty(tmp):
    p = tmp / "in.json"
    p.write_text("  \n")
    return p


def _not_a_list(tmp):
    return write_json(tmp / "in.json", {"id": 0, "items": []})


def _torn_jsonl(tmp):
    p = tmp / "in.jsonl"
    p.write_text(json.dumps(make_record(0)) + "\n" + json.dumps(make_record(1))[:25] + "\n")
    return p


def _missing_items(tmp):
    return write_json(tmp / "in.json", [make_record(0), {"id": 1}])


def _wrong_roles(tmp):
    rec = make_record(7)
    rec["items"][0]["from"] = "gpt"
    return write_json(tmp / "in.json", [rec])


def _non_string_value(tmp):
    rec = make_record(3)
    rec["items"][1]["value"] = 42
    return write_json(tmp / "in.json", [rec])


def _duplicate_id(tmp):
    return write_json(tmp / "in.json", [make_record("x"), make_record("y"), make_record("x")])


def _unknown_category(tmp):
    return write_json(tmp / "in.json", [make_record(0, cat="poetry_writing")])


def _non_utf8(tmp):
    p = tmp / "in.json"
    p.write_bytes(b'[{"id": 0, "items": [{"from": "human", "value": "caf\xe9"}]}]')
    return p


def _lone_surrogate_jsonl(tmp):
    p = tmp / "in.jsonl"
    pair = json.dumps(make_record(0, q="ok \U0001F600"))  # an escaped surrogate pair is fine
    p.write_text(pair + "\n" + json.dumps(make_record(1, q="half an emoji \ud83d")) + "\n")
    return p


CASES = {
    "not JSON": (_bad_json, "not valid JSON"),
    "empty file": (_empty, "empty"),
    "not a list": (_not_a_list, "expected a JSON list"),
    "torn JSONL line": (_torn_jsonl, "line 2"),
    "missing items": (_missing_items, "record 1 (id=1): missing 'items'"),
    "wrong roles": (_wrong_roles, "record 0 (id=7): items[0].from must be 'human'"),
    "non-string value": (_non_string_value, "items[1].value must be a string"),
    "duplicate id": (_duplicate_id, "record 2 (id='x'): duplicate id"),
    "unknown category": (_unknown_category, "unknown category 'poetry_writing'"),
    "non-UTF-8 bytes": (_non_utf8, "not UTF-8"),
    "lone surrogate": (_lone_surrogate_jsonl, "record 1 (id=1): holds an unpaired UTF-16 surrogate"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_2_no_output(case, tmp_path, script):
    make, expected = CASES[case]
    path = make(tmp_path)
    (tmp_path / "shards").mkdir()
    out = tmp_path / "merged.json"
    r = script("parallel_data_merge.py", "--input_data_path", path, "--output_directory", tmp_path / "shards",
               "--final_output_path", out)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and expected in lines[0], lines
    assert not out.exists()


def test_json_and_jsonl_round_trip(tmp_path):
    for name in ("a.json", "a.jsonl"):
        write_records(tmp_path / name, GOOD)
        assert load_records(tmp_path / name) == GOOD
    assert (tmp_path / "a.jsonl").read_text().count("\n") == 2


def test_jsonl_round_trip_keeps_unicode_line_separators(tmp_path):
    rec = make_record(1, q="line\u2028separator, next\x85line, file\x1cseparator", a="crlf\r\nend")
    write_records(tmp_path / "u.jsonl", [rec])
    assert load_records(tmp_path / "u.jsonl") == [rec]


def test_jsonl_input_accepted_and_multi_turn_kept(tmp_path):
    rec = make_record(1)
    rec["items"] += [{"from": "human", "value": "and 3+3?"}, {"from": "gpt", "value": "6"}]
    p = write_jsonl(tmp_path / "in.jsonl", [rec])
    assert load_records(p)[0]["items"][3]["value"] == "6"


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    p = tmp_path / "out.json"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(p) as f:
            f.write("half of the new")
            raise RuntimeError("crash mid-write")
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["out.json"]


def test_writing_over_a_folder_is_a_usage_error(tmp_path):
    (tmp_path / "out.json").mkdir()
    with pytest.raises(DataError, match="out.json: is a folder"):
        write_records(tmp_path / "out.json", GOOD)
    assert os.listdir(tmp_path / "out.json") == [] and os.listdir(tmp_path) == ["out.json"]


def test_outputs_get_normal_file_permissions(tmp_path):
    write_records(tmp_path / "out.json", GOOD)
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "out.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_records(tmp_path / "nope.json")
