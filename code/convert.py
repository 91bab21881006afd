"""Turn the instruction-data shapes people have into ReAlign records, setting bad records aside.

Supported `--input_format` values (`auto` names the one it finds):
  realign    {"id", "items": [{"from": "human"|"user", "value"}, {"from": "gpt"|"assistant", "value"}, ...]}
  alpaca     {"instruction", "input"?, "output", "system"?, "history"?: [[q, a], ...]}
  sharegpt   {"conversations": [{"from": "system"|"human"|"user"|"gpt"|"assistant", "value"}], "system"?}
  messages   {"messages": [{"role": "system"|"user"|"assistant", "content"}]}   (OpenAI chat, No Robots)
             (either chat shape may use the other's turn keys: role/content in `conversations`,
             from/value in `messages`)
  gsm8k      {"question", "answer"}                                          (GSM8K style)
  math       {"problem", "solution"}                                         (MATH style)
  dolly      {"instruction", "context"?, "response"}                         (Dolly style)
  ultrachat  {"data": [user, assistant, user, ...]}                          (UltraChat style)
  --field_map question=COL,answer=COL[,system=COL,id=COL] reads any other columns.

Ids are kept when present and assigned (the record's index) when missing. Fields other than the
conversation ride along untouched. Nothing is lost silently: content given as a list of parts has
its text parts joined with a newline, and a record with an image, audio, video or file part is
refused as multimodal (by name, or set aside with --skip_bad_records); a turn given as a list of
plain strings (alternative answers? one answer in pieces?) is refused, not guessed at. System prompts (a record-level `system` and leading system
turns) are all kept, joined in order with a blank line, in the record's `system` field.

A record that cannot be converted raises `BadRecordError` naming the raw field (`conversations[2]`),
or, when the caller passes a `rejected` list, lands there as {"index", "id", "reason", "record"} and
the rest goes on.
"""

import json
import re
from collections import Counter

from realign.errors import DataError, UsageError
from realign.files import atomic_open, dumps_line
from realign.records import read_json_raw, validate_record, where
from realign.strictjson import as_strict, nonfinite_reason

FORMATS = ("auto", "realign", "alpaca", "sharegpt", "messages", "gsm8k", "math", "dolly", "ultrachat")
FIELD_MAP_KEYS = ("question", "answer", "system", "id")

_HUMAN = {"human", "user"}
_GPT = {"gpt", "assistant", "chatgpt", "bard", "model"}


class BadRecordError(DataError):
    """A record that cannot become a ReAlign record; the message names file, record and field."""


class _Bad(Exception):
    """Raised inside a converter with the reason only; convert_records adds file and record."""


# ---------------------------------------------------------------- telling shapes apart

def sniff(rec):
    """The format name of one raw record, or None when its fields say nothing."""
    if not isinstance(rec, dict):
        return None
    if "items" in rec:
        return "realign"
    if "conversations" in rec:
        return "sharegpt"
    if "messages" in rec:
        return "messages"
    if "instruction" in rec and "response" in rec:
        return "dolly"
    if "instruction" in rec and "output" in rec:
        return "alpaca"
    if "problem" in rec and "solution" in rec:
        return "math"
    if "question" in rec and "answer" in rec:
        return "gsm8k"
    if isinstance(rec.get("data"), list):
        return "ultrachat"
    return None


def _fields_of(rec):
    return sorted(rec)[:6] if isinstance(rec, dict) else type(rec).__name__


def sniff_format(rec, path):
    """The format of the first record; DataError when it cannot be told."""
    fmt = sniff(rec)
    if fmt is None:
        raise DataError(f"{path}: record 0: cannot tell the input format from {_fields_of(rec)}; "
                        f"pass --input_format (one of {', '.join(FORMATS[1:])}) or --field_map")
    return fmt


# ---------------------------------------------------------------- field helpers

def _type_name(value):
    return "null" if value is None else type(value).__name__


def _text(rec, key, optional=False):
    """rec[key] as a string; a missing or null optional field is ''."""
    if key not in rec or rec[key] is None:
        if optional:
            return ""
        raise _Bad(f"'{key}' must be a string, got {'missing' if key not in rec else 'null'}")
    if not isinstance(rec[key], str):
        raise _Bad(f"'{key}' must be a string, got {_type_name(rec[key])}")
    return rec[key]


def _join_system(parts):
    """System prompts in order, blank-line separated; an exact repeat is not added twice."""
    kept = []
    for part in parts:
        if part and part.strip() and part not in kept:
            kept.append(part)
    return "\n\n".join(kept) if kept else None


