"""Nothing is lost silently on input (issue 20 #5): content parts, multimodal records, answers given as
lists, role/content turns in `conversations`, a key twice in one object, numbers that overflow to
infinity, ids an output table cannot hold. Each through the real classify.py (or retrieval.py) on
real files, with default flags, and the turn-3 cases of ../shared/cases/turn3/.
"""

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet  # noqa: F401
import pytest

from conftest import make_record, run_script, write_json

TURN3 = Path(__file__).resolve().parent.parent.parent / "shared" / "cases" / "turn3"


def classify(inp, out, *extra):
    return run_script("classify.py", "--input_data_path", inp, "--output_path", out, "--quiet", *extra)


def read_jsonl(path):
    return [json.loads(x) for x in Path(path).read_text(encoding="utf-8").splitlines() if x.strip()]


def one_line_exit_2(r, *needles):
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_image_parts_make_a_record_refused_as_multimodal_and_text_parts_are_joined_with_a_newline(tmp_path):
    """turn3/messages_image_parts.json: m1 and m2 carry images, m3 two text parts."""
    inp = shutil.copy(TURN3 / "messages_image_parts.json", tmp_path / "in.json")
    out = tmp_path / "out.jsonl"
    one_line_exit_2(classify(inp, out), "record 0 (id='m1'): messages[0].content[0] is an 'image' part",
                    "multimodal records are not supported", "--skip_bad_records")
    assert not out.exists()
    r = classify(inp, out, "--skip_bad_records")
    assert r.returncode == 0, r.stderr
    (m3,) = read_jsonl(out)
    assert m3["id"] == "m3" and m3["items"][0]["value"] == "Say hello\nin French."
    rejected = read_jsonl(f"{out}.rejected.jsonl")
    assert [(x["id"], x["reason"]) for x in rejected] == [
        ("m1", "messages[0].content[0] is an 'image' part: multimodal records are not supported (text only)"),
        ("m2", "messages[0].content[1] is an 'image_url' part: multimodal records are not supported (text only)")]
    assert "2 bad records set aside" in r.stdout


def test_an_answer_given_as_a_list_of_strings_is_refused_not_emptied(tmp_path):
    """turn3/answer_list_messages.json: ["Red", "Yellow", "Blue"] used to become an empty answer, exit 0."""
    inp = shutil.copy(TURN3 / "answer_list_messages.json", tmp_path / "in.json")
    one_line_exit_2(classify(inp, tmp_path / "out.json"), "record 0: messages[1].content is a list of 3 strings",
                    "join them into one string")
    recs = [{"instruction": "Name three colours.", "output": ["Red", "Yellow", "Blue"]}]
    one_line_exit_2(classify(write_json(tmp_path / "a.json", recs), tmp_path / "out2.json"),
                    "'output' must be a string, got list")


