"""JSON read strictly: what Python's json accepts silently and other parsers do not.

- NaN and Infinity: Python's json reads and writes them, strict JSON parsers (trainers') reject
  them. So does a number too large for a double (`1e400`), which json reads as Infinity. Readers
  call `find_nonfinite` on records only when the text could hold one (`may_hold_nonfinite`, a
  scan at C speed), so clean files pay nothing; writers use `allow_nan=False`.
- The same key twice in one object: json keeps the last value and drops the other without a
  word. `loads` refuses it (DuplicateKeyError; about 7 % slower than json.loads), and
  `duplicate_at` finds which element of a top-level list holds it, for a message that names the
  record.
"""

import json
import math
import re

# a number literal json reads as Infinity: an exponent of three digits or more, or 309+ digits
_HUGE_NUMBER = re.compile(r"\d[eE]\+?\d{3}|\d{309}")


class DuplicateKeyError(ValueError):
    """An object holding one key twice; str() says which."""

    def __init__(self, key):
        super().__init__(f"the key {key!r} appears twice in one object (JSON keeps only the last value, "
                         f"dropping the other); remove or rename one")
        self.key = key


def _unique_pairs(pairs):
    obj = dict(pairs)
    if len(obj) < len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(key)
            seen.add(key)
    return obj


def loads(text):
    """json.loads that refuses an object holding a key twice (DuplicateKeyError, a ValueError)."""
    return json.loads(text, object_pairs_hook=_unique_pairs)


def duplicate_at(text):
    """The index of the first element of the top-level JSON list `text` that holds an object with a
    key twice, or None (the slow path: called once a `loads` of the whole text has failed so)."""
    decoder = json.JSONDecoder(object_pairs_hook=_unique_pairs)
    pos = text.index("[") + 1
    for index in range(len(text)):
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return None
        try:
            _, pos = decoder.raw_decode(text, pos)
        except DuplicateKeyError:
            return index
    return None


def may_hold_nonfinite(text):
    """False when the text surely has no bare NaN/Infinity and no number too large for a double
    (a string holding the word, or "e123", is a false alarm)."""
    return "NaN" in text or "Infinity" in text or bool(_HUGE_NUMBER.search(text))


def find_nonfinite(obj, at=""):
    """(field path, value) of the first NaN/Infinity inside obj ('quality_score', 'items[1].score'), or None."""
    if isinstance(obj, float):
        return None if math.isfinite(obj) else (at or "value", obj)
    if isinstance(obj, dict):
        for k, v in obj.items():
            found = find_nonfinite(v, f"{at}.{k}" if at else str(k))
            if found:
                return found
    elif isinstance(obj, list):
        for k, v in enumerate(obj):
            found = find_nonfinite(v, f"{at}[{k}]")
            if found:
                return found
    return None


def spelled(x):
    """How JSON-with-extensions spells a non-finite float."""
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def nonfinite_reason(rec):
    """A one-line reason when rec holds NaN/Infinity, else None."""
    found = find_nonfinite(rec)
    if found is None:
        return None
    field, value = found
    what = spelled(value) if math.isnan(value) else f"{spelled(value)} (or a number too large for a double, as 1e400)"
    return f"'{field}' is {what}, which strict JSON does not allow (trainers reject it); use null or a string"


def as_strict(obj):
    """obj with NaN/Infinity spelled as strings, so that a file quoting bad records is strict JSON too."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return spelled(obj)
    if isinstance(obj, dict):
        return {k: as_strict(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [as_strict(v) for v in obj]
    return obj