def _record(rec, index, consumed, items, system=None):
    """A ReAlign record: id, the fields not consumed by the conversion, items, system."""
    out = {"id": rec.get("id", index)}
    out.update((k, v) for k, v in rec.items() if k not in consumed and k != "system")
    out["items"] = items
    system = _join_system([_text(rec, "system", optional=True), system])
    if system is not None:
        out["system"] = system
    return out


def _pair(question, answer):
    return [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]


def _with_context(text, context):
    return text + ("\n\n" + context if context.strip() else "")


# ---------------------------------------------------------------- converters: rec, index -> record

def from_alpaca(rec, index):
    items = []
    history = rec.get("history") or []
    if not isinstance(history, list):
        raise _Bad(f"'history' must be a list of [question, answer] pairs, got {_type_name(history)}")
    for k, turn in enumerate(history):
        if not (isinstance(turn, (list, tuple)) and len(turn) == 2 and all(isinstance(t, str) for t in turn)):
            raise _Bad(f"history[{k}] must be a [question, answer] pair of strings")
        items += _pair(*turn)
    instruction, context = _text(rec, "instruction"), _text(rec, "input", optional=True)
    pair = _pair(_with_context(instruction, context), _text(rec, "output"))
    if context.strip():
        pair[0]["input"] = context  # also kept apart: --output_format alpaca gives instruction and input back
    items += pair
    return _record(rec, index, ("instruction", "input", "output", "history"), items)


def from_dolly(rec, index):
    question = _with_context(_text(rec, "instruction"), _text(rec, "context", optional=True))
    return _record(rec, index, ("instruction", "context", "response"), _pair(question, _text(rec, "response")))


def from_gsm8k(rec, index):
    return _record(rec, index, ("question", "answer"), _pair(_text(rec, "question"), _text(rec, "answer")))


def from_math(rec, index):
    return _record(rec, index, ("problem", "solution"), _pair(_text(rec, "problem"), _text(rec, "solution")))


def from_ultrachat(rec, index):
    data = rec.get("data")
    if not isinstance(data, list):
        raise _Bad(f"'data' must be a list of alternating user and assistant turns, got {_type_name(data)}")
    items = []
    for k, text in enumerate(data):
        if not isinstance(text, str):
            raise _Bad(f"data[{k}] must be a string, got {_type_name(text)}")
        items.append({"from": "human" if k % 2 == 0 else "gpt", "value": text})
    if len(items) < 2:
        raise _Bad(f"'data' needs a user turn followed by an assistant turn, got {len(items)} turn(s)")
    return _record(rec, index, ("data",), items)


# content part types (OpenAI chat, Responses, Anthropic-style) that hold text
_TEXT_PARTS = ("text", "input_text", "output_text")
_MEDIA = ("image", "audio", "video", "file", "document", "pdf")


def _parts_text(parts, at):
    """The text of a content given as a list of parts: its text parts joined with a newline.
    _Bad for a multimodal part (image, audio, …), a part of another kind, or a list of plain strings."""
    if parts and all(isinstance(p, str) for p in parts):
        raise _Bad(f"{at} is a list of {len(parts)} strings, not one text (alternative answers? one answer in "
                   f"pieces?); join them into one string, or keep the one you mean")
    texts = []
    for k, part in enumerate(parts):
        if not isinstance(part, dict):
            raise _Bad(f"{at}[{k}] must be a content part object, got {_type_name(part)}")
        kind = part.get("type", "text" if "text" in part else None)
        if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif any(media in str(kind).lower() for media in _MEDIA):
            raise _Bad(f"{at}[{k}] is an {kind!r} part: multimodal records are not supported (text only)")
        else:
            raise _Bad(f"{at}[{k}] is a part of type {kind!r}, not text")
    return "\n".join(texts)


def _turn_text(turn, at, text_key):
    text = turn.get(text_key)
    if isinstance(text, list):  # content parts
        text = _parts_text(text, f"{at}.{text_key}")
    if not isinstance(text, str):
        got = "missing" if text_key not in turn else _type_name(text)
        raise _Bad(f"{at}.{text_key} must be a string, got {got}")
    return text


def _turn_keys(turns, role_key, text_key):
    """(role key, text key) of a record's turns: the format's own, or the other chat shape's
    (role/content for from/value and back) when its first turn uses those."""
    other = {("from", "value"): ("role", "content"), ("role", "content"): ("from", "value")}.get((role_key, text_key))
    first = next((t for t in turns if isinstance(t, dict)), None) if isinstance(turns, list) else None
    if other and first is not None and role_key not in first and other[0] in first:
        return other
    return role_key, text_key


