"""Tables as record files: `.parquet` and `.csv` by extension, and Hugging Face dataset folders.

Parquet (pyarrow): nested fields (`items`, `conversations`, `messages`) are real nested columns and
come back as they went in. Columns are shared by all rows, so a field that one record lacks reads
back as null; such nulls are dropped again (in our records a null field and a missing one mean
the same).
CSV: one column per top-level field. Lists and objects are written as JSON text and read back as
JSON in the columns that hold conversations (`items`, `conversations`, `messages`, `data`,
`history`); every other cell reads back as a string (ids too), and an empty cell as a missing field.
A folder is read as a dataset: one written by `datasets`' `save_to_disk` (Arrow files listed in
state.json, one split or a DatasetDict with a single split) or a folder of `.parquet` files (a hub
snapshot). The Arrow files are read with pyarrow directly: the `datasets` library is large (it
pulls fsspec, aiohttp, multiprocess, …) and adds nothing to reading its own files.

Ids a table cannot hold are refused before any work (`check_ids_fit`, which every step writing a
table calls when it has read its input, and write_table again): Parquet keeps one type per column
and ints up to int64, and a CSV file reads every id back as text, so 1 and "1" would become one id.
A CSV header naming a column twice is refused too (csv would keep the last cell of the two).
"""

import csv
import json
import os
import sys

from realign.errors import DataError, UsageError
from realign.files import JSON_ERRORS, atomic_open, json_problem

NESTED_CSV_COLUMNS = ("items", "conversations", "messages", "data", "history")
INT64 = (-2**63, 2**63 - 1)


def is_table_file(path):
    """A path this module writes: .parquet or .csv."""
    return os.fspath(path).endswith((".parquet", ".csv"))


def is_table(path):
    """A path this module reads: a .parquet or .csv file, or a folder (a dataset)."""
    return is_table_file(path) or os.path.isdir(path)


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401  (loads the submodule)
    except ImportError:
        raise UsageError("reading or writing .parquet needs pyarrow: pip install pyarrow") from None
    return pyarrow


# ---------------------------------------------------------------- reading

