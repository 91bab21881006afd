"""Join the shard outputs of N reformat.py processes back onto the input, by id.

Every input id must be accounted for exactly once: rewritten or passed through (in a shard
output file), or failed (in a failures file). Anything else — a missing shard, ids that are
in no file, ids that appear twice, ids the input does not have, an id whose question in the
shard is not the input's (stale output of another dataset), an id whose original answer in the
shard is not the input's (a rewrite of an answer edited since) — is an error. `allow_partial`
relaxes only the missing ones (a missing shard, ids in no file): their originals are kept
and counted.
"""

from collections import Counter

from realign.errors import DataError, first_n
from realign.records import answer, question
from realign.shards import failures_path, find_shards, read_failures, read_shard


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


def read_shard_results(shard_files, keep_first=False):
    """({id: (question, original answer, revised_response or None, kept_original reason or None)} over
    all shards, [ids seen twice]). keep_first: an id seen again keeps its first line (the repair for a
    shard written twice)."""
    results, dupes = {}, []
    for i in sorted(shard_files):
        for rid, *row in read_shard(shard_files[i]):
            if rid in results:
                dupes.append(rid)
                if keep_first:
                    continue
            results[rid] = tuple(row)
    return results, dupes


def read_all_failures(output_dir, batch_num):
    failed = {}
    for i in range(batch_num):
        failed.update(read_failures(failures_path(output_dir, i, batch_num)))
    return failed


def merge(records, output_dir, batch_num=None, allow_partial=False, keep_first=False):
    """Return (merged_records, counts, problems): `problems` are the missing shards / ids that
    `allow_partial` let through. Input records are not modified. `keep_first`: ids written twice
    keep their first line (shards written by two processes at once, before shard locks)."""
    shard_files, batch_num = pick_run(output_dir, batch_num)
    results, dupes = read_shard_results(shard_files, keep_first)
    failed = {rid: why for rid, why in read_all_failures(output_dir, batch_num).items() if rid not in results}
    input_ids = {rec["id"] for rec in records}
    unknown = [rid for rid in results if rid not in input_ids]
    changed = [rec["id"] for rec in records if rec["id"] in results and results[rec["id"]][0] != question(rec)]
    edited = [rec["id"] for rec in records if rec["id"] in results and results[rec["id"]][0] == question(rec)
              and results[rec["id"]][1] != answer(rec)]
    missing = [rec["id"] for rec in records if rec["id"] not in results and rec["id"] not in failed]
    missing_shards = sorted(set(range(batch_num)) - set(shard_files))

    hard, problems = [], []  # hard: the shards contradict the input; problems: something is not there
    if dupes and not keep_first:
        hard.append(f"{len(dupes)} ids appear more than once in the shards ({first_n(dupes)}): two reformat.py "
                    f"processes wrote the same shard (possible before shard locks)? rerun the merge with "
                    f"--keep_first to keep each id's first line")
    if unknown:
        hard.append(f"{len(unknown)} ids in the shards are not in the input ({first_n(unknown)}); "
                    f"stale output from another dataset?")
    if changed:
        hard.append(f"{len(changed)} ids have a different question in the shards than in the input "
                    f"({first_n(changed)}); stale output from another dataset?")
    if edited:
        hard.append(f"{len(edited)} ids have a different original answer in the shards than in the input "
                    f"({first_n(edited)}): their rewrites are of an older answer; rerun reformat.py on this "
                    f"input, it redoes them")
    if missing_shards:
        problems.append(f"{len(missing_shards)} of {batch_num} shard files missing (batch ids {first_n(missing_shards)})")
    if missing:
        problems.append(f"{len(missing)} input ids are in no shard or failures file ({first_n(missing)})")
    if hard or (problems and not allow_partial):
        hint = "" if hard else "; rerun the missing reformat.py shards, or pass --allow_partial to keep originals"
        raise DataError(f"{output_dir}: " + "; ".join(hard + problems) + hint)

    counts = Counter({"duplicate lines dropped": len(dupes)} if dupes else {})
    merged = []
    for rec in records:
        rid = rec["id"]
        revised = results[rid][2] if rid in results else None
        if revised is not None:
            gpt = {**rec["items"][1], "value": revised}
            merged.append({**rec, "items": [rec["items"][0], gpt, *rec["items"][2:]]})
            counts["rewritten"] += 1
            continue
        merged.append(rec)
        if rid in results:
            counts["passed through"] += 1
            if results[rid][3]:  # reformat kept it on purpose: "format does not fit", "empty original"
                counts[f"kept: {results[rid][3]}"] += 1
        elif rid in failed:
            counts["failed"] += 1
        else:
            counts["missing"] += 1
    return merged, counts, problems
