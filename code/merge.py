"""Join the shard outputs of N reformat.py processes back onto the input, by id and input hash.

Each input record takes the line made from its current input (shards.matches: same id, same
records.input_hash), whichever shard file of the run holds it, and becomes one merged record
(input order, input fields) whose first gpt turn says what happened:

- rewritten: `value` is the rewrite;
- otherwise `value` is the original and `kept_original` says why: reformat's own reason
  ("task not rewritten", "no category", "empty original", "format does not fit"),
  "failed: <reason>", "input changed since reformat" (with changed_input="keep_original"), or
  "missing (--allow_partial)";

and every merged record carries `input_hash`, so selection can tell whether the original it is
given is still the one the record was made from.

Lines of records no longer in the input are ignored and counted, as are older lines of a
record that has a current one. Errors (one-line DataError): the folder holds another dataset's
run (no line shares a record with the input); a record with two current lines (two writers on
one shard: `keep_first` keeps the first); records whose input changed since reformat.py saw
them (unless changed_input="keep_original"); missing shard files or records in no file
(unless allow_partial, which keeps their originals).
"""

from collections import Counter
from itertools import chain

from realign.errors import DataError, first_n
from realign.files import gc_paused
from realign.records import category, input_hash
from realign.shards import (NO_CATEGORY, TASK_NOT_REWRITTEN, check_same_dataset, failures_path, find_shards,
                            matches, read_failures, read_shard)

CHANGED = "input changed since reformat"
MISSING = "missing (--allow_partial)"
CHANGED_INPUT = ("refuse", "keep_original")  # what merge and selection do with a record whose input changed


def pick_run(output_dir, batch_num=None):
    """The shard files of one run: {i: path} and N. Several runs in one folder need batch_num."""
    runs = find_shards(output_dir)
    if not runs:
        raise DataError(f"{output_dir}: no rewrite_data_<i>_of_<N>_batch.jsonl files found")
    if batch_num is None:
        if len(runs) > 1:
            raise DataError(f"{output_dir}: shards of several runs (N = {', '.join(map(str, sorted(runs)))}); "
                            f"pass --dataset_batch_num to pick one")
        batch_num = next(iter(runs))
    if batch_num not in runs:
        raise DataError(f"{output_dir}: no shards of a run with N = {batch_num}")
    return runs[batch_num], batch_num


def read_lines(shard_files):
    """({id: first ShardRow}, {id: [further ShardRows]}) over all shard files, in shard order."""
    first, more = {}, {}
    for i in sorted(shard_files):
        for row in read_shard(shard_files[i]):
            if row.id in first:
                more.setdefault(row.id, []).append(row)
            else:
                first[row.id] = row
    return first, more


def read_all_failures(output_dir, batch_num):
    """{id: [Failure, ...]} over the run's failures files."""
    failed = {}
    for i in range(batch_num):
        for rid, failure in read_failures(failures_path(output_dir, i, batch_num)).items():
            failed.setdefault(rid, []).append(failure)
    return failed


def _with(rec, **gpt):
    """A copy of `rec` whose first gpt turn has `gpt` set (and no kept_original of an earlier run)."""
    items = rec["items"]
    turn = {**items[1], **gpt}
    if "kept_original" not in gpt:
        turn.pop("kept_original", None)
    return {**rec, "items": [items[0], turn, *items[2:]]}


def merge(records, output_dir, batch_num=None, allow_partial=False, keep_first=False, changed_input="refuse",
          input_path=None):
    """Return (merged_records, counts, problems): `problems` are the missing shards / records that
    `allow_partial` let through. Input records are not modified. `keep_first`: a record with
    two current lines keeps the first (shards written by two processes at once, before shard
    locks). `changed_input`: "refuse" (DataError naming them) or "keep_original" for records
    whose input changed since reformat.py made their line."""
    with gc_paused():  # 100k records in, 100k out, no cycles: the collector would only slow it down
        return _merge(records, output_dir, batch_num, allow_partial, keep_first, changed_input, input_path)


