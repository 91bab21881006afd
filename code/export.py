"""ReAlign records out in the shapes SFT trainers load: alpaca, sharegpt, messages (or realign as is).

  alpaca    {"instruction", "input", "output", "system"?, "history"?: [[q, a], ...]}
            (LLaMA-Factory's alpaca shape: the last exchange, earlier ones in `history`; `input`
            is the Alpaca record's own input when it came from one, kept apart by classify.py on
            the human turn, else "")
  sharegpt  {"conversations": [{"from": "human"|"gpt", "value"}], "system"?}
  messages  {"messages": [{"role": "system"|"user"|"assistant", "content"}]}   (OpenAI chat, TRL)

Every shape keeps the record's other fields (`id`, `tag`, your own) and puts the task name
(`items[0].category`) in a record-level `category` unless the record has one already. Retrieval
evidence and the rewriter's candidates stay behind: they are not training data.
"""

from realign.errors import DataError
from realign.records import where

OUTPUT_FORMATS = ("realign", "alpaca", "sharegpt", "messages")
_ROLE = {"human": "user", "gpt": "assistant"}


def _base(rec):
    out = {k: v for k, v in rec.items() if k not in ("items", "system")}
    category = rec["items"][0].get("category")
    if category is not None and "category" not in out:
        out["category"] = category
    return out


def to_alpaca(rec, path, index):
    items = rec["items"]
    pairs = [(items[k]["value"], items[k + 1]["value"]) for k in range(0, len(items) - 1, 2)]
    if len(items) % 2 or any(items[k]["from"] != ("human", "gpt")[k % 2] for k in range(len(items))):
        raise DataError(f"{where(path, index, rec)}: cannot write as alpaca: its turns are not human/gpt pairs "
                        f"({', '.join(i['from'] for i in items)}); use --output_format sharegpt or messages")
    (question, answer), history = pairs[-1], pairs[:-1]
    out = {"instruction": question, "input": "", "output": answer}
    context = items[-2].get("input")  # an Alpaca record's own input, which convert.py appended to the question
    if isinstance(context, str) and context and question.endswith("\n\n" + context):
        out["instruction"], out["input"] = question[: -len(context) - 2], context
    if rec.get("system"):
        out["system"] = rec["system"]
    if history:
        out["history"] = [list(p) for p in history]
    return {**out, **_base(rec)}


def to_sharegpt(rec, path=None, index=None):
    out = {"conversations": [{"from": i["from"], "value": i["value"]} for i in rec["items"]]}
    if rec.get("system"):
        out["system"] = rec["system"]
    return {**out, **_base(rec)}


def to_messages(rec, path=None, index=None):
    messages = [{"role": "system", "content": rec["system"]}] if rec.get("system") else []
    messages += [{"role": _ROLE.get(i["from"], i["from"]), "content": i["value"]} for i in rec["items"]]
    return {"messages": messages, **_base(rec)}


_EXPORTERS = {"alpaca": to_alpaca, "sharegpt": to_sharegpt, "messages": to_messages}


def export_records(records, output_format, path):
    """Records in the chosen shape (a new list; the records are not modified)."""
    if output_format == "realign":
        return records
    convert = _EXPORTERS[output_format]
    return [convert(rec, path, i) for i, rec in enumerate(records)]
