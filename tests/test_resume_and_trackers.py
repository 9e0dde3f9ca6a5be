"""A long experiment survives its machine: a stopped run resumed equals an uninterrupted one, number
for number; what cannot be resumed is refused in one line with the folder untouched; and the Trainer
logs to TensorBoard."""

import json
import shutil
import signal

import pandas as pd
import pytest
from test_no_work_lost import stop_run

import sst2_compare as app
from conftest import FAST, PROBE, needs_torchrun, run_tiny, tiny_args, torchrun

pytestmark = pytest.mark.slow  # whole runs of the script: `pytest -m "not slow"` leaves them out

TIMES = (
    "train_seconds",
    "predict_seconds",
    "seconds",
    "timings_seconds",
    "environment",
    "resumed_seeds",
    "config",
)


def resume(model_dir, data_dir, out, run_dir, *, seeds):
    """The script going on with run_dir: its exit status."""
    args = tiny_args(model_dir, data_dir, out) + FAST + PROBE  # the probe is fitted again
    return app.main(args + ["--num_seeds", str(seeds), "--resume", str(run_dir)])


def without_times(record):
    """results.json less what differs between any two runs of the same experiment: times, the
    machine, and the config's resume and num_seeds fields."""
    if isinstance(record, dict):
        return {key: without_times(value) for key, value in record.items() if key not in TIMES}
    if isinstance(record, list):
        return [without_times(value) for value in record]
    return record


@pytest.mark.xdist_group("three_seeds")
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL])
def test_a_run_stopped_in_its_second_seed_keeps_the_first_and_resumed_equals_an_uninterrupted_one(
    stop_signal, three_seeds_in_one_process, tiny_model_dir, tiny_data_dir, tmp_path, capsys
):
    """SIGTERM (as docker, Slurm and Kubernetes stop a job) or SIGKILL while seed 43 trains: seed
    42's results are on disk, readable and marked incomplete; resumed, the run equals one never
    stopped."""
    out = tmp_path / "out"
    code, stderr, run_dir = stop_run(
        tiny_model_dir,
        tiny_data_dir,
        out,
        "=== head-only (seed 43)",
        stop_signal,
        *FAST,
        *PROBE,
        "--num_seeds",
        "3",
    )
    if stop_signal == signal.SIGTERM:  # a stop the run sees: said, and no file left half-written
        assert code == 128 + signal.SIGTERM and "terminated" in stderr
        assert not list(run_dir.glob(".*.tmp"))
    else:
        assert code == -signal.SIGKILL
    stopped = json.loads((run_dir / "results.json").read_text())
    assert (
        stopped["complete"] is False
        and stopped["seeds"][0]["training"]["full_finetune"]["steps"] > 0
    )
    assert set(pd.read_csv(run_dir / "predictions.csv")["seed"]) == {42}
    # the report and the figures are kept after every seed too, saying they are partial
    report = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "**Partial: 1 of 3 seeds finished**" in report and "Answer:" in report
    assert len(list(run_dir.glob("*.png"))) == 4
    # the folder alone: the model, data, seeds and every other flag it was started with are its own
    assert app.main(["--resume", str(run_dir)]) == 0
    stdout = capsys.readouterr().out
    assert "resuming with the stopped run's settings: --model_name" in stdout
    record = json.loads((run_dir / "results.json").read_text())
    assert record["complete"] and record["resumed_seeds"] == [42]
    uninterrupted, uninterrupted_predictions = three_seeds_in_one_process
    assert without_times(record) == without_times(uninterrupted)
    assert pd.read_csv(run_dir / "predictions.csv").equals(uninterrupted_predictions)
    assert "seed(s) 42 kept as recorded" in stdout and "=== head-only (seed 42)" not in stdout
    assert "seed(s) 42 kept as recorded" in (run_dir / "report.md").read_text()
    assert "Partial" not in (run_dir / "report.md").read_text()


def one_seed_run(tiny_model_dir, tiny_data_dir, out, *extra):
    run_dir, _ = run_tiny(tiny_model_dir, tiny_data_dir, out, *extra)
    return run_dir


