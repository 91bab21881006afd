"""strictjson's fast parsers give exactly the checked parser's answers (issue 21 #5: merge speed).

`strictjson.Loader` parses with orjson and proves by counting that no key came twice;
`files.loads_for` uses orjson on the files we write. Both must agree with json on every text:
the same value (an integer past 64 bits stays an integer), the same error, the same refusal of
a key given twice. Checked on random texts built to hit the edges: keys twice, blanks before
colons, escaped quotes and colons inside strings, unicode escapes of key names, big integers,
NaN, 1e400, unpaired surrogates, deep nesting, and input-hash-like digit runs.
"""

import json
import random

import pytest

from realign.files import loads_for
from realign.strictjson import DuplicateKeyError, Loader, loads, may_hold_big_int

KEYS = ["id", "items", "from", "value", "a", "b", "\\u0061", "k\\\"", "x:y", "\\\": "]
STRINGS = ["plain", "say \\\"hi\\\": ok", "\\\" ", "a\\\"\\t", "12345678901234567890",
           "hash 0123456789012345678901234567", "\\ud83d\\ude00", "\\ud800", "NaN", "\\n\"", "é ✓"]
NUMBERS = ["0", "-1", "1.5", "1e5", "1e400", "-1e400", "1e-400", "18446744073709551615",
           "18446744073709551616", "-9223372036854775809", "123456789012345678901234567890", "NaN",
           "-Infinity", "0.1234567890123456789012"]
BLANKS = ["", "", "", " ", "\t", "\r", "  "]


def _value(rng, depth):
    roll = rng.random()
    if depth < 4 and roll < 0.3:
        return _object(rng, depth + 1)
    if depth < 4 and roll < 0.4:
        return "[" + ",".join(_value(rng, depth + 1) for _ in range(rng.randint(0, 3))) + "]"
    if roll < 0.7:
        return '"' + rng.choice(STRINGS) + '"'
    if roll < 0.75:
        return rng.choice(["true", "false", "null"])
    return rng.choice(NUMBERS)


def _object(rng, depth):
    keys = [rng.choice(KEYS) for _ in range(rng.randint(0, 4))]
    pairs = [f'"{k}"{rng.choice(BLANKS)}:{rng.choice(BLANKS)}{_value(rng, depth)}' for k in keys]
    return "{" + ",".join(pairs) + "}"


def _outcome(parse, text):
    """(value as canonical text, error type and message): what a parser made of text."""
    try:
        return repr(parse(text)), None
    except (ValueError, RecursionError) as e:
        return None, (type(e).__name__, str(e))


def _texts(seed, n):
    rng = random.Random(seed)
    for _ in range(n):
        text = _object(rng, 0)
        if rng.random() < 0.05:  # torn or broken
            text = text[: rng.randint(0, len(text))]
        yield text


def test_loader_agrees_with_the_checked_parser_on_random_texts():
    seen = {"fast": 0, "duplicate": 0, "error": 0}
    for text in _texts(1, 20_000):
        expected = _outcome(loads, text)
        parse = Loader(text)
        assert _outcome(parse, text) == expected, text
        if expected[1] is None and not parse.slow:
            seen["fast"] += 1
        elif expected[1] and expected[1][0] == "DuplicateKeyError":
            seen["duplicate"] += 1
        elif expected[1]:
            seen["error"] += 1
    assert min(seen.values()) > 500, seen  # every path was taken often


def test_loader_agrees_on_the_lines_of_a_file_and_on_the_whole_of_it():
    lines = list(_texts(2, 3000))
    text = "\n".join(lines)
    fast = Loader(text)
    for line in lines:
        assert _outcome(fast, line) == _outcome(loads, line), line
    whole = "[" + ",\n".join(line for line in lines if _outcome(loads, line)[1] is None) + "]"
    assert _outcome(Loader(whole), whole) == _outcome(loads, whole)


def test_our_own_files_read_with_orjson_keep_json_values():
    for text in _texts(3, 5000):
        parse = loads_for(text.encode("utf-8", "surrogatepass"))
        assert _outcome(parse, text) == _outcome(json.loads, text), text


@pytest.mark.parametrize("text", ['{"a": 1, "a" :2}', '{"a":1,"a"\t: 2}', '{"x": {"a":1,"a":1}}',
                                  '[{"a":1},{"b":[{"c":1,"c":2}]}]', '{"\\u0061":1,"a":2}',
                                  '{"s":"\\": ","a":1,"a":2}'])
def test_a_key_twice_is_refused_by_the_fast_parser(text):
    with pytest.raises(DuplicateKeyError):
        Loader(text)(text)


def test_big_integers_are_seen_and_input_hashes_are_not():
    assert may_hold_big_int('{"id": 18446744073709551616}')
    assert may_hold_big_int(b"[-1234567890123456789012]")
    assert may_hold_big_int("1234567890123456789012")
    assert not may_hold_big_int('{"input_hash": "a0123456789012345678901234567890"}')
    assert not may_hold_big_int('{"x": 0.12345678901234567890123}')
    value = '{"id": 18446744073709551616, "hash": "f0123456789012345678901234567890"}'
    assert Loader(value)(value)["id"] == 2 ** 64
    assert loads_for(value.encode())(value)["id"] == 2 ** 64


def test_slow_says_when_json_decided_and_only_then_nan_or_a_lone_surrogate_may_be_in():
    """read_json_raw checks values for NaN/Infinity and unpaired surrogates only when
    Loader.slow: orjson refuses both, so a text it parsed alone holds neither."""
    for text, slow in (('[{"a": 1.5, "b": "\\ud83d\\ude00"}]', False), ('[{"a": NaN}]', True),
                       ('[{"a": 1e400}]', True), ('[{"a": "\\ud800"}]', True), ('[{"a": 1, "a": 2}]', True),
                       ('[{"id": 18446744073709551616, "x": 0.5}]', True)):
        parse = Loader(text)
        try:
            parse(text)
        except ValueError:
            pass
        assert parse.slow is slow, text


@pytest.mark.parametrize("depth", [500, 990, 1020, 1100])
def test_deep_nesting_gets_jsons_answer(depth):
    """orjson nests up to 1024 levels, the pair count walks one Python frame a level: where
    either gives up, json decides (a value, or its RecursionError)."""
    for text in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        assert _outcome(Loader(text), text) == _outcome(loads, text)
