"""The classifier's labelled-data format: a JSON (or JSONL) list of
`{"instruction": str, "category": one of the 46 task names}`, as in the original project's
task_classifier_{train,test}_dataset.json. Extra fields are ignored.

Real prompts to calibrate on (`classify.py --train FILE --calibrate REAL`) use the same format
with two optional fields: `weight` (a positive number, default 1: a prompt two labellers
labelled differently is two rows of weight 0.5) and `train` (true: train on it as well, when its
licence allows; default false: calibrate only), `group` (a string, e.g. the prompt's source: when
given, the calibration's held-out scores come from leaving out one group at a time, so the
confidence is fitted on prompts whose source the model never trained on, as a new user's will be).
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
    groups: list = None  # a group name per row (e.g. the source), or None: folds by text


def load_real(path):
    """RealPrompts from a labelled file with optional `weight` and `train` fields."""
    texts, labels, rows = _rows(path)
    weights, train, groups = [], [], []
    for i, row in enumerate(rows):
        w, t, g = row.get("weight", 1), row.get("train", False), row.get("group")
        if g is not None and not isinstance(g, str):
            raise DataError(f"{where(path, i, row)}: 'group' must be a string, got {g!r}")
        groups.append(g)
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0:
            raise DataError(f"{where(path, i, row)}: 'weight' must be a positive number, got {w!r}")
        if not isinstance(t, bool):
            raise DataError(f"{where(path, i, row)}: 'train' must be true or false, got {t!r}")
        weights.append(float(w))
        train.append(t)
    if any(g is not None for g in groups) and None in groups:
        raise DataError(f"{path}: 'group' is given on some records and not on others: give it on all or none")
    return RealPrompts(texts, labels, np.array(weights), np.array(train, dtype=bool),
                       groups if groups and groups[0] is not None else None)
