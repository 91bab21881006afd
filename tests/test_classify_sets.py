"""The committed pointers to other people's prompts (bench/data/classify_human, classify_gair):
pointers and labels only, never the texts, and readable by the script that rebuilds the texts."""

import json
import sys

import pytest

from conftest import ROOT
from realign.constant import TASK_SET

sys.path.insert(0, str(ROOT / "bench"))
import classify_human_set  # noqa: E402

HUMAN = ROOT / "bench" / "data" / "classify_human"
GAIR = ROOT / "bench" / "data" / "classify_gair"


@pytest.mark.parametrize("folder", [HUMAN, GAIR], ids=["human", "gair"])
def test_an_index_points_at_prompts_and_holds_none_of_their_text(folder):
    records = classify_human_set.load_index(str(folder / "index.json"))
    assert records and len({r["uid"] for r in records}) == len(records)
    for r in records:
        assert "text" not in r and "instruction" not in r
        assert len(r["commit"]) == 40 and r["line"] >= 1


def test_the_gair_index_has_the_originals_labels_and_the_line_of_each_instruction():
    records = classify_human_set.load_index(str(GAIR / "index.json"))
    assert len(records) == 1395
    assert {r["category"] for r in records} == TASK_SET  # 30 a task, more for three
    for n, r in enumerate(records, 1):
        assert r["uid"] == f"gair_train:{n}" and r["field"] == "instruction"
        assert r["line"] == 3 + 4 * (n - 1)  # pretty-printed: "[", then 4 lines an object
        assert r["path"] == "datasets/classification/task_classifier_train_dataset.json"  # never the test set


def test_a_pretty_printed_instruction_line_is_read_as_its_text():
    line = '        "instruction": "Say \\"hi\\" twice.\\nThen stop. ",'
    record = {"field": "instruction"}
    assert classify_human_set.text_of(record, classify_human_set.parse_line(line)) == 'Say "hi" twice.\nThen stop.'


def test_the_human_labels_name_only_known_tasks():
    for name in ("labels_a.json", "labels_b.json"):
        rows = json.loads((HUMAN / name).read_text(encoding="utf-8"))
        assert {r["category"] for r in rows} <= TASK_SET
