"""Shapes out (--output_format) and files in and out (.parquet, .csv, dataset folders): round trips."""

import json

import pyarrow as pa
import pytest

from conftest import make_record, run_script
from realign.convert import convert_records, load_any
from realign.errors import DataError
from realign.export import OUTPUT_FORMATS, export_records
from realign.records import load_records, write_records

SYSTEM = "Always answer in French.\n\nBe terse."


def records():
    multi = make_record("m", q="Bonjour ?", a="Salut.", cat="text_to_text_translation", source="mine", system=SYSTEM)
    multi["items"] += [{"from": "human", "value": "Et 2+2 ?"}, {"from": "gpt", "value": "4."}]
    return [multi, make_record("s", q="What is 2+2?", a="4", cat="math_puzzles", tag="rewrite"),
            make_record("n", q="Hi", a="Hello", cat=None)]


def same_conversation(a, b):
    assert [(i["from"], i["value"]) for i in a["items"]] == [(i["from"], i["value"]) for i in b["items"]]
    assert a.get("system") == b.get("system") and a["id"] == b["id"]


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
def test_every_output_shape_reads_back_as_the_same_conversation(fmt):
    out = export_records(records(), fmt, "f")
    back, sniffed = convert_records(out, "f")
    assert sniffed == fmt
    for a, b in zip(records(), back):
        same_conversation(a, b)
    assert back[0]["source"] == "mine" and back[1]["tag"] == "rewrite"  # other fields ride along
    if fmt != "realign":
        assert back[1]["category"] == "math_puzzles" and "category" not in back[2]


def test_the_trainer_shapes_are_the_documented_ones():
    alpaca, sharegpt, messages = (export_records(records(), f, "f")[0] for f in ("alpaca", "sharegpt", "messages"))
    assert alpaca["instruction"] == "Et 2+2 ?" and alpaca["output"] == "4." and alpaca["input"] == ""
    assert alpaca["history"] == [["Bonjour ?", "Salut."]] and alpaca["system"] == SYSTEM
    assert sharegpt["conversations"][0] == {"from": "human", "value": "Bonjour ?"} and sharegpt["system"] == SYSTEM
    assert messages["messages"][:2] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Bonjour ?"}]
    assert [m["role"] for m in messages["messages"]] == ["system", "user", "assistant", "user", "assistant"]


def test_alpaca_refuses_turns_that_are_not_pairs():
    rec = make_record(1)
    rec["items"].append({"from": "human", "value": "unanswered"})
    with pytest.raises(DataError, match=r"record 0 \(id=1\): cannot write as alpaca.*--output_format sharegpt"):
        export_records([rec], "alpaca", "f")
    assert export_records([rec], "messages", "f")[0]["messages"][-1] == {"role": "user", "content": "unanswered"}


# ---------------------------------------------------------------- files

@pytest.mark.parametrize("ext", ["json", "jsonl", "parquet", "csv"])
@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
def test_every_shape_round_trips_through_every_file_type(tmp_path, ext, fmt):
    path = tmp_path / f"out.{ext}"
    write_records(path, export_records(records(), fmt, path))
    back, sniffed = load_any(path)
    assert sniffed == fmt
    for a, b in zip(records(), back):
        same_conversation(a, b) if ext != "csv" else same_conversation({**a, "id": str(a["id"])}, b)


def test_parquet_keeps_nested_fields_and_fields_only_some_records_have(tmp_path):
    recs = records()
    recs[1]["items"][0]["evidence"] = ["passage one", "passage two"]
    recs[2]["score"] = 0.5
    write_records(tmp_path / "a.parquet", recs)
    assert load_records(tmp_path / "a.parquet") == recs
    mixed = [make_record(1), make_record("two")]
    with pytest.raises(DataError, match=r"the id .two.: Parquet keeps one type.*write .jsonl"):
        write_records(tmp_path / "b.parquet", mixed)
    assert not (tmp_path / "b.parquet").exists()


def test_parquet_nan_is_refused_like_json_nan(tmp_path):
    pa.parquet.write_table(pa.Table.from_pylist([{"question": "q", "answer": "a", "score": float("nan")}]),
                           tmp_path / "nan.parquet")
    with pytest.raises(DataError, match="record 0: 'score' is NaN"):
        load_any(tmp_path / "nan.parquet")


def test_csv_from_a_spreadsheet(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text('\ufeffquestion,answer,note\n"What is 2+2?\nShow work.","2+2 = 4\n#### 4",\n', encoding="utf-8")
    (rec,), fmt = load_any(path)
    assert fmt == "gsm8k" and rec["items"][0]["value"] == "What is 2+2?\nShow work." and "note" not in rec
    path.write_text("question,answer\nq,a,extra\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2: more cells than the header"):
        load_any(path)


def save_to_disk(folder, rows):
    """What datasets' Dataset.save_to_disk writes: Arrow IPC stream files listed in state.json."""
    folder.mkdir(parents=True)
    table = pa.Table.from_pylist(rows)
    with pa.OSFile(str(folder / "data-00000-of-00001.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    (folder / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}],
                                                   "_split": "train"}))
    (folder / "dataset_info.json").write_text("{}")


