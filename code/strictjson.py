"""NaN and Infinity: Python's json reads and writes them, strict JSON parsers (trainers') reject them.

Readers call `find_nonfinite` on records only when the text could hold one (`may_hold_nonfinite`,
a substring test at C speed), so clean files pay nothing; writers use `allow_nan=False`.
"""

import math


def may_hold_nonfinite(text):
    """False when the text surely has no bare NaN/Infinity (a string holding the word is a false alarm)."""
    return "NaN" in text or "Infinity" in text


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
    return f"'{field}' is {spelled(value)}, which strict JSON does not allow (trainers reject it); use null or a string"


def as_strict(obj):
    """obj with NaN/Infinity spelled as strings, so that a file quoting bad records is strict JSON too."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return spelled(obj)
    if isinstance(obj, dict):
        return {k: as_strict(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [as_strict(v) for v in obj]
    return obj