def read_table(path):
    """(records, whether they may hold NaN/Infinity) from a .parquet, .csv or dataset folder."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: file not found")
    if os.path.isdir(path):
        return _records(_read_folder(path))
    if path.endswith(".csv"):
        return _read_csv(path), False
    pa = _pyarrow()
    try:
        table = pa.parquet.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0]})") from None
    return _records(table)


def _read_folder(path):
    pa = _pyarrow()
    if os.path.exists(os.path.join(path, "dataset_dict.json")):
        splits = sorted(d for d in os.listdir(path) if os.path.exists(os.path.join(path, d, "state.json")))
        if len(splits) != 1:
            raise DataError(f"{path}: a dataset with splits {', '.join(splits) or '(none)'}; "
                            f"give the folder of one split, e.g. {os.path.join(path, (splits or ['train'])[0])}")
        path = os.path.join(path, splits[0])
    state = os.path.join(path, "state.json")
    if os.path.exists(state):
        try:
            with open(state, encoding="utf-8") as f:
                files = [d["filename"] for d in json.load(f)["_data_files"]]
            tables = []
            for name in files:
                with pa.memory_map(os.path.join(path, name)) as source:
                    tables.append(pa.ipc.open_stream(source).read_all())
        except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as e:
            raise DataError(f"{path}: not a readable dataset folder ({str(e).splitlines()[0]})") from None
        return pa.concat_tables(tables) if tables else pa.table({})
    parquet = sorted(n for n in os.listdir(path) if n.endswith(".parquet"))
    if parquet:
        return pa.concat_tables([pa.parquet.read_table(os.path.join(path, n)) for n in parquet])
    raise DataError(f"{path}: is a folder, but neither a dataset saved with save_to_disk (state.json) nor "
                    f"a folder of .parquet files; give a .json, .jsonl, .parquet or .csv file")


def _has_float(t, pa):
    if pa.types.is_floating(t):
        return True
    if pa.types.is_struct(t):
        return any(_has_float(t.field(i).type, pa) for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _has_float(t.value_type, pa)
    return False


def _null_fields(column, pa):
    """Names of struct fields with nulls inside a list-of-struct column (e.g. items[].category)."""
    t = column.type
    if not ((pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_struct(t.value_type)):
        return ()
    names = set()
    for chunk in column.chunks:
        values = chunk.flatten()
        names.update(t.value_type.field(i).name for i in range(t.value_type.num_fields)
                     if values.field(i).null_count)
    return tuple(names)


def _records(table):
    """Rows as dicts, with the nulls a shared schema adds dropped: top-level fields and fields of
    list-of-struct columns, only where the table holds such nulls."""
    pa = _pyarrow()
    rows = table.to_pylist()
    null_top = [name for name in table.column_names if table.column(name).null_count]
    nested = {name: f for name in table.column_names if (f := _null_fields(table.column(name), pa))}
    if null_top or nested:
        for row in rows:
            for name in null_top:
                if row[name] is None:
                    del row[name]
            for name, fields in nested.items():
                for item in row.get(name) or ():
                    for k in fields:
                        if item is not None and item.get(k, 0) is None:
                            del item[k]
    return rows, any(_has_float(table.schema.field(i).type, pa) for i in range(len(table.schema)))


def _read_csv(path):
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    rows = []
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            twice = [name for name in dict.fromkeys(reader.fieldnames or ()) if reader.fieldnames.count(name) > 1]
            if twice:
                raise DataError(f"{path}: the header names the column {twice[0]!r} twice (only one of its cells "
                                f"would be read); rename one")
            for n, row in enumerate(reader):
                if None in row:
                    raise DataError(f"{path}: line {reader.line_num}: more cells than the header has columns")
                rec = {k: v for k, v in row.items() if v is not None and v != ""}
                for k in NESTED_CSV_COLUMNS:
                    if rec.get(k, "")[:1] in ("[", "{"):
                        try:
                            rec[k] = json.loads(rec[k])
                        except JSON_ERRORS as e:
                            raise DataError(f"{path}: line {reader.line_num}: column '{k}' is not valid JSON "
                                            f"({json_problem(e)})") from None
                rows.append(rec)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason})") from None
    except csv.Error as e:
        raise DataError(f"{path}: not valid CSV ({e})") from None
    if not rows:
        raise DataError(f"{path}: no records (a header and no rows, or an empty file)")
    return rows


# ---------------------------------------------------------------- writing

def check_ids_fit(path, records):
    """DataError, before any work, when `path` is a table that cannot hold these records' ids:
    Parquet with ids of two types or an int outside int64, CSV with two ids of the same text
    (1 and "1": a CSV cell reads back as text). Nothing to check for other paths."""
    path = os.fspath(path)
    if path.endswith(".parquet"):
        first = {}
        for i, rec in enumerate(records):
            rid = rec.get("id")
            first.setdefault(type(rid), (i, rid))
            if isinstance(rid, int) and not INT64[0] <= rid <= INT64[1]:
                raise DataError(f"{path}: record {i} has the id {rid}, outside the 64-bit integers Parquet holds; "
                                f"write .jsonl, or make the ids strings")
            if len(first) > 1:
                (a, ra), (b, rb) = sorted(first.values(), key=lambda x: x[0])
                raise DataError(f"{path}: record {a} has the id {ra!r} and record {b} the id {rb!r}: Parquet keeps "
                                f"one type per column; write .jsonl, or make the ids all strings")
    elif path.endswith(".csv"):
        seen = {}
        for i, rec in enumerate(records):
            text = _cell(rec.get("id"))
            if text in seen and records[seen[text]].get("id") != rec.get("id"):
                raise DataError(f"{path}: records {seen[text]} and {i} have the ids {records[seen[text]]['id']!r} and "
                                f"{rec['id']!r}, one id once written to CSV (it reads every id back as text); "
                                f"write .jsonl, or make the ids distinct")
            seen.setdefault(text, i)


def write_table(path, records):
    """Write records as .parquet or .csv (by extension), atomically."""
    path = os.fspath(path)
    check_ids_fit(path, records)
    if path.endswith(".csv"):
        return _write_csv(path, records)
    pa = _pyarrow()
    try:  # from_pylist would take the columns of the first record only: infer over all of them
        table = pa.Table.from_struct_array(pa.array(records)) if records else pa.table({})
    except (pa.ArrowException, TypeError, OverflowError) as e:
        huge = next(((i, at, v) for i, rec in enumerate(records) for at, v in [_huge_int(rec)] if at), None)
        if huge:
            i, at, value = huge
            raise DataError(f"{path}: record {i} has '{at}' = {value}, outside the 64-bit integers Parquet holds; "
                            f"write .jsonl, or make that field a string") from None
        raise DataError(f"{path}: cannot write these records as Parquet ({str(e).splitlines()[0]}); "
                        f"fields must keep one type in every record (ids all ints or all strings); "
                        f"write .jsonl instead") from None
    with atomic_open(path, "wb") as f:
        pa.parquet.write_table(table, f)


def _huge_int(obj, at=""):
    """(field path, value) of the first int outside int64 inside obj ('row_hash', 'meta.n[2]'), or (None, None)."""
    if isinstance(obj, int) and not isinstance(obj, bool) and not INT64[0] <= obj <= INT64[1]:
        return at or "value", obj
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        found = _huge_int(v, f"{at}[{k}]" if isinstance(obj, list) else f"{at}.{k}" if at else str(k))
        if found[0]:
            return found
    return None, None


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    return value if isinstance(value, str) else json.dumps(value, allow_nan=False)


def _write_csv(path, records):
    columns = list(dict.fromkeys(k for rec in records for k in rec))
    with atomic_open(path) as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        for rec in records:
            writer.writerow([_cell(rec.get(k)) for k in columns])
