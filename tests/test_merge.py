"""parallel_data_merge.py: join by id, every input id accounted for exactly once."""

import json
from pathlib import Path

import pytest

from conftest import make_record, write_json, write_jsonl
from realign.records import input_hash
from realign.rewrite import passing_reason, shard_row
from realign.shards import failures_path, shard_bounds, shard_path


def _setup(tmp, n_records=10, n_shards=3, drop=(), fail=(), dupe=None, extra=None):
    records = [make_record(f"r{i}", q=f"q{i}", a=f"a{i}") for i in range(n_records)]
    records[1]["items"][0]["category"] = "default"  # a pass-through record
    inp = write_json(tmp / "in.json", records)
    out_dir = tmp / "out"
    out_dir.mkdir()
    for s in range(n_shards):
        lo, hi = shard_bounds(n_records, s, n_shards)
        lines, fails = [], []
        for rec in reversed(records[lo:hi]):  # shard files are in completion order, not input order
            if rec["id"] in drop:
                continue
            if rec["id"] in fail:
                fails.append({"id": rec["id"], "reason": "429 after 5 retries", "input_hash": input_hash(rec)})
                continue
            if rec["items"][0]["category"] != "default":
                new = "REWRITTEN " + rec["items"][1]["value"]
                lines.append(shard_row(rec, rewrite=new, candidates=[new]))
            else:
                lines.append(shard_row(rec, kept_reason=passing_reason(rec)))
        if dupe and s == 0:
            lines.append(dupe)
        if extra and s == 0:
            lines.append(extra)
        write_jsonl(shard_path(out_dir, s, n_shards), lines)
        write_jsonl(failures_path(out_dir, s, n_shards), fails)
    return inp, out_dir, records


def _merge(script, inp, out_dir, final, *extra):
    return script("parallel_data_merge.py", "--input_data_path", inp, "--output_directory", out_dir,
                  "--final_output_path", final, *extra)


def test_merges_in_input_order_by_id(tmp_path, script):
    inp, out_dir, records = _setup(tmp_path, fail={"r5"})
    final = tmp_path / "merged.json"
    r = _merge(script, inp, out_dir, final)
    assert r.returncode == 0, r.stderr
    merged = json.loads(final.read_text())
    assert [m["id"] for m in merged] == [rec["id"] for rec in records]
    assert merged[0]["items"][1]["value"] == "REWRITTEN a0"
    assert merged[1]["items"][1]["value"] == "a1"  # passed through
    assert merged[5]["items"][1]["value"] == "a5"  # failed: original kept
    assert "8 rewritten, 1 passed through (1 task not rewritten), 1 failed (original kept), 0 missing" in r.stdout
    reasons = {m["id"]: m["items"][1].get("kept_original") for m in merged}
    assert reasons["r0"] is None and reasons["r1"] == "task not rewritten"
    assert reasons["r5"] == "failed: 429 after 5 retries"
    assert all(m["items"][1]["input_hash"] == input_hash(rec) for m, rec in zip(merged, records))


def test_missing_ids_are_an_error_unless_allow_partial(tmp_path, script):
    inp, out_dir, _ = _setup(tmp_path, drop={"r2", "r7"})
    final = tmp_path / "merged.json"
    r = _merge(script, inp, out_dir, final)
    assert r.returncode == 2 and "2 input ids are in no shard or failures file ('r2', 'r7')" in r.stderr
    assert not final.exists()
    r = _merge(script, inp, out_dir, final, "--allow_partial")
    assert r.returncode == 0 and "2 missing (original kept)" in r.stdout and "warning" in r.stdout


def test_missing_shard_file_is_named(tmp_path, script):
    inp, out_dir, _ = _setup(tmp_path)
    (out_dir / "rewrite_data_1_of_3_batch.jsonl").unlink()
    r = _merge(script, inp, out_dir, tmp_path / "m.json")
    assert r.returncode == 2 and "1 of 3 shard files missing (batch ids 1)" in r.stderr


def test_two_current_lines_of_one_record_stop_the_merge_unless_keep_first(tmp_path, script):
    records = [make_record(f"r{i}", q=f"q{i}", a=f"a{i}") for i in range(10)]
    records[1]["items"][0]["category"] = "default"
    inp, out_dir, _ = _setup(tmp_path, dupe=shard_row(records[0], rewrite="SECOND", candidates=["SECOND"]))
    r = _merge(script, inp, out_dir, tmp_path / "m.json", "--allow_partial")
    assert r.returncode == 2 and "more than once" in r.stderr and "'r0'" in r.stderr
    r = _merge(script, inp, out_dir, tmp_path / "m.json", "--keep_first")
    assert r.returncode == 0 and "1 duplicate lines dropped (--keep_first)" in r.stdout


def test_a_removed_records_line_is_ignored_and_counted(tmp_path, script):
    inp, out_dir, records = _setup(tmp_path, extra=shard_row(make_record("stranger"), kept_reason="no category"))
    write_json(inp, records[:4] + records[5:])  # and one record removed from the input since the run
    r = _merge(script, inp, out_dir, tmp_path / "m.json")
    assert r.returncode == 0, r.stderr
    assert "merged 9 records" in r.stdout and "2 lines of records no longer in the input ignored" in r.stdout
    assert [m["id"] for m in json.loads((tmp_path / "m.json").read_text())] == [rec["id"] for rec in records if rec["id"] != "r4"]


def test_a_folder_of_another_dataset_is_refused(tmp_path, script):
    inp, out_dir, records = _setup(tmp_path, n_shards=2)
    other = [make_record(i, q=f"other question {i}", a=f"other answer {i}") for i in range(3)]
    inp2 = write_json(tmp_path / "other.json", other)
    r = _merge(script, inp2, out_dir, tmp_path / "m.json", "--allow_partial", "--changed_input", "keep_original")
    assert r.returncode == 2 and "another dataset's run" in r.stderr and "none of its 10 finished records" in r.stderr
    assert not (tmp_path / "m.json").exists()