def test_a_dataset_folder_saved_with_save_to_disk_is_read(tmp_path):
    rows = [{"instruction": "Summarise.", "context": "Rome is in Italy.", "response": "Italy.", "category": "summarization"},
            {"instruction": "Say hi.", "context": "", "response": "Hi.", "category": "open_qa"}]
    save_to_disk(tmp_path / "dolly", rows)
    recs, fmt = load_any(tmp_path / "dolly")
    assert fmt == "dolly" and recs[0]["items"][0]["value"] == "Summarise.\n\nRome is in Italy."
    save_to_disk(tmp_path / "dd" / "train", rows)
    save_to_disk(tmp_path / "dd" / "test", rows[:1])
    (tmp_path / "dd" / "dataset_dict.json").write_text('{"splits": ["train", "test"]}')
    with pytest.raises(DataError, match="splits test, train; give the folder of one split"):
        load_any(tmp_path / "dd")
    assert len(load_any(tmp_path / "dd" / "train")[0]) == 2
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither a dataset saved with save_to_disk"):
        load_any(tmp_path / "empty")


def test_the_pipeline_reads_parquet_and_writes_a_trainer_file(tmp_path):
    """classify from a Parquet file, filter to messages in Parquet: the shape TRL's SFTTrainer takes."""
    inp = tmp_path / "raw.parquet"
    pa.parquet.write_table(pa.Table.from_pylist([{"question": "What is 2+2?", "answer": "4"},
                                                 {"question": "What is 3+3?", "answer": "6"}]), inp)
    classified = tmp_path / "classified.parquet"
    r = run_script("classify.py", "--input_data_path", inp, "--output_path", classified, "--quiet")
    assert r.returncode == 0, r.stderr
    final = tmp_path / "final.parquet"
    r = run_script("rewrite_data_selection.py", "--input_original_data_path", classified,
                   "--input_rewrite_data_path", classified, "--output_path", final, "--output_format", "messages")
    assert r.returncode == 0, r.stderr
    rows = pa.parquet.read_table(final).to_pylist()
    assert rows[0]["messages"] == [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]
    assert "(messages)" in r.stdout


@pytest.mark.parametrize("name, content, needle", [
    ("bad.parquet", b"not parquet at all", "not a readable Parquet file"),
    ("bad.csv", b'id,items\n1,"[{""from"": ""human"""\n', "line 2: column 'items' is not valid JSON"),
    ("bad.csv", b"a,b\n\xff\xfe,x\n", "not UTF-8 text"),
    ("empty.csv", b"question,answer\n", "no records"),
])
def test_broken_tables_are_one_line_exit_2(tmp_path, name, content, needle):
    inp = tmp_path / name
    inp.write_bytes(content)
    r = run_script("classify.py", "--input_data_path", inp, "--output_path", tmp_path / "out.parquet")
    assert r.returncode == 2 and needle in r.stderr and str(inp) in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.parquet").exists()


def test_alpaca_in_alpaca_out_keeps_instruction_and_input_apart(tmp_path):
    alpaca = [{"instruction": "Translate into French.", "input": "Good morning, my friend.", "output": "Bonjour, mon ami."},
              {"instruction": "Name a primary colour.", "input": "", "output": "Red."},
              {"instruction": "Summarise:", "input": "Line one.\n\nLine two.", "output": "Two lines.", "system": "Be brief."}]
    inp = tmp_path / "alpaca.json"
    inp.write_text(json.dumps(alpaca))
    assert run_script("classify.py", "--input_data_path", inp, "--output_path", tmp_path / "c.json").returncode == 0
    r = run_script("rewrite_data_selection.py", "--input_original_data_path", tmp_path / "c.json",
                   "--input_rewrite_data_path", tmp_path / "c.json", "--output_path", tmp_path / "final.json",
                   "--output_format", "alpaca", "--rules", "none")
    assert r.returncode == 0, r.stderr
    back = json.loads((tmp_path / "final.json").read_text())
    for want, got in zip(alpaca, back):
        assert {k: got[k] for k in want} == want  # instruction, input, output (and system) as they came in


def test_an_edited_question_is_not_split_by_a_stale_input():
    rec = convert_records([{"instruction": "Translate.", "input": "Hello.", "output": "Bonjour."}], "f")[0][0]
    rec["items"][0]["value"] = "Translate into German: Hello."  # edited since: the input is no longer its tail
    assert export_records([rec], "alpaca", "f")[0]["instruction"] == "Translate into German: Hello."