def _turns_to_items(turns, field, role_key, text_key, keep_keys=False):
    """(system or None, items) from a list of role-tagged turns, checked turn by turn.

    Leading system turns become the system prompt; then human and gpt turns must alternate,
    starting with human. `keep_keys` keeps a turn's other keys (ReAlign items carry category,
    evidence)."""
    if not isinstance(turns, list):
        raise _Bad(f"'{field}' must be a list of turns, got {_type_name(turns)}")
    system, items, last_k = [], [], None
    for k, turn in enumerate(turns):
        at = f"{field}[{k}]"
        if not isinstance(turn, dict):
            raise _Bad(f"{at} must be an object, got {_type_name(turn)}")
        role = turn.get(role_key)
        if not isinstance(role, str):
            raise _Bad(f"{at}.{role_key} must be a string, got {'missing' if role_key not in turn else _type_name(role)}")
        text = _turn_text(turn, at, text_key)
        who = role.lower()
        if who == "system":
            if items:
                raise _Bad(f"{at} is a system turn inside the conversation (after {field}[{last_k}]); "
                           f"a system prompt must come before the first human turn")
            system.append(text)
            continue
        who = "human" if who in _HUMAN else "gpt" if who in _GPT else None
        if who is None:
            raise _Bad(f"{at} has unknown role {role!r} (expected system, human/user or gpt/assistant)")
        if not items and who != "human":
            raise _Bad(f"{at} is a {role!r} turn, but a conversation must open with a human turn "
                       f"(after optional system turns)")
        if items and items[-1]["from"] == who:
            raise _Bad(f"{at} is a second {role!r} turn in a row (after {field}[{last_k}]); "
                       f"human and gpt turns must alternate")
        items.append({**turn, "from": who, "value": text} if keep_keys else {"from": who, "value": text})
        last_k = k
    if len(items) < 2:
        raise _Bad(f"'{field}' needs a human turn followed by a gpt turn, got {len(items)} turn(s)")
    return _join_system(system), items


def from_turns(field, role_key, text_key):
    """A converter for chat-shaped records: ShareGPT (`conversations`) or OpenAI (`messages`)."""
    def convert(rec, index):
        if field not in rec:
            raise _Bad(f"'{field}' must be a list of turns, got missing")
        system, items = _turns_to_items(rec[field], field, *_turn_keys(rec[field], role_key, text_key))
        return _record(rec, index, (field,), items, system)
    return convert


def from_realign(rec, index):
    """ReAlign records pass as they are; user/assistant roles and a leading system item are normalised."""
    items = rec.get("items")
    if isinstance(items, list) and all(isinstance(i, dict) and i.get("from") in ("human", "gpt") for i in items):
        return rec  # the common case: nothing to normalise
    if "id" not in rec:
        raise _Bad("missing 'id'")
    system, items = _turns_to_items(items, "items", "from", "value", keep_keys=True)
    out = {**rec, "items": items}
    system = _join_system([_text(rec, "system", optional=True), system])
    if system is not None:
        out["system"] = system
    return out


def from_fields(field_map):
    """A converter for any columns: --field_map question=COL,answer=COL[,system=COL,id=COL]."""
    def convert(rec, index):
        question, answer = _text(rec, field_map["question"]), _text(rec, field_map["answer"])
        system = _text(rec, field_map["system"], optional=True) if "system" in field_map else None
        out = {"id": rec.get("id", index)}
        if "id" in field_map:
            if rec.get(field_map["id"]) is None:
                raise _Bad(f"'{field_map['id']}' (the id column) is {'missing' if field_map['id'] not in rec else 'null'}")
            out["id"] = rec[field_map["id"]]
        used = set(field_map.values())
        out.update((k, v) for k, v in rec.items() if k not in used and k != "id")
        out["items"] = _pair(question, answer)
        if system and system.strip():
            out["system"] = system
        return out
    return convert


_CONVERTERS = {
    "realign": from_realign,
    "alpaca": from_alpaca,
    "sharegpt": from_turns("conversations", "from", "value"),
    "messages": from_turns("messages", "role", "content"),
    "gsm8k": from_gsm8k,
    "math": from_math,
    "dolly": from_dolly,
    "ultrachat": from_ultrachat,
}


def parse_field_map(text):
    """'question=prompt,answer=completion' -> {"question": "prompt", "answer": "completion"}."""
    fmap = {}
    for part in (text or "").split(","):
        key, sep, col = (s.strip() for s in part.partition("="))
        if not sep or not col:
            raise UsageError(f"--field_map: {part.strip()!r} is not KEY=COLUMN (e.g. question=prompt,answer=completion)")
        if key not in FIELD_MAP_KEYS:
            raise UsageError(f"--field_map: unknown key {key!r} (one of {', '.join(FIELD_MAP_KEYS)})")
        fmap[key] = col
    missing = [k for k in ("question", "answer") if k not in fmap]
    if missing:
        raise UsageError(f"--field_map needs {' and '.join(missing)}=COLUMN")
    return fmap


