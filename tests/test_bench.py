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
            == written["results"][name]["runs"]["full_finetune"]["validation"]["accuracy"]
        )
