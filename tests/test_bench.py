"""The benchmark's small CPU mode runs, so the GPU benchmark cannot rot unnoticed."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow  # whole runs of the script: `pytest -m "not slow"` leaves them out


def test_bench_tiny_mode_prints_the_comparison(tiny_model_dir, tiny_data_dir, tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            "bench/bench.py",
            "--tiny",
            "--model_name",
            str(tiny_model_dir),
            "--data_dir",
            str(tiny_data_dir),
            "--subset_fraction",
            "0.5",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "speed ratio defaults vs notebook" in done.stdout
    written = json.loads(out.read_text())
    assert set(written["columns"]) == {"notebook", "defaults"}
    for name, column in written["columns"].items():
        assert column["total s"] > 0 and column["full steps/s"] > 0
        assert (
            column["full val acc"]
            == written["results"][name]["seeds"][0]["metrics"]["full_finetune"]["validation"][
                "accuracy"
            ]
        )


def run_bench(*args):
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_interval_coverage_table_is_drawn_at_a_tiny_size():
    out = run_bench("bench/interval_coverage.py", "--trials", "3", "--items", "60")
    rows = [line.split() for line in out.splitlines()[1:]]
    assert len(rows) == 15  # five scenarios at 2, 3 and 5 seeds
    assert all(0 <= float(row[-2]) <= 1 and 0 <= float(row[-1]) <= 1 for row in rows)


def test_the_health_rates_table_is_drawn_at_a_tiny_size():
    out = run_bench("bench/health_rates.py", "--trials", "20", "--lengths", "4,30")
    rows = {line[:44].strip(): line[44:].split() for line in out.splitlines()[2:]}
    assert len(rows) == 11 and all(len(rates) == 2 for rates in rows.values())
    assert float(rows["healthy, from a new head"][1]) == 1.0  # 20 of 20 let through
    assert float(rows["blow-up, not recovered"][1]) == 1.0  # 20 of 20 named


def test_the_probe_size_benchmark_runs_on_a_tiny_model(tiny_model_dir, tiny_data_dir):
    out = run_bench(
        "bench/probe_size.py", "--model_name", str(tiny_model_dir), "--data_dir", str(tiny_data_dir)
    )
    fits = [line for line in out.splitlines() if line.startswith("C = ") and "fitted on" in line]
    assert len(fits) == 2 and all(": validation 0." in line for line in fits)


def test_the_step_profile_loads_where_it_cannot_run():
    """It needs CUDA; on a CPU its imports (the graphed step among them) are still checked."""
    assert "CUDA graph" in run_bench("bench/step_profile.py", "--help")
