"""Converters from Alpaca, ShareGPT and OpenAI messages into ReAlign records."""

import json
import shutil
from pathlib import Path

import pytest

from conftest import make_record, write_json
from realign.convert import BadRecordError, convert_records, load_any, parse_field_map, sniff_format, write_rejected
from realign.errors import DataError, UsageError
from realign.records import load_records, write_records

ALPACA = [{"instruction": "Translate to French", "input": "Good morning", "output": "Bonjour"},
          {"instruction": "Name a prime", "input": "", "output": "7"}]
SHAREGPT = [{"id": "s1", "conversations": [{"from": "system", "value": "Be brief."},
                                             {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"},
                                             {"from": "human", "value": "Bye"}, {"from": "gpt", "value": "Bye!"}]}]
MESSAGES = [{"messages": [{"role": "user", "content": [{"type": "text", "text": "2+2?"}]},
                          {"role": "assistant", "content": "4"}], "source": "chat"}]


def test_sniffs_each_format():
    assert sniff_format(ALPACA[0], "f") == "alpaca"
    assert sniff_format(SHAREGPT[0], "f") == "sharegpt"
    assert sniff_format(MESSAGES[0], "f") == "messages"
    assert sniff_format({"id": 0, "items": []}, "f") == "realign"
    with pytest.raises(DataError, match="--input_format"):
        sniff_format({"prompt": "x"}, "f")


def test_alpaca_input_appended_and_ids_assigned():
    recs, fmt = convert_records(ALPACA, "f")
    assert fmt == "alpaca"
    assert [r["id"] for r in recs] == [0, 1]
    assert recs[0]["items"][0]["value"] == "Translate to French\n\nGood morning"
    assert recs[1]["items"][0]["value"] == "Name a prime"
    assert recs[1]["items"][1] == {"from": "gpt", "value": "7"}


def test_sharegpt_keeps_id_system_and_later_turns():
    (rec,), _ = convert_records(SHAREGPT, "f")
    assert rec["id"] == "s1" and rec["system"] == "Be brief."
    assert [i["from"] for i in rec["items"]] == ["human", "gpt", "human", "gpt"]


def test_messages_content_parts_and_extra_fields():
    (rec,), _ = convert_records(MESSAGES, "f", "messages")
    assert rec["items"][0]["value"] == "2+2?" and rec["source"] == "chat"


def test_bad_role_and_wrong_first_turn_named():
    bad = [{"messages": [{"role": "tool", "content": "x"}]}]
    with pytest.raises(DataError, match="record 0: messages\\[0\\] has unknown role 'tool'"):
        convert_records(bad, "f")
    first_gpt = [{"conversations": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "b"}]}]
    with pytest.raises(DataError, match="conversations\\[0\\] is a 'gpt' turn, but a conversation must open "
                                        "with a human turn"):
        convert_records(first_gpt, "f")


def test_explicit_format_mismatch_is_an_error():
    with pytest.raises(DataError, match="'instruction' must be a string"):
        convert_records(SHAREGPT, "f", "alpaca")


# ---------------------------------------------------------------- shapes in

HERE_CASES = Path(__file__).parent / "fixtures" / "cases"