# ---------------------------------------------------------------- the file

def _file_format(raw, path, input_format):
    """(format, {index: reason}) for auto: the file's format and the records that do not fit it."""
    if input_format != "auto":
        return input_format, {}
    found = [sniff(rec) for rec in raw]
    counts = Counter(f for f in found if f is not None)
    if not counts:
        sniff_format(raw[0], path)  # raises: nothing recognisable at all
    fmt = counts.most_common(1)[0][0]
    if len(counts) == 1 and all(found):
        return fmt, {}
    first = {}
    for i, f in enumerate(found):
        first.setdefault(f, i)
    odd = {}
    for i, f in enumerate(found):
        if f is None:
            odd[i] = f"cannot tell its format from its fields {_fields_of(raw[i])} (the file is {fmt})"
        elif f != fmt:
            a, b = sorted([(first[fmt], fmt), (i, f)])
            odd[i] = f"file mixes formats (record {a[0]} {a[1]}, record {b[0]} {b[1]})"
    return fmt, odd


def convert_records(raw, path, input_format="auto", rejected=None, field_map=None, check_finite=True, bad=None):
    """Convert raw objects to validated ReAlign records (ids unique); returns (records, format).

    With `rejected` (a list), bad records are appended to it as {"index", "id", "reason",
    "record"} instead of raising BadRecordError. `check_finite`: look for NaN/Infinity (the
    reader knows when there cannot be any). `bad`: index -> reason of records the reader already
    refused (records.read_json_raw's bad_records)."""
    if input_format not in FORMATS:
        raise UsageError(f"unknown --input_format {input_format!r} (one of {', '.join(FORMATS)})")
    if not raw:
        raise DataError(f"{path}: no records")
    if field_map:
        fmt, odd, convert = "field_map", {}, from_fields(field_map)
    else:
        fmt, odd = _file_format(raw, path, input_format)
        convert = _CONVERTERS[fmt]
    records, seen = [], {}
    for i, rec in enumerate(raw):
        try:
            if not isinstance(rec, dict):
                raise _Bad(f"expected an object, got {_type_name(rec)}")
            if bad and i in bad:
                raise _Bad(bad[i])
            if i in odd:
                raise _Bad(odd[i])
            reason = nonfinite_reason(rec) if check_finite else None
            if reason:
                raise _Bad(reason)
            try:
                out = convert(rec, i)
            except _Bad as e:
                looks = sniff(rec)
                hint = f" (this record looks like {looks})" if input_format != "auto" and looks not in (None, fmt) else ""
                raise _Bad(f"{e}{hint}") from None
            try:
                validate_record(out, path, i)
            except DataError as e:
                prefix = where(path, i, out) + ": "
                raise _Bad(str(e)[len(prefix):] if str(e).startswith(prefix) else str(e)) from None
            rid = out["id"]
            if rid in seen:
                raise _Bad(f"duplicate id (first seen at record {seen[rid]})")
        except _Bad as e:
            if rejected is None:
                raise BadRecordError(f"{where(path, i, rec)}: {e}") from None
            rid = rec.get("id", i) if isinstance(rec, dict) else i
            rejected.append({"index": i, "id": rid, "reason": str(e), "record": rec})
            continue
        seen[rid] = i
        records.append(out)
    return records, fmt


def load_any(path, input_format="auto", rejected=None, field_map=None):
    """Read a file in any supported format; returns (records, detected_format)."""
    bad = {} if rejected is not None else None  # set aside one by one, not the whole file refused
    raw, maybe_nonfinite = read_json_raw(path, bad)
    return convert_records(raw, path, input_format, rejected, field_map, check_finite=maybe_nonfinite, bad=bad)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def rejected_path(output_path):
    return f"{output_path}.rejected.jsonl"


def write_rejected(path, rejected):
    """The bad records, one {"index", "id", "reason", "record"} a line, strict JSON, atomically."""
    with atomic_open(path) as f:
        for entry in rejected:
            line = dumps_line(as_strict(entry))
            if _LONE_SURROGATE.search(line):  # kept as the \\u escape the input had: UTF-8 cannot hold it
                line = json.dumps(as_strict(entry), ensure_ascii=True, allow_nan=False)
            f.write(line + "\n")