def test_torn_last_line_counts_as_missing(tmp_path, script):
    inp, out_dir, _ = _setup(tmp_path, n_shards=1)
    p = out_dir / "rewrite_data_0_of_1_batch.jsonl"
    p.write_text(p.read_text()[:-40])  # kill -9 mid-write
    r = _merge(script, inp, out_dir, tmp_path / "m.json", "--allow_partial")
    assert r.returncode == 0 and "1 missing" in r.stdout


def test_several_runs_need_batch_num(tmp_path, script):
    inp, out_dir, _ = _setup(tmp_path, n_shards=2)
    write_jsonl(shard_path(out_dir, 0, 5), [])
    r = _merge(script, inp, out_dir, tmp_path / "m.json")
    assert r.returncode == 2 and "--dataset_batch_num" in r.stderr
    r = _merge(script, inp, out_dir, tmp_path / "m.json", "--dataset_batch_num", "2")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("edit", ["question", "answer", "system", "category", "evidence"])
def test_a_record_changed_since_reformat_is_refused_or_keeps_its_original(tmp_path, script, edit):
    inp, out_dir, records = _setup(tmp_path, n_shards=1)
    first = records[3]["items"][0]
    if edit == "question":
        first["value"] = "a different question"
    elif edit == "answer":
        records[3]["items"][1]["value"] = "a corrected answer"
    elif edit == "system":
        records[3]["system"] = "Always answer in French."
    elif edit == "category":
        first["category"] = "open_qa"
    else:
        first["evidence"] = ["A passage found since."]
    write_json(inp, records)
    r = _merge(script, inp, out_dir, tmp_path / "m.json", "--allow_partial")
    assert r.returncode == 2 and "1 records changed since reformat.py" in r.stderr and "('r3')" in r.stderr
    assert "--changed_input keep_original" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.json").exists()
    r = _merge(script, inp, out_dir, tmp_path / "m.json", "--changed_input", "keep_original")
    assert r.returncode == 0, r.stderr
    merged = {m["id"]: m for m in json.loads((tmp_path / "m.json").read_text())}
    assert merged["r3"]["items"][1]["value"] == records[3]["items"][1]["value"]  # the input's own, never the old rewrite
    assert merged["r3"]["items"][1]["kept_original"] == "input changed since reformat"
    assert "1 changed since reformat (original kept" in r.stdout and "8 rewritten" in r.stdout


def test_a_record_failed_before_and_passed_on_the_rerun_is_not_failed(tmp_path, script):
    inp, out_dir, records = _setup(tmp_path, n_shards=1, fail={"r2"})
    with open(shard_path(out_dir, 0, 1), "a", encoding="utf-8") as f:  # the rerun did it
        f.write(json.dumps(shard_row(records[2], rewrite="NEW", candidates=["NEW"])) + "\n")
    r = _merge(script, inp, out_dir, tmp_path / "m.json")
    assert r.returncode == 0 and "9 rewritten" in r.stdout and "0 failed" in r.stdout


def test_a_shard_line_whose_rewrite_is_not_text_is_one_line(tmp_path, script):
    inp, out_dir, records = _setup(tmp_path, n_shards=1)
    p = Path(shard_path(out_dir, 0, 1))
    lines = p.read_text().splitlines()
    bad = json.loads(lines[2])
    bad["items"][1]["revised_response"] = {"text": "a rewrite in an object"}
    p.write_text("\n".join(lines[:2] + [json.dumps(bad)] + lines[3:]) + "\n")
    r = _merge(script, inp, out_dir, tmp_path / "m.json", "--allow_partial")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert f"{p}: record 2 (id={bad['id']!r}): items[1].revised_response must be text, got dict" in r.stderr


def test_output_may_not_overwrite_input(tmp_path, script):
    inp, out_dir, _ = _setup(tmp_path)
    before = inp.read_text()
    r = _merge(script, inp, out_dir, inp)
    assert r.returncode == 2 and "overwrite the input" in r.stderr and "Traceback" not in r.stderr
    assert inp.read_text() == before


def test_corrupt_line_inside_a_shard_is_named(tmp_path, script):
    inp, out_dir, _ = _setup(tmp_path, n_shards=1)
    p = out_dir / "rewrite_data_0_of_1_batch.jsonl"
    lines = p.read_text().splitlines(keepends=True)
    p.write_text(lines[0] + "{garbage\n" + "".join(lines[1:]))
    r = _merge(script, inp, out_dir, tmp_path / "m.json", "--allow_partial")
    assert r.returncode == 2 and f"{p}: line 2: not valid JSON" in r.stderr and "Traceback" not in r.stderr


def test_ids_past_64_bits_read_back_exactly(tmp_path, script):
    """The fast JSON reader turns such integers into floats: a file holding one is read by json."""
    big = 2 ** 64
    records = [make_record(big, q="q", a="a", cat="default"), make_record(big + 1, q="q2", a="a2", cat="default")]
    inp = write_json(tmp_path / "in.json", records)
    (tmp_path / "out").mkdir()
    write_jsonl(shard_path(tmp_path / "out", 0, 1), [shard_row(rec, kept_reason=passing_reason(rec)) for rec in records])
    r = _merge(script, inp, tmp_path / "out", tmp_path / "m.json")
    assert r.returncode == 0, r.stderr
    assert [m["id"] for m in json.loads((tmp_path / "m.json").read_text())] == [big, big + 1]
