"""A resumed run can be trusted as much as a fresh one: a stopped run whose record is not one run of
this experiment (a seed twice, a setting missing, other weights, a file cut short or damaged), a
folder that cannot take the resume's writes, or one another run is writing, is refused in one line,
exit 2, before anything trains, and the folder is left as it was."""

import fcntl
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

import sst2_compare as app
from conftest import FAST, run_tiny, tiny_args

pytestmark = pytest.mark.slow  # whole runs of the script


@pytest.fixture(scope="module")
def stopped_run(tiny_model_dir, tiny_data_dir, tmp_path_factory):
    """A finished two-seed run on its own copy of the tiny model: what each case damages a copy
    of."""
    base = tmp_path_factory.mktemp("stopped")
    model = base / "model"
    shutil.copytree(tiny_model_dir, model)
    run_dir, _ = run_tiny(model, tiny_data_dir, base / "out", "--num_seeds", "2")
    return model, run_dir


def folder_state(folder):
    return {
        path.relative_to(folder): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
    }


def refused(model, data, run_dir, capsys, *extra):
    """The resume's exit status and its stderr, the folder checked unchanged."""
    before = folder_state(run_dir)
    args = tiny_args(model, data, run_dir.parent) + FAST + ["--num_seeds", "3"]
    status = app.main(args + ["--resume", str(run_dir), *extra])
    assert folder_state(run_dir) == before
    return status, capsys.readouterr().err


def damaged_copy(run_dir, tmp_path, *, record=None, predictions=None):
    """A copy of the run folder with its results.json changed by record(dict) and its
    predictions.csv text by predictions(str)."""
    copy = tmp_path / "out" / run_dir.name
    shutil.copytree(run_dir, copy)
    if record:
        recorded = json.loads((copy / "results.json").read_text(encoding="utf-8"))
        record(recorded)
        (copy / "results.json").write_text(json.dumps(recorded), encoding="utf-8")
    if predictions:
        text = (copy / "predictions.csv").read_text(encoding="utf-8")
        (copy / "predictions.csv").write_text(predictions(text), encoding="utf-8")
    return copy


def first_seed_twice(record):
    record["seeds"].append(record["seeds"][0])


def without_a_setting(record):
    del record["config"]["learning_rate_head_only"]


def number_as_nan(record):
    record["seeds"][0]["versus"]["tests"]["validation"]["p_value"] = float("nan")


def without_status(record):
    del record["seeds"][1]["training"]["head_only"]["health"]["status"]


def without_seed(record):
    del record["seeds"][0]["seed"]


def config_not_an_object(record):
    record["config"] = ["not", "an", "object"]


def cut_inside_last_row(text):
    return text[: text.rstrip("\n").rfind(",") + 3]  # the last cell, a probability, cut to '0.'


def probability_not_a_number(text):
    lines = text.splitlines(keepends=True)
    cells = lines[5].split(",")
    cells[-2] = "abc"  # full_finetune_prob_pos
    lines[5] = ",".join(cells)
    return "".join(lines)


CASES = {
    "a seed twice": (dict(record=first_seed_twice), "lists seed(s) 42 more than once"),
    "a setting missing": (
        dict(record=without_a_setting),
        "learning_rate_head_only not recorded there, 0.0005 here",
    ),
    "NaN for a number": (
        dict(record=number_as_nan),
        "its results.json.seeds[0].versus.tests.validation.p_value is not a number",
    ),
    "a seed without its status": (
        dict(record=without_status),
        "its results.json.seeds[1].training.head_only.health lacks status",
    ),
    "a seed without its seed": (
        dict(record=without_seed),
        "its results.json.seeds[0] lacks seed",
    ),
    "config not an object": (
        dict(record=config_not_an_object),
        "its results.json.config is not an object",
    ),
    "predictions cut inside their last row": (
        dict(predictions=cut_inside_last_row),
        "its predictions.csv ends inside a row (it was cut short)",
    ),
    "a probability that is not a number": (
        dict(predictions=probability_not_a_number),
        "its predictions.csv's line 6 holds a seed, answer or probability that is not one",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_damaged_record_is_refused_before_anything_trains(
    case, stopped_run, tiny_data_dir, tmp_path, capsys
):
    model, run_dir = stopped_run
    damage, message = CASES[case]
    copy = damaged_copy(run_dir, tmp_path, **damage)
    status, err = refused(model, tiny_data_dir, copy, capsys)
    assert status == 2 and message in err and err.count("\n") == 1, err


def test_weights_replaced_between_the_stop_and_the_resume_are_refused(
    stopped_run, tiny_data_dir, tmp_path, capsys
):
    """The same model folder, the same config, other weights: the seeds would train from
    different weights than the recorded ones."""
    from safetensors.torch import load_file, save_file

    model, run_dir = stopped_run
    kept = tmp_path / "kept.safetensors"
    shutil.copy2(model / "model.safetensors", kept)
    weights = load_file(kept)
    name = next(key for key in weights if "embeddings" in key)
    weights[name] = weights[name] + 0.01
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})
    try:
        status, err = refused(model, tiny_data_dir, damaged_copy(run_dir, tmp_path), capsys)
    finally:  # the module's other cases use this model folder
        shutil.copy2(kept, model / "model.safetensors")
    assert status == 2 and "its seeds were trained from other weights" in err, err


