"""The classifier's labelled-data format: a JSON (or JSONL) list of
`{"instruction": str, "category": one of the 46 task names}`, as in the original project's
task_classifier_{train,test}_dataset.json. Extra fields are ignored.
"""

from realign.constant import TASK_SET
from realign.errors import DataError
from realign.records import read_json_any, where


def load_labeled(path):
    """(instructions, categories) from a labelled file; a bad record is a DataError naming it."""
    rows = read_json_any(path)
    if not rows:
        raise DataError(f"{path}: no records")
    texts, labels = [], []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(f"{path}: record {i}: expected an object, got {type(row).__name__}")
        text, label = row.get("instruction"), row.get("category")
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where(path, i, row)}: 'instruction' must be a non-empty string")
        if label not in TASK_SET:
            raise DataError(f"{where(path, i, row)}: 'category' must be one of the 46 task names, got {label!r}")
        texts.append(text)
        labels.append(label)
    return texts, labels