def folder_state(folder):
    return {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}


def test_what_cannot_be_resumed_is_refused_in_one_line_and_the_folder_is_untouched(
    tiny_model_dir, tiny_data_dir, tmp_path, capsys
):
    out = tmp_path / "out"
    run_dir = one_seed_run(tiny_model_dir, tiny_data_dir, out, "--num_seeds", "2")
    capsys.readouterr()
    before = folder_state(run_dir)
    other_data = tmp_path / "other_data"
    shutil.copytree(tiny_data_dir, other_data)
    frame = pd.read_parquet(other_data / "validation.parquet")
    frame.iloc[::-1].to_parquet(other_data / "validation.parquet")  # the same rows in another order
    not_a_run = tmp_path / "not_a_run"
    not_a_run.mkdir()
    cases = [
        (
            ["--resume", str(run_dir), "--learning_rate_full_finetune", "3e-5"],
            "settings that shape the results differ: learning_rate_full_finetune 2e-05 there, "
            "3e-05 here",
        ),
        (["--resume", str(not_a_run)], "not a run folder (no results.json in it)"),
        (
            ["--resume", str(run_dir), "--num_seeds", "1"],
            "it holds seed(s) 43, outside this run's seeds 42..42",
        ),
    ]
    for extra, message in cases:
        assert (
            app.main(
                tiny_args(tiny_model_dir, tiny_data_dir, out) + FAST + ["--num_seeds", "2", *extra]
            )
            == 2
        )
        err = capsys.readouterr().err
        assert message in err and err.count("error:") == 1, (extra, err)
    other = tiny_args(tiny_model_dir, other_data, out) + FAST + ["--num_seeds", "2"]
    assert app.main(other + ["--resume", str(run_dir)]) == 2
    assert "its results come from other data (its fingerprint differs" in capsys.readouterr().err
    assert folder_state(run_dir) == before and len(list(out.iterdir())) == 1
    recorded = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    earlier_version = {key: value for key, value in recorded.items() if key != "format"}
    number_as_text = json.loads(json.dumps(recorded))
    number_as_text["seeds"][0]["versus"]["tests"]["validation"]["p_value"] = "0.5"
    for damaged, message in (
        (earlier_version, "is not of this version's layout (format 1, this version writes 2)"),
        (
            number_as_text,
            "its results.json.seeds[0].versus.tests.validation.p_value is not a number",
        ),
    ):
        (run_dir / "results.json").write_text(json.dumps(damaged), encoding="utf-8")
        assert (
            app.main(tiny_args(tiny_model_dir, tiny_data_dir, out) + FAST + ["--resume", "latest"])
            == 2
        )
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    (run_dir / "results.json").write_text("{not json")
    assert (
        app.main(tiny_args(tiny_model_dir, tiny_data_dir, out) + FAST + ["--resume", "latest"]) == 2
    )
    assert "its results.json cannot be read (JSONDecodeError" in capsys.readouterr().err