def test_conversations_with_role_and_content_keys_are_read(tmp_path):
    recs = [{"id": "c1", "conversations": [{"role": "system", "content": "Be brief."},
                                           {"role": "user", "content": "Capital of France?"},
                                           {"role": "assistant", "content": "Paris."}]},
            {"id": "c2", "conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}]}]
    out = tmp_path / "out.jsonl"
    r = classify(write_json(tmp_path / "in.json", recs), out)
    assert r.returncode == 0, r.stderr
    c1, c2 = read_jsonl(out)
    assert c1["system"] == "Be brief." and [i["value"] for i in c1["items"]] == ["Capital of France?", "Paris."]
    assert [i["value"] for i in c2["items"]] == ["2+2?", "4"]


def test_a_key_twice_in_one_object_is_refused_naming_the_record(tmp_path):
    text = ('[{"id": 1, "instruction": "a", "output": "b"},\n'
            ' {"id": 2, "instruction": "c", "output": "first answer", "output": "second answer"}]')
    inp = tmp_path / "in.json"
    inp.write_text(text)
    one_line_exit_2(classify(inp, tmp_path / "out.json"), f"{inp}: record 1: the key 'output' appears twice",
                    "JSON keeps only the last value")
    lines = tmp_path / "in.jsonl"
    lines.write_text('{"id": 1, "instruction": "a", "output": "b"}\n'
                     '{"id": 2, "messages": [{"role": "user", "role": "assistant", "content": "x"}]}\n')
    one_line_exit_2(classify(lines, tmp_path / "out2.json"), f"{lines}: line 2: the key 'role' appears twice")


def test_a_number_that_overflows_to_infinity_is_refused_like_nan(tmp_path):
    for name, text in [("in.json", '[{"id": 1, "instruction": "a", "output": "b", "score": 1e400}]'),
                       ("in.jsonl", '{"id": 1, "instruction": "a", "output": "b", "score": -2.5E+999}\n')]:
        inp = tmp_path / name
        inp.write_text(text)
        one_line_exit_2(classify(inp, tmp_path / f"out-{name}.json"), "record 0", "'score' is",
                        "a number too large for a double", "strict JSON does not allow")


@pytest.mark.parametrize("bad_value, said", [
    ('"meta": {"p": 1e-400}', "'meta.p' is 1e-400, a number too small for a double"),  # read as 0.0 silently
    ('"input": "a \\ud83d"', "holds an unpaired UTF-16 surrogate"),
])
def test_an_underflowing_number_or_a_lone_surrogate_is_one_line_or_set_aside(tmp_path, bad_value, said):
    bad = '{"id": 1, "instruction": "a", "output": "b", ' + bad_value + '}'
    good = '{"id": 2, "instruction": "c", "output": "d", "meta": {"p": 1e-300}}'  # 1e-300: an ordinary double
    for name, text in [("in.json", f"[{bad}, {good}]"), ("in.jsonl", f"{bad}\n{good}\n")]:
        inp = tmp_path / name
        inp.write_text(text)
        out = tmp_path / f"out-{name}.jsonl"
        one_line_exit_2(classify(inp, out), "record 0", said)
        r = classify(inp, out, "--skip_bad_records")
        assert r.returncode == 0, r.stderr
        (kept,) = read_jsonl(out)
        assert kept["id"] == 2 and kept["meta"]["p"] == 1e-300
        (rejected,) = read_jsonl(f"{out}.rejected.jsonl")
        assert rejected["id"] == 1 and said in rejected["reason"]


def test_ids_an_output_table_cannot_hold_are_refused_before_any_work(tmp_path):
    big = [make_record(2**64, cat=None), make_record(5, cat=None)]
    inp = write_json(tmp_path / "big.json", big)
    one_line_exit_2(classify(inp, tmp_path / "out.parquet"), "record 0 has the id 18446744073709551616",
                    "64-bit integers Parquet holds")
    assert not (tmp_path / "out.parquet").exists()
    both = write_json(tmp_path / "both.json", [make_record(1, cat=None), make_record("1", cat=None)])
    one_line_exit_2(classify(both, tmp_path / "out.csv"), "records 0 and 1 have the ids 1 and '1'",
                    "reads every id back as text")
    assert classify(both, tmp_path / "out.jsonl").returncode == 0  # JSON keeps them apart
    r = run_script("retrieval.py", "--input_data_path", inp, "--output_path", tmp_path / "r.parquet",
                   "--backend", "bm25", "--corpus_path", tmp_path)
    one_line_exit_2(r, "64-bit integers Parquet holds")
    hashed = [make_record(1, cat=None), {**make_record(2, cat=None), "row_hash": 2**64 - 1}]
    one_line_exit_2(classify(write_json(tmp_path / "hashed.json", hashed), tmp_path / "h.parquet"),
                    "record 1 has 'row_hash' = 18446744073709551615, outside the 64-bit integers Parquet holds")
    # merge and selection write tables through the same check (write_table): never a traceback
    from realign.errors import DataError
    from realign.tabular import write_table
    try:
        write_table(tmp_path / "x.parquet", [{"id": 0, "score": 1}, {"id": 1, "meta": {"row_hash": 2**64 - 1}}])
    except DataError as e:  # the record and the field named
        assert "record 1 has 'meta.row_hash' = 18446744073709551615, outside the 64-bit integers" in str(e), str(e)
    else:
        raise AssertionError("an int over int64 in another field was written")


def test_a_csv_header_naming_a_column_twice_is_refused(tmp_path):
    inp = tmp_path / "in.csv"
    inp.write_text("instruction,output,output\nq,a1,a2\n")
    one_line_exit_2(classify(inp, tmp_path / "out.json"), "the header names the column 'output' twice")


def test_parquet_input_with_content_parts_is_read_the_same(tmp_path):
    rows = [{"id": "p1", "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"},
                                                                   {"type": "text", "text": "there"}]},
                                      {"role": "assistant", "content": [{"type": "text", "text": "Hello."}]}]}]
    pa.parquet.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet")
    out = tmp_path / "out.jsonl"
    r = classify(tmp_path / "in.parquet", out)
    assert r.returncode == 0, r.stderr
    assert [i["value"] for i in read_jsonl(out)[0]["items"]] == ["Hi\nthere", "Hello."]
