"""The demo's five steps end to end on datasets/demo/demo_alpaca.json, as demo.sh runs them,
except that reformat talks to our local OpenAI-shaped server instead of the embedded model
(that one is covered, slowly, in test_local_backend.py). Two reformat shards run in
parallel as real processes, exactly as the spec's batch ids are meant to be used."""

import json
import re
import subprocess
import sys

from conftest import ROOT, run_script
from tests.servers.openai_fake import OpenAIFake

DEMO = ROOT / "datasets" / "demo" / "demo_alpaca.json"


def ok(proc):
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc.stdout


def test_demo_sh_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(ROOT / "demo.sh")]).returncode == 0


def test_five_steps_on_the_demo_set(tmp_path):
    classified, retrieved = tmp_path / "classified.json", tmp_path / "retrieval.json"
    evidence = tmp_path / "retrieval_clean_evidence.json"
    shards, merged, final = tmp_path / "reformat", tmp_path / "reformat.json", tmp_path / "final.json"

    ok(run_script("classify.py", "--input_data_path", DEMO, "--output_path", classified))
    n_records = len(json.loads(DEMO.read_text(encoding="utf-8")))
    assert len(json.loads(classified.read_text(encoding="utf-8"))) == n_records

    ok(run_script("retrieval.py", "--input_data_path", classified, "--output_path", retrieved,
                  "--backend", "bm25", "--corpus_path", ROOT / "datasets" / "corpus"))
    assert evidence.exists()

    with OpenAIFake(latency=0.05) as srv:
        procs = [subprocess.Popen([sys.executable, str(ROOT / "reformat.py"), "--input_data_path", str(evidence),
                                   "--output_directory", str(shards), "--base_url", f"{srv.url}/v1",
                                   "--dataset_batch_id", str(i), "--dataset_batch_num", "2", "--quiet"],
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env={"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": "sk-demo"})
                 for i in (0, 1)]
        for proc in procs:
            out, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0, out[-2000:]

    merge_out = ok(run_script("parallel_data_merge.py", "--input_data_path", evidence,
                              "--output_directory", shards, "--final_output_path", merged))
    assert re.search(rf"merged {n_records} records", merge_out) and "0 missing" in merge_out

    filter_out = ok(run_script("rewrite_data_selection.py", "--input_original_data_path", evidence,
                               "--input_rewrite_data_path", merged, "--output_path", final, "--rules", "alpaca",
                               "--report_path", tmp_path / "counts.json", "--report_dir", tmp_path / "report"))
    counts = json.loads((tmp_path / "counts.json").read_text(encoding="utf-8"))
    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert counts["total"] == n_records and counts["rewritten"] > 0
    for key in ("total", "rewritten", "accepted", "rejected", "not_rewritten"):
        assert f'id="n-{key}">{counts[key]}<' in page
    assert f"report: {tmp_path / 'report' / 'report.html'}" in filter_out