def test_a_run_folder_another_run_is_writing_is_refused(stopped_run, tiny_data_dir, capsys):
    """Two resumes of one folder at once would train the same seeds into it twice."""
    model, run_dir = stopped_run
    writing = os.open(run_dir, os.O_RDONLY)
    fcntl.flock(writing, fcntl.LOCK_EX)  # as the other run's Results holds it
    try:
        status, err = refused(model, tiny_data_dir, run_dir, capsys)
    finally:
        os.close(writing)
    assert status == 2 and "is being written by another run right now" in err, err


def test_a_scheduler_restart_count_that_is_not_a_count_is_one_line(
    stopped_run, tiny_data_dir, monkeypatch, capsys
):
    model, run_dir = stopped_run
    for value in ("abc", "1.0"):
        monkeypatch.setenv("SLURM_RESTART_COUNT", value)
        args = tiny_args(model, tiny_data_dir, run_dir.parent) + FAST
        assert app.main(args) == 2
        err = capsys.readouterr().err
        assert f"SLURM_RESTART_COUNT={value!r} is not a count" in err and err.count("\n") == 1


def test_a_file_where_the_tensorboard_folder_goes_is_refused(
    stopped_run, tiny_data_dir, tmp_path, capsys
):
    model, run_dir = stopped_run
    copy = damaged_copy(run_dir, tmp_path)
    (copy / "tensorboard").write_text("in the way")
    status, err = refused(model, tiny_data_dir, copy, capsys, "--report_to", "tensorboard")
    assert status == 2 and "is a file where the run's TensorBoard folder goes" in err, err


def test_a_run_folder_on_a_read_only_mount_is_refused_before_anything_trains(
    stopped_run, tiny_data_dir, tmp_path, capsys
):
    """The output folder writable, the run folder named by --resume on a read-only mount."""
    import subprocess

    from conftest import tmpfs_at

    model, run_dir = stopped_run
    with tmpfs_at(tmp_path / "mount", "size=20m") as mount:
        copy = mount / run_dir.name
        shutil.copytree(run_dir, copy)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        try:
            args = tiny_args(model, tiny_data_dir, tmp_path / "out") + FAST + ["--num_seeds", "3"]
            assert app.main(args + ["--resume", str(copy)]) == 2
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(mount)], check=True)
    err = capsys.readouterr().err
    assert "it cannot be written (Read-only file system)" in err and err.count("\n") == 1, err


def test_a_probability_rounded_to_one_half_keeps_its_recorded_answer():
    """predictions.csv keeps P(positive) to 6 decimals: 0.5000004 is written 0.5 beside the answer
    1. Read back, it must still be answered 1 (P > 0.5), and a 0.4999996 written 0.5 beside 0
    must stay 0, or a resumed seed's numbers would differ from the uninterrupted run's."""
    from conftest import eval_split
    from sst2kit.metrics import predicted_labels
    from sst2kit.names import RUNS
    from sst2kit.resume import recorded_probs

    split = eval_split("validation", np.array([1, 0, 1]))
    frame = pd.DataFrame(
        {
            "seed": 42,
            "split": "validation",
            "idx": split.frame["idx"],
            **{f"{run}_pred": [1, 0, 1] for run in RUNS},
            **{f"{run}_prob_pos": [0.5, 0.5, 0.9] for run in RUNS},
        }
    )
    (seed, probs), *_ = recorded_probs(None, frame, seeds=[42], eval_splits={"validation": split})
    for run in RUNS:
        assert predicted_labels(probs[run]["validation"]).tolist() == [1, 0, 1]