def test_a_requeued_job_resumes_its_own_folder(
    tiny_model_dir, tiny_data_dir, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "out"
    run_dir = one_seed_run(tiny_model_dir, tiny_data_dir, out)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert (
        app.main(tiny_args(tiny_model_dir, tiny_data_dir, out) + FAST + ["--num_seeds", "2"]) == 0
    )
    assert list(out.iterdir()) == [run_dir]
    record = json.loads((run_dir / "results.json").read_text())
    assert record["resumed_seeds"] == [42] and [s["seed"] for s in record["seeds"]] == [42, 43]


def test_a_tracker_that_is_not_installed_is_one_line_before_anything_loads(
    tmp_path, capsys, monkeypatch
):
    from sst2kit import trackers

    monkeypatch.setattr(trackers.importlib.util, "find_spec", lambda name: None)
    assert (
        app.main(
            [
                "--report_to",
                "mlflow",
                "--data_dir",
                "nowhere",
                "--output_dir",
                str(tmp_path / "out"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert (
        "--report_to mlflow needs the mlflow package: pip install mlflow" in err
        and err.count("\n") == 1
    )


def test_tensorboard_gets_each_runs_loss_curve_and_the_answer(
    tiny_model_dir, tiny_data_dir, tmp_path
):
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator",
        reason="needs the tensorboard package (pip install tensorboard)",
    )
    run_dir, record = run_tiny(
        tiny_model_dir, tiny_data_dir, tmp_path / "out", "--report_to", "tensorboard"
    )
    for run in ("head_only_seed42", "full_finetune_seed42"):
        events = event_accumulator.EventAccumulator(str(run_dir / "tensorboard" / run))
        events.Reload()
        losses = [event.value for event in events.Scalars("train/loss")]
        training = record["seeds"][0]["training"][run.rsplit("_seed", 1)[0]]
        logged = [entry[1] for entry in training["history"]["train_loss"]]
        assert losses == pytest.approx(logged, rel=1e-5) and len(losses) >= 2
    answer = event_accumulator.EventAccumulator(str(run_dir / "tensorboard" / "experiment"))
    answer.Reload()
    delta = answer.Scalars("answer/delta_accuracy")[0].value
    assert delta == pytest.approx(record["headline"]["delta_accuracy"], abs=1e-6)


@needs_torchrun
@pytest.mark.xdist_group("three_seeds")
def test_a_stopped_run_resumed_under_torchrun_seeds_mode_equals_an_uninterrupted_one(
    three_seeds_in_one_process, tiny_model_dir, tiny_data_dir, tmp_path
):
    """Seed 42 finished in one process, then seeds 43 and 44 trained by two processes at once, one
    seed each."""
    out = tmp_path / "out"
    run_dir = one_seed_run(tiny_model_dir, tiny_data_dir, out, *PROBE)
    resumed = torchrun(
        *tiny_args(tiny_model_dir, tiny_data_dir, out),
        *FAST,
        *PROBE,
        *("--num_seeds", "3", "--parallel", "seeds", "--resume", str(run_dir)),
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    record = json.loads((run_dir / "results.json").read_text())
    assert record["speed"]["parallel"] == "seeds" and record["resumed_seeds"] == [42]
    uninterrupted, uninterrupted_predictions = three_seeds_in_one_process
    assert without_times({**record, "speed": None}) == without_times(
        {**uninterrupted, "speed": None}
    )
    assert pd.read_csv(run_dir / "predictions.csv").equals(uninterrupted_predictions)


def test_a_tracker_that_fails_mid_run_costs_the_tracker_not_the_run(
    tiny_model_dir, tiny_data_dir, tmp_path, monkeypatch, capsys
):
    pytest.importorskip(
        "tensorboard", reason="needs the tensorboard package (pip install tensorboard)"
    )
    from transformers.integrations import TensorBoardCallback

    def disk_full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(TensorBoardCallback, "on_log", disk_full)
    _, record = run_tiny(
        tiny_model_dir, tiny_data_dir, tmp_path / "out", "--report_to", "tensorboard"
    )
    out = capsys.readouterr().out
    assert (
        record["complete"]
        and "warning: TensorBoardCallback failed (OSError: [Errno 28] No space left" in out
    )
    # once per run, then that run goes on without it
    assert out.count("TensorBoardCallback failed") == 2


def test_a_read_only_run_folder_is_refused_before_anything_loads(
    tiny_model_dir, tiny_data_dir, tmp_path, capsys
):
    """--resume into a folder on a read-only file system: the output folder's probe says so, exit
    2."""
    import subprocess

    from conftest import tmpfs_at

    with tmpfs_at(tmp_path / "ro", "size=20m") as out:
        run_dir = one_seed_run(tiny_model_dir, tiny_data_dir, out)
        capsys.readouterr()
        subprocess.run(["mount", "-o", "remount,ro", str(out)], check=True)
        try:
            assert resume(tiny_model_dir, tiny_data_dir, out, run_dir, seeds=2) == 2
            err = capsys.readouterr().err
            assert "Read-only file system" in err and err.count("error:") == 1
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(out)], check=True)