def case(name):
    """A small failing input from the shared cases (copied into tests/fixtures/cases)."""
    return json.loads((HERE_CASES / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("raw, fmt, question, answer", [
    ({"question": "Natalia sold 48 clips...", "answer": "48/2 = 24\n#### 72"}, "gsm8k",
     "Natalia sold 48 clips...", "48/2 = 24\n#### 72"),
    ({"problem": "What is $1+1$?", "solution": "$\\boxed{2}$", "level": "Level 1", "type": "Algebra"}, "math",
     "What is $1+1$?", "$\\boxed{2}$"),
    ({"instruction": "Summarise.", "context": "Rome is in Italy.", "response": "Italy.", "category": "summarization"},
     "dolly", "Summarise.\n\nRome is in Italy.", "Italy."),
    ({"instruction": "Say hi.", "context": "", "response": "Hi."}, "dolly", "Say hi.", "Hi."),
    ({"id": "u1", "data": ["Hi there", "Hello!", "How are you?", "Fine."]}, "ultrachat", "Hi there", "Hello!"),
    ({"prompt": "Write a haiku.", "prompt_id": "p1", "category": "Generation",  # No Robots
      "messages": [{"role": "user", "content": "Write a haiku."}, {"role": "assistant", "content": "Old pond..."}]},
     "messages", "Write a haiku.", "Old pond..."),
])
def test_auto_names_and_converts_each_dataset_shape(raw, fmt, question, answer):
    (rec,), got = convert_records([raw], "f")
    assert got == fmt
    assert rec["items"][0] == {"from": "human", "value": question}
    assert rec["items"][1] == {"from": "gpt", "value": answer}


def test_shape_extras_ride_along_and_ultrachat_keeps_every_turn():
    (rec,), _ = convert_records([{"problem": "p", "solution": "s", "level": "Level 1"}], "f")
    assert rec == {"id": 0, "level": "Level 1", "items": [{"from": "human", "value": "p"}, {"from": "gpt", "value": "s"}]}
    (rec,), _ = convert_records([{"id": "u1", "data": ["a", "b", "c", "d"]}], "f")
    assert rec["id"] == "u1" and [i["from"] for i in rec["items"]] == ["human", "gpt", "human", "gpt"]


def test_field_map_reads_any_columns():
    raw = [{"uid": "x7", "prompt": "2+2?", "completion": "4", "sys": "Be terse.", "lang": "en"}]
    fmap = parse_field_map("question=prompt,answer=completion,system=sys,id=uid")
    (rec,), fmt = convert_records(raw, "f", field_map=fmap)
    assert fmt == "field_map"
    assert rec == {"id": "x7", "lang": "en", "system": "Be terse.",
                   "items": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}]}
    with pytest.raises(DataError, match="record 0: 'completion' must be a string, got missing"):
        convert_records([{"prompt": "q"}], "f", field_map=fmap)


@pytest.mark.parametrize("text, needle", [("question=a", "needs answer=COLUMN"), ("question=a,answer=b,foo=c", "unknown key 'foo'"),
                                          ("question", "is not KEY=COLUMN")])
def test_bad_field_map_is_a_usage_error(text, needle):
    with pytest.raises(UsageError, match=needle):
        parse_field_map(text)


def test_alpaca_history_and_system_become_turns_and_system():
    raw = [{"instruction": "And 3+3?", "input": "", "output": "6", "system": "Be terse.", "history": [["2+2?", "4"]]}]
    (rec,), _ = convert_records(raw, "f")
    assert [i["value"] for i in rec["items"]] == ["2+2?", "4", "And 3+3?", "6"] and rec["system"] == "Be terse."


# ---------------------------------------------------------------- system prompts

