"""No work is lost to a later failure: a failed probe fit, Ctrl-C, a full disk, a second run beside
the first. (SIGTERM and SIGKILL: test_resume_and_trackers.py, where the stopped run is resumed.)"""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

import sst2_compare as app
from conftest import FAST, PROBE, ROOT, only_run_dir, run_tiny, tiny_args, tmpfs_at

pytestmark = pytest.mark.slow  # whole runs of the script: `pytest -m "not slow"` leaves them out


def test_a_failed_probe_fit_loses_none_of_the_trained_runs(
    tiny_model_dir, tiny_data_dir, tmp_path, monkeypatch, capsys
):
    from sst2kit import probe

    def out_of_memory(features, seed):
        raise MemoryError("cannot allocate 30 MiB")

    monkeypatch.setattr(probe, "best_linear_probe", out_of_memory)
    _, results = run_tiny(tiny_model_dir, tiny_data_dir, tmp_path / "out", *PROBE)
    assert (
        "no linear probe reference: its fit failed (MemoryError: cannot allocate 30 MiB)"
        in capsys.readouterr().out
    )
    assert results["complete"] and results["probe_fit"] is None
    # decided alone, as with the probe
    assert results["seeds"][0]["versus"]["tests"]["validation"]["family"] == "primary"
    # the other split and the test set's 2 parts
    assert results["seeds"][0]["versus"]["tests"]["test"]["family_size"] == 3


def test_two_runs_leave_two_complete_folders(tiny_model_dir, tiny_data_dir, tmp_path):
    out = tmp_path / "out"
    for seeds in ("1", "2"):
        assert (
            app.main(tiny_args(tiny_model_dir, tiny_data_dir, out) + FAST + ["--num_seeds", seeds])
            == 0
        )
    runs = sorted(out.iterdir())
    assert len(runs) == 2
    assert all((r / "results.json").is_file() and (r / "predictions.csv").is_file() for r in runs)


def stop_run(model_dir, data_dir, out, marker, stop_signal, *extra):
    """Start the script, send it stop_signal once it prints marker; returns its exit status, stderr,
    run folder."""
    proc = subprocess.Popen(
        [sys.executable, "sst2_compare.py", *tiny_args(model_dir, data_dir, out), *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    for line in proc.stdout:
        if marker in line:
            break
    proc.send_signal(stop_signal)
    _, stderr = proc.communicate(timeout=120)
    assert "Traceback" not in stderr
    return proc.returncode, stderr, only_run_dir(out)


def test_interrupted_run_leaves_no_results(tiny_model_dir, tiny_data_dir, tmp_path):
    code, stderr, run_dir = stop_run(
        tiny_model_dir,
        tiny_data_dir,
        tmp_path / "out",
        "=== full fine-tune",
        signal.SIGINT,
        "--epochs_full_finetune",
        "100",
        "--save_models",
        "false",
    )
    assert code == 130 and "interrupted" in stderr
    assert not (run_dir / "results.json").exists() and not list(run_dir.glob(".*.tmp"))


@pytest.fixture
def small_disk(tmp_path):
    with tmpfs_at(tmp_path / "small_disk", "size=160k") as folder:
        yield folder


def test_a_full_disk_is_one_line_and_keeps_what_was_written(
    tiny_model_dir, tiny_data_dir, small_disk, capsys
):
    out = small_disk / "out"
    assert app.main(tiny_args(tiny_model_dir, tiny_data_dir, out) + FAST) == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    run_dir = only_run_dir(out)
    # the figures (rewritten after every seed) fill the disk: the finished seed is also written
    # where there is room, and the line says where
    said = f"error: no space left on {run_dir}: free some space; the files already there are whole"
    assert last_line.startswith(said)
    if "were written to" in last_line:
        shutil.rmtree(last_line.split("were written to ")[1].split(" instead")[0])
    # written before the figures filled the disk
    results = json.loads((run_dir / "results.json").read_text())
    assert results["complete"] is True
    assert not list(run_dir.glob(".*.tmp"))
