"""--engine ray on a small local Ray cluster (2 CPUs) against the real local OpenAI-shaped server.

Same output as a local run, a killed worker process losing and duplicating nothing, and one
rpm cap for all workers together (request times measured on the server). The scripts run as
real subprocesses that join this module's cluster with --ray_address, which also covers that
flag. Skipped only where Ray is not installed and CI is not set (CI must install
requirements-ray.txt, so there a missing Ray is a failure).
"""

import json
import os
import signal
import threading
import time

import pytest

try:
    import ray
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("Ray is not installed (pip install -r requirements-ray.txt); these tests fail instead when CI is set",
                allow_module_level=True)

from conftest import make_record, run_script, write_json
from realign.lengths import make_length_fn
from realign.llm.base import BackendConfig
from realign.ray.backend import RayBackend
from realign.rewrite import Settings, rewrite_shard
from realign.shards import failures_path, shard_path
from tests.servers.openai_fake import OpenAIFake


@pytest.fixture(scope="module")
def cluster():
    """A local cluster for the whole module; its address lets the scripts join it."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def by_id(rows):
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)), "a record was written twice"
    return {row["id"]: row for row in rows}


def records(n, passed=3, bad=5):
    recs = [make_record(i, q=f"question {i}", a=f"answer {i}") for i in range(n)]
    recs[passed] = make_record(passed, cat="story_generation")     # passed through, no request
    recs[bad] = make_record(bad, q=f"[[malformed]] question {bad}")  # always unusable: a failure
    return recs


def reformat(srv, inp, out, *extra):
    return run_script("reformat.py", "--input_data_path", inp, "--output_directory", out, "--base_url",
                      f"{srv.url}/v1", "--quiet", "--max_retries", "1", "--top_k", "2", *extra,
                      env={"OPENAI_API_KEY": ""}, timeout=120)


def run_in_process(srv, recs, out, workers=2, rpm=None, concurrency=None, during=None):
    """rewrite_shard through a RayBackend (what reformat.py --engine ray does), optionally calling
    during(backend) from another thread while it runs."""
    backend = RayBackend("openai", BackendConfig(model="m", base_url=f"{srv.url}/v1"), workers=workers, rpm=rpm)
    side = threading.Thread(target=during, args=(backend,), daemon=True) if during else None
    if side:
        side.start()
    summary = rewrite_shard(recs, backend, out / "rewrite_data_0_of_1_batch.jsonl", out / "failures_0_of_1.jsonl",
                            Settings(top_k=1, concurrency=concurrency, max_retries=2), make_length_fn(None),
                            progress=False)
    if side:
        side.join(timeout=30)
    return backend, summary


# ---------------------------------------------------------------- same output as a local run

def test_reformat_on_ray_writes_what_a_local_run_writes(tmp_path, cluster):
    inp = write_json(tmp_path / "in.json", records(24, passed=13, bad=15))  # shard 1 of 2: ids 12-23
    with OpenAIFake(latency=0.02) as srv:
        local = reformat(srv, inp, tmp_path / "local", "--dataset_batch_id", "1", "--dataset_batch_num", "2")
        on_ray = reformat(srv, inp, tmp_path / "ray", "--dataset_batch_id", "1", "--dataset_batch_num", "2",
                          "--engine", "ray", "--ray_address", cluster, "--ray_workers", "2")
    assert local.returncode == on_ray.returncode == 1, on_ray.stderr  # 1: the [[malformed]] record failed
    for out in ("local", "ray"):
        assert sorted(os.listdir(tmp_path / out)) == ["failures_1_of_2.jsonl", "rewrite_data_1_of_2_batch.jsonl"]
    assert by_id(read_lines(shard_path(tmp_path / "ray", 1, 2))) == by_id(read_lines(shard_path(tmp_path / "local", 1, 2)))
    assert read_lines(failures_path(tmp_path / "ray", 1, 2)) == read_lines(failures_path(tmp_path / "local", 1, 2))
    assert "records:" in on_ray.stdout and "12 records" in on_ray.stdout


def test_ray_rerun_resumes_like_a_local_rerun(tmp_path, cluster):
    inp = write_json(tmp_path / "in.json", records(10))
    out = tmp_path / "out"
    with OpenAIFake() as srv:
        first = reformat(srv, inp, out, "--engine", "ray", "--ray_address", cluster, "--limit", "4")
        sent_first = srv.request_count
        second = reformat(srv, inp, out, "--engine", "ray", "--ray_address", cluster)
    assert first.returncode == 0 and second.returncode == 1, second.stderr
    assert sent_first == 3  # record 3 is passed through
    assert "4 of 10 records attempted (--limit)" in first.stdout and "3 requests" in first.stdout  # the workers' calls
    assert sorted(by_id(read_lines(shard_path(out, 0, 1)))) == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    assert [f["id"] for f in read_lines(failures_path(out, 0, 1))] == [5]
    assert "4 already done" in second.stdout


def test_classify_on_ray_gives_the_local_labels(tmp_path, cluster):
    questions = ["Write a short poem about rain.", "Translate 'good morning' into French.",
                 "Fix the bug in: def f(x): return x +", "What is the capital of Peru?",
                 "Summarize this note: buy milk, call mom, pay rent.", "Is the following review positive? Great!"]
    inp = write_json(tmp_path / "in.json", [{"instruction": q, "output": "..."} for q in questions])
    local = run_script("classify.py", "--input_data_path", inp, "--output_path", tmp_path / "local.json", "--quiet")
    on_ray = run_script("classify.py", "--input_data_path", inp, "--output_path", tmp_path / "ray.json", "--quiet",
                        "--engine", "ray", "--ray_address", cluster, "--ray_workers", "2", timeout=120)
    assert local.returncode == on_ray.returncode == 0, on_ray.stderr
    labels = [[rec["items"][0]["category"] for rec in json.loads(p.read_text())]
              for p in (tmp_path / "local.json", tmp_path / "ray.json")]
    assert labels[0] == labels[1]


def test_classify_openai_backend_on_ray(tmp_path, cluster):
    inp = write_json(tmp_path / "in.json", [{"instruction": f"question {i}", "output": "x"} for i in range(8)])
    with OpenAIFake() as srv:
        r = run_script("classify.py", "--input_data_path", inp, "--output_path", tmp_path / "out.json", "--quiet",
                       "--backend", "openai", "--base_url", f"{srv.url}/v1", "--engine", "ray",
                       "--ray_address", cluster, env={"OPENAI_API_KEY": ""}, timeout=120)
        sent = srv.request_count
    assert r.returncode == 0, r.stderr
    assert sent == 8  # the fake's replies are not task names, so every record becomes `default`
    assert {rec["items"][0]["category"] for rec in json.loads((tmp_path / "out.json").read_text())} == {"default"}


# ---------------------------------------------------------------- keys

KEY = "plain-DISTINCTIVE-key-7f3a9c2e5b81d4"  # not key-shaped: only registered secrets can hide it


def test_the_key_stays_out_of_output_when_workers_see_it(tmp_path, cluster):
    recs = records(8)
    recs[1]["items"][0]["value"] += " [[error500]]"          # a 500 whose message echoes the key
    inp = write_json(tmp_path / "in.json", recs)
    with OpenAIFake(api_key=KEY, echo_key=True) as srv:
        failed = run_script("reformat.py", "--input_data_path", inp, "--output_directory", tmp_path / "out",
                            "--base_url", f"{srv.url}/v1", "--quiet", "--max_retries", "0", "--engine", "ray",
                            "--ray_address", cluster, env={"OPENAI_API_KEY": KEY}, timeout=120)
        refused = run_script("reformat.py", "--input_data_path", inp, "--output_directory", tmp_path / "out2",
                             "--base_url", f"{srv.url}/v1", "--quiet", "--engine", "ray", "--ray_address", cluster,
                             env={"OPENAI_API_KEY": "another-" + KEY}, timeout=120)
    reasons = {f["id"]: f["reason"] for f in read_lines(failures_path(tmp_path / "out", 0, 1))}
    assert failed.returncode == 1 and "500" in reasons[1] and "***" in reasons[1], reasons
    assert refused.returncode == 2 and "401" in refused.stderr.strip().splitlines()[-1]
    for r in (failed, refused):
        assert KEY not in r.stdout + r.stderr
    for folder in ("out", "out2"):
        for name in os.listdir(tmp_path / folder) if (tmp_path / folder).exists() else []:
            assert KEY not in (tmp_path / folder / name).read_text(), name


# ---------------------------------------------------------------- a killed worker

def test_a_killed_worker_loses_and_duplicates_nothing(tmp_path, cluster):
    recs = [make_record(i, q=f"question {i}") for i in range(60)]
    killed = {}

    def kill_one_worker_mid_run(backend):
        deadline = time.monotonic() + 20
        while srv.request_count < 12 and time.monotonic() < deadline:
            time.sleep(0.01)
        killed["pid"] = backend.pids[0]
        killed["in_flight"] = srv.request_count - len(srv.ok_times)
        os.kill(backend.pids[0], signal.SIGKILL)
        killed["restarted"] = ray.get(backend._slots[0].handle.ready.remote(), timeout=30)

    with OpenAIFake(latency=0.3) as srv:
        _, summary = run_in_process(srv, recs, tmp_path, concurrency=8, during=kill_one_worker_mid_run)
    assert killed["in_flight"] > 0  # it died with requests in flight
    assert killed["restarted"] != killed["pid"]  # Ray restarted the worker in a new process
    assert summary.failed == 0 and summary.rewritten == 60
    assert sorted(by_id(read_lines(tmp_path / "rewrite_data_0_of_1_batch.jsonl"))) == list(range(60))
    assert read_lines(tmp_path / "failures_0_of_1.jsonl") == []


# ---------------------------------------------------------------- one rpm cap for all workers

def test_the_rpm_cap_is_shared_by_all_workers(tmp_path, cluster):
    rpm, n = 300, 30                       # 5 requests/s with a burst of 5
    with OpenAIFake() as srv:
        _, summary = run_in_process(srv, [make_record(i, q=f"q {i}") for i in range(n)], tmp_path,
                                    workers=2, rpm=rpm, concurrency=16)
        times = sorted(r["t"] for r in srv.requests)
    assert summary.rewritten == n
    rate, burst = rpm / 60, 5
    # Steady state: consecutive requests 1/rate apart, not 1/(2 x rate) as two per-worker caps would give.
    gaps = sorted(b - a for a, b in zip(times[n // 2:], times[n // 2 + 1:]))
    assert gaps[len(gaps) // 2] >= 0.9 / rate, f"median gap {gaps[len(gaps) // 2]:.3f} s"
    # Any window i..j: at most burst + rate x span, plus one burst of start-up jitter (a fresh worker's first
    # HTTP call spends ~0.8 s importing, so requests booked just after it catch up with it).
    worst = max((j - i + 1) - (burst + rate * (times[j] - times[i])) for i in range(n) for j in range(i, n))
    assert worst <= burst, f"cap exceeded by {worst:.1f} requests"


# ---------------------------------------------------------------- vLLM: no GPU here

def test_vllm_on_a_cluster_without_gpus_is_a_usage_error(tmp_path, cluster):
    inp = write_json(tmp_path / "in.json", records(8))
    r = run_script("reformat.py", "--input_data_path", inp, "--output_directory", tmp_path / "out", "--quiet",
                   "--backend", "vllm", "--model", "some/model", "--engine", "ray", "--ray_address", cluster,
                   "--tensor_parallel_size", "2", timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == ("error: --backend vllm on Ray needs GPUs: the cluster has 0, "
                                                 "a replica needs 2 (--tensor_parallel_size)")
    assert not (tmp_path / "out").exists()


def test_an_unreachable_cluster_address_is_a_quick_usage_error(tmp_path):
    inp = write_json(tmp_path / "in.json", records(8))
    r = run_script("reformat.py", "--input_data_path", inp, "--output_directory", tmp_path / "out", "--quiet",
                   "--base_url", "http://127.0.0.1:9/v1", "--engine", "ray", "--ray_address", "127.0.0.1:9",
                   timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error: cannot reach the Ray cluster at 127.0.0.1:9: ")


def test_a_multi_gpu_replica_gets_a_packed_group_of_one_gpu_bundles(cluster):
    from realign.ray.cluster import worker_placement

    http, none = worker_placement(0)
    assert none is None and http["num_cpus"] == 1 and http["num_gpus"] == 0
    options, group = worker_placement(4)  # stays pending on this CPU cluster; only its shape is checked
    try:
        assert group.bundle_specs == [{"GPU": 1, "CPU": 1}] * 4 and options["num_gpus"] == 0
        assert options["scheduling_strategy"].placement_group_capture_child_tasks
    finally:
        ray.util.remove_placement_group(group)