def test_record_system_and_leading_system_turn_are_both_kept_in_order():
    recs, _ = convert_records(case("sharegpt_system_both.json"), "f")
    assert recs[0]["system"] == "You are a terse assistant.\n\nAlways answer in French."
    assert [i["value"] for i in recs[0]["items"]] == ["What is the capital of Italy?", "Rome."]
    assert recs[1]["system"] == "You are a terse assistant."
    (rec,), _ = convert_records([{"messages": [{"role": "system", "content": "A"}, {"role": "system", "content": "B"},
                                               {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}], "f")
    assert rec["system"] == "A\n\nB"


# ---------------------------------------------------------------- bad records

def test_a_gpt_greeting_first_names_the_raw_turn_or_goes_aside():
    raw = case("sharegpt_gpt_first.json")
    with pytest.raises(BadRecordError, match=r"^f: record 1 \(id='b2'\): conversations\[0\] is a 'gpt' turn, but a "
                                             r"conversation must open with a human turn"):
        convert_records(raw, "f")
    rejected = []
    recs, _ = convert_records(raw, "f", rejected=rejected)
    assert [r["id"] for r in recs] == ["b1"]
    assert rejected == [{"index": 1, "id": "b2", "record": raw[1],
                         "reason": "conversations[0] is a 'gpt' turn, but a conversation must open with a human "
                                   "turn (after optional system turns)"}]


def test_a_file_mixing_formats_says_so():
    raw = case("mixed_formats.json")
    with pytest.raises(BadRecordError, match=r"record 1: file mixes formats \(record 0 alpaca, record 1 sharegpt\)"):
        convert_records(raw, "f")
    raw = [{"instruction": f"q{i}", "output": "a"} for i in range(7)] + raw[1:]
    rejected = []
    recs, fmt = convert_records(raw, "f", rejected=rejected)
    assert fmt == "alpaca" and len(recs) == 7
    assert [(r["index"], r["reason"]) for r in rejected] == [(7, "file mixes formats (record 0 alpaca, record 7 sharegpt)")]


SHAREGPT_TURNS = [{"from": "human", "value": "q1"}, {"from": "gpt", "value": "a1"}]


@pytest.mark.parametrize("turns, reason", [
    (SHAREGPT_TURNS + [{"from": "human", "value": None}], "conversations[2].value must be a string, got null"),
    (SHAREGPT_TURNS + [{"from": "human"}], "conversations[2].value must be a string, got missing"),
    (SHAREGPT_TURNS + [{"from": "human", "value": "q2"}, {"from": "human", "value": "q3"}],
     "conversations[3] is a second 'human' turn in a row (after conversations[2]); human and gpt turns must alternate"),
    (SHAREGPT_TURNS + [{"from": "system", "value": "Now be rude."}],
     "conversations[2] is a system turn inside the conversation (after conversations[1]); "
     "a system prompt must come before the first human turn"),
    (SHAREGPT_TURNS + [{"from": "tool", "value": "{}"}],
     "conversations[2] has unknown role 'tool' (expected system, human/user or gpt/assistant)"),
    ([{"from": "human", "value": "q"}], "'conversations' needs a human turn followed by a gpt turn, got 1 turn(s)"),
    (None, "'conversations' must be a list of turns, got null"),
])
def test_messages_name_the_raw_field(turns, reason):
    raw = [{"id": "ok", "conversations": SHAREGPT_TURNS}, {"id": "bad", "conversations": turns}]
    rejected = []
    recs, _ = convert_records(raw, "f", rejected=rejected)
    assert [r["id"] for r in recs] == ["ok"]
    assert [(r["index"], r["id"], r["reason"]) for r in rejected] == [(1, "bad", reason)]


def test_alpaca_null_is_called_null_and_a_format_mismatch_says_what_the_record_looks_like():
    with pytest.raises(DataError, match="record 0: 'output' must be a string, got null"):
        convert_records([{"instruction": "q", "output": None}], "f")
    with pytest.raises(DataError, match="'instruction' must be a string, got missing "
                                        r"\(this record looks like sharegpt\)"):
        convert_records(SHAREGPT, "f", "alpaca")


def test_realign_items_with_user_assistant_roles_are_normalised():
    raw = [{"id": 1, "system": "S", "items": [{"from": "system", "value": "T"},
                                              {"from": "user", "value": "q", "category": "open_qa"},
                                              {"from": "assistant", "value": "a"}]}]
    (rec,), fmt = convert_records(raw, "f")
    assert fmt == "realign" and rec["system"] == "S\n\nT"
    assert rec["items"] == [{"from": "human", "value": "q", "category": "open_qa"}, {"from": "gpt", "value": "a"}]


def test_duplicate_ids_go_aside_with_the_first_kept():
    raw = [{"id": 1, "question": "a", "answer": "b"}, {"id": 1, "question": "c", "answer": "d"}]
    with pytest.raises(BadRecordError, match=r"record 1 \(id=1\): duplicate id \(first seen at record 0\)"):
        convert_records(raw, "f")
    rejected = []
    recs, _ = convert_records(raw, "f", rejected=rejected)
    assert len(recs) == 1 and rejected[0]["reason"] == "duplicate id (first seen at record 0)"


# ---------------------------------------------------------------- strict JSON

def test_nan_and_infinity_name_the_record_or_go_aside(tmp_path):
    path = tmp_path / "nan.json"
    shutil.copy(HERE_CASES / "alpaca_nan.json", path)
    with pytest.raises(BadRecordError, match=r"record 0: 'quality_score' is NaN, which strict JSON does not allow"):
        load_any(path)
    rejected = []
    with_ok = tmp_path / "mixed.jsonl"
    with_ok.write_text('{"instruction": "q", "output": "a", "score": 1.5}\n'
                       '{"instruction": "q2", "output": "a2", "score": -Infinity}\n', encoding="utf-8")
    recs, _ = load_any(with_ok, rejected=rejected)
    assert len(recs) == 1 and recs[0]["score"] == 1.5
    assert rejected[0]["reason"].startswith("'score' is -Infinity")
    write_rejected(tmp_path / "rej.jsonl", rejected)
    line = (tmp_path / "rej.jsonl").read_text(encoding="utf-8")
    assert json.loads(line, parse_constant=pytest.fail)["record"]["score"] == "-Infinity"


def test_every_step_refuses_nan_and_nothing_writes_it(tmp_path):
    path = write_json(tmp_path / "in.json", [make_record(0)])
    path.write_text(path.read_text().replace('"id": 0', '"id": 0, "w": NaN'))
    with pytest.raises(DataError, match=r"record 0 \(id=0\): 'w' is NaN"):
        load_records(path)
    with pytest.raises(ValueError):
        write_records(tmp_path / "out.jsonl", [{**make_record(0), "w": float("nan")}])
    assert not (tmp_path / "out.jsonl").exists()
