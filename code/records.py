"""Load, validate and write ReAlign records; the data contract every step shares.

A record is `{"id": int|str, "items": [{"from": "human", "value": str, "category"?: str,
"evidence"?: [str]}, {"from": "gpt", "value": str, ...}, ...more turns]}`. The first
human/gpt pair is the one classified and rewritten; later turns ride along untouched.

Files are `.json` (a list) or `.jsonl` (one record a line). Writes are atomic (files.atomic_open:
a temp file in the same folder, then a rename), so a crash never leaves half an output.
User mistakes raise `DataError` with a one-line message naming file, record and problem.
"""

import hashlib
import json
import re

from realign.constant import TASK_SET
from realign.errors import DataError, UsageError
from realign.files import JSON_ERRORS, atomic_open, dumps_line, gc_paused, iter_jsonl_lines, json_problem, os_error
from realign.strictjson import DuplicateKeyError, Loader, duplicate_at, nonfinite_reason
from realign.tabular import is_table, is_table_file, read_table, write_table


DATA_SUFFIXES = (".json", ".jsonl", ".parquet", ".csv")


def is_jsonl(path):
    return str(path).endswith(".jsonl")


def check_data_output(flag, path):
    """UsageError before any work when `path` (given as `flag`) does not end in a data file type we
    write: the writer picks the format by extension, so `out.txt` would silently become JSON."""
    if path and not str(path).endswith(DATA_SUFFIXES):
        raise UsageError(f"{path}: {flag} must end in {', '.join(DATA_SUFFIXES)} (the file type is chosen by extension)")


def valid_id(rid):
    """An id is an int or a string (not a bool, which JSON's true/false would make)."""
    return isinstance(rid, (int, str)) and not isinstance(rid, bool)


def where(path, index, rec=None):
    """'file: record 3 (id=abc)' — the prefix of every record-level error."""
    rid = rec.get("id") if isinstance(rec, dict) else None
    return f"{path}: record {index}" + (f" (id={rid!r})" if rid is not None else "")


# ---------------------------------------------------------------- reading

def _read_text(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected a .json or .jsonl file") from None
    except OSError as e:
        raise os_error(e, path, "read") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})") from None
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    return text


_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD]")  # a regex scan is ~4x faster here than two `in` tests


def _check_surrogates(objs, text, path, bad_records=None):
    """An unpaired UTF-16 surrogate (a broken `\\ud83d` escape, common in scraped chat dumps)
    is not text: tokenizers and UTF-8 writers fail on it later. Only a `\\uD...` escape can
    make one, so files without such an escape are not scanned. DataError naming the record, or,
    with `bad_records` (a dict), its index -> reason goes there (--skip_bad_records)."""
    if not _SURROGATE_ESCAPE.search(text):
        return
    for i, obj in enumerate(objs):
        bad = _SURROGATE.search(json.dumps(obj, ensure_ascii=False))
        if bad:
            reason = f"holds an unpaired UTF-16 surrogate {bad.group()!r} (a broken \\u escape); fix or drop the record"
            if bad_records is None:
                raise DataError(f"{where(path, i, obj)}: {reason}")
            bad_records[i] = reason


def read_json_any(path):
    """Raw objects from a .json list, a .jsonl file or a table (tabular.py), with one-line errors.

    NaN and Infinity (1e400 too) and a key twice in one object are refused here, naming the record
    (strictjson.py)."""
    data, maybe_nonfinite = read_json_raw(path)
    if maybe_nonfinite:
        check_finite(data, path)
    return data


def check_finite(objs, path):
    for i, obj in enumerate(objs):
        try:
            reason = nonfinite_reason(obj)
        except RecursionError:  # the walk goes one frame a level: a record nested hundreds deep
            raise DataError(f"{where(path, i, obj)}: nested too deeply to check") from None
        if reason:
            raise DataError(f"{where(path, i, obj)}: {reason}")


def read_json_raw(path, bad_records=None):
    """(raw objects, whether they may hold NaN/Infinity): the reader without the strict-JSON check.
    Only text that went to the json module (strictjson.Loader.slow) may hold NaN/Infinity or an
    unpaired surrogate: orjson refuses both. `bad_records`: a dict that gets index -> reason for
    records refused one by one (a lone surrogate) instead of a DataError."""
    if is_table(path):
        return read_table(path)
    text = _read_text(path)
    parse = Loader(text)
    if is_jsonl(path):
        data = [obj for _, obj in iter_jsonl_lines(text, path, parse)]
        if parse.slow:
            _check_surrogates(data, text, path, bad_records)
        return data, parse.slow
    try:
        data = parse(text)
    except DuplicateKeyError as e:
        index = duplicate_at(text)
        at = f"{path}: record {index}" if index is not None else path
        raise DataError(f"{at}: {e}") from None
    except JSON_ERRORS as e:
        if text.lstrip().startswith("{") and "\n{" in text:
            hint = " (looks like JSONL: name the file .jsonl)"
        else:
            hint = ""
        at = f" at line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        raise DataError(f"{path}: not valid JSON: {json_problem(e)}{at}{hint}") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of records, got a {type(data).__name__}")
    if parse.slow:
        _check_surrogates(data, text, path, bad_records)
    return data, parse.slow


# ---------------------------------------------------------------- validation

# Keys of the raw dataset shapes classify.py converts (Alpaca, ShareGPT, messages, GSM8K, MATH, Dolly,
# UltraChat): a record with one of them and no 'items' was handed to a later step too early.
RAW_KEYS = frozenset({"instruction", "conversations", "messages", "question", "problem", "data"})

