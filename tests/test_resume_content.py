"""Resume and merge by content: a rewrite counts only while the input's question and answer are unchanged."""

import json
import shutil
from pathlib import Path

from conftest import run_script
from realign.shards import shard_path
from tests.servers.openai_fake import OpenAIFake

CASES = Path(__file__).parent / "fixtures" / "cases"


def reformat(srv, inp, out):
    return run_script("reformat.py", "--input_data_path", inp, "--output_directory", out,
                      "--base_url", f"{srv.url}/v1", "--quiet", "--max_retries", "1", env={"OPENAI_API_KEY": ""})


def merge(inp, out, final):
    return run_script("parallel_data_merge.py", "--input_data_path", inp, "--output_directory", out,
                      "--final_output_path", final)


def test_an_edited_answer_is_redone_and_its_stale_rewrite_never_merged(tmp_path):
    v1 = shutil.copy(CASES / "resume_input_v1.json", tmp_path / "v1.json")
    v2 = shutil.copy(CASES / "resume_input_v2_edited.json", tmp_path / "v2.json")
    out, final = tmp_path / "out", tmp_path / "final.json"
    with OpenAIFake(latency=0.01) as srv:
        assert reformat(srv, v1, out).returncode == 0
        first = len(srv.requests)

        r = merge(v2, out, final)  # the user edited answer 1 after the run: its rewrite is stale
        assert r.returncode == 2 and "1 ids have a different original answer" in r.stderr and "(1)" in r.stderr
        assert not final.exists()

        r = reformat(srv, v2, out)  # the rerun redoes exactly the edited record
        assert r.returncode == 0, r.stderr
        redone = [json.loads(req["body"]) for req in srv.requests[first:]]
    assert first == 2 and len(redone) == 1  # advice_giving is passed through, not rewritten
    assert len(redone) == 1 and "6 minutes for a soft yolk" in redone[0]["messages"][-1]["content"]
    assert "1 redone because their input changed" in r.stdout and "2 already done" in r.stdout
    with open(shard_path(out, 0, 1), encoding="utf-8") as f:
        lines = [json.loads(x) for x in f]
    assert sorted(rec["id"] for rec in lines) == [0, 1, 2]  # each id once: the stale line is gone
    r = merge(v2, out, final)
    assert r.returncode == 0, r.stderr
    merged = {rec["id"]: rec for rec in json.loads(final.read_text())}
    edited = json.loads(Path(v2).read_text())[1]["items"][1]["value"]
    assert merged[1]["items"][1]["value"] != edited  # rewritten, from the edited answer's request
    assert "2 rewritten, 1 passed through" in r.stdout
