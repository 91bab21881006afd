"""parallel_data_merge.py: join by id, every input id accounted for exactly once."""

import json

from conftest import make_record, write_json, write_jsonl
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
                fails.append({"id": rec["id"], "reason": "429 after 5 retries"})
                continue
            rec = json.loads(json.dumps(rec))
            if rec["items"][0]["category"] != "default":
                rec["items"][1]["revised_response"] = "REWRITTEN " + rec["items"][1]["value"]
                rec["items"][1]["revised_response_list"] = [rec["items"][1]["revised_response"]]
            lines.append(rec)
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
    assert "8 rewritten, 1 passed through, 1 failed (original kept), 0 missing" in r.stdout


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


def test_duplicate_and_unknown_ids_always_fail(tmp_path, script):
    inp, out_dir, records = _setup(tmp_path, dupe=make_record("r0"))
    r = _merge(script, inp, out_dir, tmp_path / "m.json", "--allow_partial")
    assert r.returncode == 2 and "more than once" in r.stderr and "'r0'" in r.stderr


def test_unknown_id_from_another_dataset(tmp_path, script):
    inp, out_dir, _ = _setup(tmp_path, extra=make_record("stranger"))
    r = _merge(script, inp, out_dir, tmp_path / "m.json")
    assert r.returncode == 2 and "not in the input ('stranger')" in r.stderr


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


def test_same_ids_from_another_dataset_are_not_merged(tmp_path, script):
    inp, out_dir, records = _setup(tmp_path, n_shards=1)
    records[3]["items"][0]["value"] = "a different question"  # the input changed since the shards were written
    write_json(inp, records)
    r = _merge(script, inp, out_dir, tmp_path / "m.json", "--allow_partial")
    assert r.returncode == 2 and "1 ids have a different question" in r.stderr and "('r3')" in r.stderr
    assert not (tmp_path / "m.json").exists()


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
