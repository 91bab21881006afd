"""Turn common instruction-data shapes into ReAlign records.

Supported `--input_format` values:
  realign   {"id", "items": [{"from": "human", "value"}, {"from": "gpt", "value"}]}
  alpaca    {"instruction", "input"?, "output"}           (input appended after a blank line)
  sharegpt  {"conversations": [{"from": "human"|"user"|"gpt"|"assistant"|"system", "value"}]}
  messages  {"messages": [{"role": "system"|"user"|"assistant", "content"}]}   (OpenAI chat)
  auto      sniff the shape of the first record

Ids are kept when present and assigned (the record's index) when missing. A leading
system turn is kept in the record's `system` field, since ReAlign items are human/gpt only.
"""

from realign.errors import DataError
from realign.records import check_unique_ids, read_json_any, validate_record

FORMATS = ("auto", "realign", "alpaca", "sharegpt", "messages")

_HUMAN = {"human", "user"}
_GPT = {"gpt", "assistant", "chatgpt", "bard", "model"}
_CARRIED = ("id", "instruction", "input", "output", "conversations", "messages")


def sniff_format(rec, path):
    if isinstance(rec, dict):
        if "items" in rec:
            return "realign"
        if "instruction" in rec and "output" in rec:
            return "alpaca"
        if "conversations" in rec:
            return "sharegpt"
        if "messages" in rec:
            return "messages"
    keys = sorted(rec)[:6] if isinstance(rec, dict) else type(rec).__name__
    raise DataError(f"{path}: record 0: cannot tell the input format from {keys}; "
                    f"pass --input_format (one of {', '.join(FORMATS[1:])})")


def _need_str(value, path, index, what):
    if not isinstance(value, str):
        got = "missing" if value is None else type(value).__name__
        raise DataError(f"{path}: record {index}: {what} must be a string, got {got}")
    return value


def _extras(rec):
    """Fields other than the conversation itself ride along untouched."""
    return {k: v for k, v in rec.items() if k not in _CARRIED}


def from_alpaca(rec, path, index):
    instruction = _need_str(rec.get("instruction"), path, index, "'instruction'")
    extra = rec.get("input") or ""
    _need_str(extra, path, index, "'input'")
    human = instruction + ("\n\n" + extra if extra.strip() else "")
    gpt = _need_str(rec.get("output"), path, index, "'output'")
    return {"id": rec.get("id", index), **_extras(rec),
            "items": [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}]}


def _turns_to_items(turns, path, index, role_key, text_key, field):
    if not isinstance(turns, list):
        raise DataError(f"{path}: record {index}: '{field}' must be a list")
    system, items = None, []
    for k, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise DataError(f"{path}: record {index}: {field}[{k}] must be an object")
        role = str(turn.get(role_key, "")).lower()
        text = turn.get(text_key)
        if isinstance(text, list):  # OpenAI content parts
            text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
        text = _need_str(text, path, index, f"{field}[{k}].{text_key}")
        if role == "system" and not items:
            system = text
        elif role in _HUMAN:
            items.append({"from": "human", "value": text})
        elif role in _GPT:
            items.append({"from": "gpt", "value": text})
        else:
            raise DataError(f"{path}: record {index}: {field}[{k}] has unknown role {turn.get(role_key)!r}")
    return system, items


def from_turns(field, role_key, text_key):
    """A converter for chat-shaped records: ShareGPT (`conversations`) or OpenAI (`messages`)."""
    def convert(rec, path, index):
        system, items = _turns_to_items(rec.get(field), path, index, role_key, text_key, field)
        out = {"id": rec.get("id", index), **_extras(rec), "items": items}
        if system is not None:
            out["system"] = system
        return out
    return convert


_CONVERTERS = {
    "alpaca": from_alpaca,
    "sharegpt": from_turns("conversations", "from", "value"),
    "messages": from_turns("messages", "role", "content"),
}


def convert_records(raw, path, input_format="auto"):
    """Convert a list of raw objects to validated ReAlign records (ids unique)."""
    if input_format not in FORMATS:
        raise DataError(f"unknown --input_format {input_format!r} (one of {', '.join(FORMATS)})")
    if not raw:
        raise DataError(f"{path}: no records")
    fmt = sniff_format(raw[0], path) if input_format == "auto" else input_format
    convert = _CONVERTERS.get(fmt)
    records = []
    for i, rec in enumerate(raw):
        if not isinstance(rec, dict):
            raise DataError(f"{path}: record {i}: expected an object, got {type(rec).__name__}")
        out = convert(rec, path, i) if convert else rec
        validate_record(out, path, i)
        records.append(out)
    check_unique_ids(records, path)
    return records, fmt


def load_any(path, input_format="auto"):
    """Read a file in any supported format; returns (records, detected_format)."""
    return convert_records(read_json_any(path), path, input_format)
