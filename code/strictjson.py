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


# a number literal json reads as Infinity: an exponent of three digits or more, or 309+ digits.
# Found with bytes.translate and `in` (C speed; a regex over a 40 MB file took 1.5-3 s): every
# ASCII digit becomes 0, e/E become e, + stays, anything else a space, and the literal shapes
# "0e000", "0e+000" and 309 zeros are looked for. JSON numbers have ASCII digits only.
_SHAPE = bytes(48 if 48 <= b <= 57 else 101 if b in (69, 101) else 43 if b == 43 else 32 for b in range(256))
_HUGE_SHAPES = (b"0e000", b"0e+000", b"0" * 309)
_CHUNK = 8 << 20  # characters shaped at a time: memory stays bounded on a file of gigabytes


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
    if "NaN" in text or "Infinity" in text:
        return True
    overlap = len(_HUGE_SHAPES[-1])  # a shape cut by a chunk's end is seen whole in the next chunk
    for start in range(0, len(text), _CHUNK):
        shape = text[max(0, start - overlap):start + _CHUNK].encode("utf-8", "surrogatepass").translate(_SHAPE)
        if any(huge in shape for huge in _HUGE_SHAPES):
            return True
    return False


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
