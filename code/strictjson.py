"""JSON read strictly: what Python's json accepts silently and other parsers do not.

- NaN and Infinity: Python's json reads and writes them, strict JSON parsers (trainers') reject
  them. So does a number too large for a double (`1e400`), which json reads as Infinity, and one
  too small (`1e-400`), which parsers read as 0.0 without a word (Underflow). Readers
  call `find_nonfinite` on records only when the text could hold one (a parser says so:
  `Loader.slow`), so clean files pay nothing; writers use `allow_nan=False`.
- The same key twice in one object: json keeps the last value and drops the other without a
  word. `loads` refuses it (DuplicateKeyError; json.loads with a pairs hook, about 1.5x the time
  of plain json.loads), and `duplicate_at` finds which element of a top-level list holds it, for
  a message that names the record.
- `Loader(text)` parses a file's lines (or the whole of it) with exactly `loads`' answers and
  errors, 2-3x faster: orjson where it provably agrees, `loads` where not.
"""

import json
import math
import re

try:
    import orjson
except ImportError:  # pragma: no cover - a dependency; without it `loader` hands out the slow `loads`
    orjson = None


# orjson reads an integer token past 64 bits as a float, where json keeps an int. Such a token is
# found in one pass at C speed (bytes.translate and `in`, in chunks; a regex over 90 MB took
# 0.6 s): every ASCII digit becomes 0, what may come just before a number token (a JSON blank or
# , : [ -) a space, anything else x; a token of 19 digits or more is then a space and 19 zeros
# (or 19 zeros at the very start). A digit run inside a string after a letter or a quote (a hex
# hash) is none; one after a blank inside a string is a false alarm, which costs only speed.
_DIGITS = bytes(48 if 48 <= b <= 57 else 32 if b in b" \t\n\r,:[-" else 120 for b in range(256))
_BIG_INT = b" " + b"0" * 19
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


class Underflow(float):
    """A number literal too small for a double (`1e-400`): parsers read it as 0.0 without a word;
    this 0.0 remembers its `literal`, so that find_nonfinite refuses it like 1e400."""

    def __new__(cls, literal):
        number = super().__new__(cls, 0.0)
        number.literal = literal
        return number


def _float(literal):
    number = float(literal)
    if number == 0.0 and any(c in "123456789" for c in literal.lower().partition("e")[0]):
        return Underflow(literal)
    return number


def loads(text):
    """json.loads that refuses an object holding a key twice (DuplicateKeyError, a ValueError)
    and reads a literal that underflows to 0.0 as an Underflow."""
    return json.loads(text, object_pairs_hook=_unique_pairs, parse_float=_float)


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


def may_hold_big_int(data):
    """False when `data` (JSON text, str or bytes) surely holds no integer token of 19 digits or
    more, which orjson could read as a float."""
    for start in range(0, len(data), _CHUNK):
        piece = data[max(0, start - len(_BIG_INT)):start + _CHUNK]  # a token cut by a chunk's end: seen whole
        shape = (piece.encode("utf-8", "surrogatepass") if isinstance(piece, str) else piece).translate(_DIGITS)
        if _BIG_INT in shape or (start == 0 and shape.startswith(_BIG_INT[1:])):
            return True
    return False


_BIG_INT_TOKEN = re.compile(r"(?:^|[ \t\n\r,:\[-])[0-9]{19}")  # the same, for one piece holding floats
_TINY_TOKEN = re.compile(r"[0-9][eE]-0*[0-9]{3}")  # an exponent of -100 or less: may underflow to 0.0
_KEY_BLANK = re.compile(r'"[ \t\n\r]+:')  # a quote, blanks, a colon: how a key may end besides '":'


class _HasFloat(Exception):
    pass


def _entries(obj, floats=False):
    """How many key-value pairs the objects inside a parsed JSON value hold, all levels.
    _HasFloat at the first float unless `floats`."""
    n = 0
    if type(obj) is dict:
        n = len(obj)
        obj = obj.values()
    for value in obj:
        kind = type(value)
        if kind is dict or kind is list:
            n += _entries(value, floats)
        elif kind is float and not floats:
            raise _HasFloat
    return n


class Loader:
    r"""A parser for `text` or pieces of it (its lines: JSONL) with exactly `loads`' answers,
    values and errors, 2-3x faster on records. `slow` turns True once a piece went to `loads`:
    only then may the values hold NaN/Infinity or an unpaired surrogate (orjson refuses those).

    orjson parses each piece; json decides whatever orjson refuses (NaN, 1e400, unpaired
    surrogates, deep nesting, syntax errors: the error is json's). orjson reads an integer past
    64 bits as a float, so a piece whose value holds a float and whose text holds a 19-digit
    number token goes to json whole. A key given twice is what orjson cannot say: it keeps the
    last value, as json does. So the pairs orjson kept are counted against the key ends of the
    piece: a key's closing quote is followed by `:`, or by blanks and then `:` (a JSON text has no
    other place for a key to end), so the piece holds at least as many `":` and `"<blanks>:` as
    it has keys, and more than orjson kept whenever a key came twice. Equal counts prove no key
    came twice; any other piece (a `": ` inside a string, a key twice) goes to `loads`, which
    raises DuplicateKeyError or agrees. `"<blanks>:` is counted only when `text` holds one."""

    def __init__(self, text):
        self.blanks = _KEY_BLANK.search(text) is not None
        self.slow = orjson is None

    def _slow(self, piece):
        self.slow = True
        return loads(piece)

    def __call__(self, piece):
        if orjson is None:
            return loads(piece)
        try:
            obj = orjson.loads(piece)
        except (orjson.JSONDecodeError, RecursionError):
            return self._slow(piece)
        kind = type(obj)
        if kind is dict or kind is list:
            try:
                kept = _entries(obj)
            except _HasFloat:
                if _BIG_INT_TOKEN.search(piece) or _TINY_TOKEN.search(piece):
                    return self._slow(piece)
                kept = _entries(obj, floats=True)
            except RecursionError:  # orjson nests 1024 deep, Python's frames stop sooner: json decides
                return self._slow(piece)
        elif kind is float and (_BIG_INT_TOKEN.search(piece) or _TINY_TOKEN.search(piece)):
            return self._slow(piece)
        else:
            kept = 0
        ends = piece.count('":')
        if self.blanks:
            ends += len(_KEY_BLANK.findall(piece))
        if ends != kept:
            return self._slow(piece)
        return obj


def find_nonfinite(obj, at=""):
    """(field path, value) of the first NaN/Infinity inside obj ('quality_score', 'items[1].score'), or None."""
    if isinstance(obj, float):
        return None if math.isfinite(obj) and type(obj) is not Underflow else (at or "value", obj)
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
    if type(value) is Underflow:
        return (f"'{field}' is {value.literal}, a number too small for a double (JSON readers take it as 0.0); "
                f"use 0, null or a string")
    what = spelled(value) if math.isnan(value) else f"{spelled(value)} (or a number too large for a double, as 1e400)"
    return f"'{field}' is {what}, which strict JSON does not allow (trainers reject it); use null or a string"


def as_strict(obj):
    """obj with NaN/Infinity spelled as strings, so that a file quoting bad records is strict JSON too."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return spelled(obj)
    if type(obj) is Underflow:
        return obj.literal
    if isinstance(obj, dict):
        return {k: as_strict(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [as_strict(v) for v in obj]
    return obj