def validate_record(rec, path, index):
    """Check one record against the contract; raise DataError naming it."""
    if not isinstance(rec, dict):
        raise DataError(f"{path}: record {index}: expected an object, got {type(rec).__name__}")
    at = where(path, index, rec)
    if "items" not in rec and RAW_KEYS & rec.keys():
        raise DataError(f"{at}: not a ReAlign record (it has {sorted(RAW_KEYS & rec.keys())[0]!r}, no 'items'); "
                        f"run classify.py on it first, which reads the common dataset shapes")
    rid = rec.get("id")
    if "id" not in rec:
        raise DataError(f"{at}: missing 'id'")
    if isinstance(rid, bool) or not isinstance(rid, (int, str)):
        raise DataError(f"{at}: 'id' must be an int or a string, got {type(rid).__name__}")
    items = rec.get("items")
    if "items" not in rec:
        raise DataError(f"{at}: missing 'items'")
    if not isinstance(items, list):
        raise DataError(f"{at}: 'items' must be a list, got {type(items).__name__}")
    if len(items) < 2:
        raise DataError(f"{at}: 'items' needs a human turn followed by a gpt turn, got {len(items)} item(s)")
    for k, item in enumerate(items):
        if not isinstance(item, dict):
            raise DataError(f"{at}: items[{k}] must be an object")
        if not isinstance(item.get("value"), str):
            got = "missing" if "value" not in item else type(item["value"]).__name__
            raise DataError(f"{at}: items[{k}].value must be a string, got {got}")
        if not isinstance(item.get("from"), str):
            raise DataError(f"{at}: items[{k}].from must be a string")
    if items[0]["from"] != "human":
        raise DataError(f"{at}: items[0].from must be 'human', got {items[0]['from']!r}")
    if items[1]["from"] != "gpt":
        raise DataError(f"{at}: items[1].from must be 'gpt', got {items[1]['from']!r}")
    cat = items[0].get("category")
    if cat is not None and cat not in TASK_SET:
        raise DataError(f"{at}: unknown category {cat!r} (see code/constant.py for the 46 task names)")
    ev = items[0].get("evidence")
    if ev is not None and not (isinstance(ev, list) and all(isinstance(s, str) for s in ev)):
        raise DataError(f"{at}: items[0].evidence must be a list of strings")


def _plainly_valid(rec):
    """validate_record's checks in their passing form, without building any message: True when
    the record surely passes (loading 100k records is then a third faster), False when
    validate_record must look and say what is wrong."""
    if type(rec) is not dict:
        return False
    items = rec.get("items")
    if type(rec.get("id")) not in (int, str) or type(items) is not list or len(items) < 2:
        return False
    for item in items:
        if type(item) is not dict or type(item.get("value")) is not str or type(item.get("from")) is not str:
            return False
    first = items[0]
    if first["from"] != "human" or items[1]["from"] != "gpt":
        return False
    task, evidence = first.get("category"), first.get("evidence")
    return (task is None or task in TASK_SET) and (
        evidence is None or (type(evidence) is list and all(type(s) is str for s in evidence)))


def check_unique_ids(records, path):
    if len({rec["id"] for rec in records}) == len(records):
        return
    seen = {}
    for i, rec in enumerate(records):
        rid = rec["id"]
        if rid in seen:
            raise DataError(f"{where(path, i, rec)}: duplicate id (first seen at record {seen[rid]})")
        seen[rid] = i


def load_records(path):
    """All records of a ReAlign file, validated, ids unique. Raises DataError."""
    with gc_paused():
        records = read_json_any(path)
    if not records:
        raise DataError(f"{path}: no records")
    for i, rec in enumerate(records):
        if not _plainly_valid(rec):
            validate_record(rec, path, i)
    check_unique_ids(records, path)
    return records


# ---------------------------------------------------------------- accessors

def question(rec):
    return rec["items"][0]["value"]


def answer(rec):
    return rec["items"][1]["value"]


def category(rec):
    """The record's task, or None when not classified yet."""
    return rec["items"][0].get("category")


def input_hash(rec):
    """What a rewrite of `rec` is made from, as 32 hex digits: its question, original answer,
    system prompt, category and evidence (BLAKE2b-128 over the five, each prefixed with its
    length, so no two inputs share a hash by moving text from one field to the next). A missing
    system prompt, category or evidence counts as empty.

    reformat.py writes it on every shard line (`items[1]["input_hash"]`) and merge carries it into
    the merged records, so resume, merge and selection can tell that a record is still the one
    that was rewritten; change any of the five and the record is redone."""
    first, system = rec["items"][0], rec.get("system") or ""
    if not isinstance(system, str):
        system = json.dumps(system, ensure_ascii=False, sort_keys=True)
    question, answer, task = first["value"], rec["items"][1]["value"], first.get("category") or ""
    text = f"{len(question)}:{question}{len(answer)}:{answer}{len(system)}:{system}{len(task)}:{task}"
    evidence = first.get("evidence")
    if evidence:
        text += "".join(f"{len(passage)}:{passage}" for passage in evidence)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


# ---------------------------------------------------------------- writing

def write_records(path, records):
    """Write records as .jsonl (by extension) or a .json list with one record a line, atomically.

    One record a line keeps big files greppable and diffable, and uses the fast C encoder
    (indented output goes through the slow pure-Python one). `.parquet` and `.csv` go to tabular.py."""
    if is_table_file(path):
        return write_table(path, records)
    with atomic_open(path) as f:
        if is_jsonl(path):
            for rec in records:
                f.write(dumps_line(rec) + "\n")
        else:
            f.write("[\n")
            for i, rec in enumerate(records):
                f.write((",\n" if i else "") + dumps_line(rec))
            f.write("\n]\n")