def _merge(records, output_dir, batch_num, allow_partial, keep_first, changed_input, input_path):
    shard_files, batch_num = pick_run(output_dir, batch_num)
    first, more = read_lines(shard_files)
    failures = read_all_failures(output_dir, batch_num)
    by_id = {rec["id"]: rec for rec in records}
    check_same_dataset(chain(first.values(), *more.values()), by_id, output_dir, input_path)

    counts = Counter()
    merged, dupes, changed, missing = [], [], [], []
    for rec in records:
        rid, digest = rec["id"], input_hash(rec)
        row = first.get(rid)
        had_line = row is not None
        if rid in more:
            current = [r for r in (row, *more[rid]) if matches(r, rec, digest)]
            counts["superseded lines"] += 1 + len(more[rid]) - len(current)
            if len(current) > 1:
                dupes.append(rid)
                counts["duplicate lines dropped"] += len(current) - 1
            row = current[0] if current else None
        elif row is not None and row.input_hash != digest and not matches(row, rec, digest):
            counts["superseded lines"] += 1
            row = None
        if row is not None:
            if row.input_hash is None:
                counts["no input hash"] += 1
            if row.revised is not None:
                items = rec["items"]
                turn = {**items[1], "value": row.revised, "input_hash": digest}
                if "kept_original" in turn:  # an input that was itself a merged file
                    del turn["kept_original"]
                merged.append({**rec, "items": [items[0], turn, *items[2:]]})
                counts["rewritten"] += 1
            else:
                why = row.kept or (NO_CATEGORY if category(rec) is None else TASK_NOT_REWRITTEN)
                merged.append(_with(rec, kept_original=why, input_hash=digest))
                counts["passed through"] += 1
                counts[f"kept: {why}"] += 1
            continue
        failed = [f for f in failures.get(rid, ()) if matches(f, rec, digest)]
        if failed:
            merged.append(_with(rec, kept_original=f"failed: {failed[-1].reason}", input_hash=digest))
            counts["failed"] += 1
        elif had_line or rid in failures:
            changed.append(rid)
            merged.append(_with(rec, kept_original=CHANGED, input_hash=digest))
            counts["changed"] += 1
        else:
            missing.append(rid)
            merged.append(_with(rec, kept_original=MISSING, input_hash=digest))
            counts["missing"] += 1
    counts["removed lines"] = sum(rid not in by_id for rid in first) + sum(
        len(rows) for rid, rows in more.items() if rid not in by_id)
    missing_shards = sorted(set(range(batch_num)) - set(shard_files))

    hard, problems = [], []  # hard: the shards contradict the input; problems: something is not there
    if dupes and not keep_first:
        hard.append(f"{len(dupes)} ids appear more than once in the shards, made from the same input "
                    f"({first_n(dupes)}): two reformat.py processes wrote the same shard (possible before shard "
                    f"locks)? rerun the merge with --keep_first to keep each id's first line")
    if changed and changed_input == "refuse":
        hard.append(f"{len(changed)} records changed since reformat.py worked on them ({first_n(changed)}): their "
                    f"question, answer, system prompt, category or evidence is not what it saw; rerun reformat.py "
                    f"on this input (it redoes only those), or pass --changed_input keep_original to keep their "
                    f"originals")
    if missing_shards:
        problems.append(f"{len(missing_shards)} of {batch_num} shard files missing (batch ids {first_n(missing_shards)})")
    if missing:
        problems.append(f"{len(missing)} input ids are in no shard or failures file ({first_n(missing)})")
    if hard or (problems and not allow_partial):
        hint = "" if hard else "; rerun the missing reformat.py shards, or pass --allow_partial to keep originals"
        raise DataError(f"{output_dir}: " + "; ".join(hard + problems) + hint)
    return merged, +counts, problems
