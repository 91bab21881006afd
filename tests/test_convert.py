"""Converters from Alpaca, ShareGPT and OpenAI messages into ReAlign records."""

import pytest

from realign.convert import convert_records, sniff_format
from realign.errors import DataError

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
    with pytest.raises(DataError, match="items\\[0\\].from must be 'human'"):
        convert_records(first_gpt, "f")


def test_explicit_format_mismatch_is_an_error():
    with pytest.raises(DataError, match="'instruction' must be a string"):
        convert_records(SHAREGPT, "f", "alpaca")
