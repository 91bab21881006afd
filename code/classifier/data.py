"""The classifier's labelled-data format: a JSON (or JSONL) list of
`{"instruction": str, "category": one of the 46 task names}`, as in the original project's
task_classifier_{train,test}_dataset.json. Extra fields are ignored.

Real prompts to calibrate on (`classify.py --train FILE --calibrate REAL`) use the same format
with two optional fields: `weight` (a positive number, default 1: a prompt two labellers
labelled differently is two rows of weight 0.5) and `train` (true: train on it as well, when its
licence allows; default false: calibrate only).
"""

from dataclasses import dataclass

import numpy as np

from realign.constant import TASK_SET
from realign.errors import DataError
from realign.records import read_json_any, where


def load_labeled(path):
    """(instructions, categories) from a labelled file; a bad record is a DataError naming it."""
    texts, labels, _ = _rows(path)
    return texts, labels


def _rows(path):
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
    return texts, labels, rows


@dataclass
class RealPrompts:
    """Labelled prompts written by people: texts[i] labelled labels[i] with weight weights[i];
    train[i] says whether the model may train on it too."""
    texts: list
    labels: list
    weights: np.ndarray
    train: np.ndarray


def load_real(path):
    """RealPrompts from a labelled file with optional `weight` and `train` fields."""
    texts, labels, rows = _rows(path)
    weights, train = [], []
    for i, row in enumerate(rows):
        w, t = row.get("weight", 1), row.get("train", False)
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0:
            raise DataError(f"{where(path, i, row)}: 'weight' must be a positive number, got {w!r}")
        if not isinstance(t, bool):
            raise DataError(f"{where(path, i, row)}: 'train' must be true or false, got {t!r}")
        weights.append(float(w))
        train.append(t)
    return RealPrompts(texts, labels, np.array(weights), np.array(train, dtype=bool))
