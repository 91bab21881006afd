"""The parts of --engine ray that need no cluster, so they run even where Ray is not installed:
the cluster-wide rate cap's arithmetic (code/ray/pace.py) on a fake clock, and what the scripts
say when Ray is missing."""

import pytest

from conftest import make_record, run_script, write_json
from realign.ray.pace import Pace, Schedule


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def send_times(pace, clock, n, cost=1):
    """Book n requests at once; the times they may go."""
    return [clock.now + pace.book(cost) for _ in range(n)]


def test_rpm_allows_one_burst_then_paces_at_the_rate():
    clock = Clock()
    times = send_times(Pace(rpm=600, clock=clock), clock, 14)  # 10/s, burst 10
    assert times[:10] == [100.0] * 10
    assert times[10:] == pytest.approx([100.1, 100.2, 100.3, 100.4])


def test_every_window_holds_at_most_burst_plus_rate_times_span():
    clock, pace = Clock(), Pace(rpm=120)                       # 2/s, burst 2
    pace._clock = clock
    times = []
    for step in range(40):                                      # bookings arrive unevenly
        clock.now += 0.05 if step % 7 else 1.3
        times += send_times(pace, clock, 1 + step % 3)
    times.sort()
    for i in range(len(times)):
        for j in range(i, len(times)):
            assert j - i + 1 <= 2 + 2 * (times[j] - times[i]) + 1e-9


def test_an_idle_bucket_refills_but_never_above_its_burst():
    clock = Clock()
    pace = Pace(rpm=60, clock=clock)                            # 1/s, burst 1
    assert send_times(pace, clock, 3) == [100.0, 101.0, 102.0]
    clock.now = 200.0                                           # long idle: still only one at once
    assert send_times(pace, clock, 2) == [200.0, 201.0]


def test_tpm_charges_the_cost_and_both_caps_hold_together():
    clock = Clock()
    pace = Pace(rpm=6000, tpm=6000, clock=clock)                # 100 requests/s, 100 tokens/s (burst 600)
    times = send_times(pace, clock, 4, cost=300)
    assert times == pytest.approx([100.0, 100.0, 103.0, 106.0])
    huge = clock.now + pace.book(10_000)                        # clamped to the burst, not parked forever
    assert huge == pytest.approx(112.0)


def test_schedule_rejects_a_zero_rate():
    with pytest.raises(ValueError):
        Schedule(0, 1)


# ---------------------------------------------------------------- without Ray

@pytest.mark.parametrize("script,flags", [
    ("reformat.py", ["--output_directory", "out", "--base_url", "http://127.0.0.1:9/v1"]),
    ("classify.py", ["--output_path", "out.json"]),
])
def test_engine_ray_without_ray_installed_is_one_line_and_exit_2(tmp_path, script, flags):
    no_ray = tmp_path / "no_ray" / "ray"
    no_ray.mkdir(parents=True)
    (no_ray / "__init__.py").write_text("raise ImportError('No module named ray')\n")  # as if not installed
    inp = write_json(tmp_path / "in.json", [make_record(0, cat=None), make_record(1, cat=None)])
    r = run_script(script, "--input_data_path", inp, *flags, "--engine", "ray", "--quiet", cwd=tmp_path,
                   env={"PYTHONPATH": str(no_ray.parent), "OPENAI_API_KEY": ""}, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["error: --engine ray needs Ray: pip install -e .[ray]  "
                                             "(or pip install -r requirements-ray.txt)"]
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.json").exists()
