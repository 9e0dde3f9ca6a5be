"""Under torchrun: one set of outputs, a bad input said once, seeds spread over processes giving
what one process gives, and a failing process losing none of the seeds the others finished."""

import json
import re
import shutil

import pandas as pd
import pytest

from conftest import FAST, PROBE, ROOT, needs_torchrun, only_run_dir, tiny_args, torchrun
from sst2kit.names import RUNS

pytestmark = pytest.mark.slow  # whole runs of the script: `pytest -m "not slow"` leaves them out


@needs_torchrun
def test_two_processes_write_one_set_of_outputs(tiny_model_dir, tiny_data_dir, tmp_path):
    out = tmp_path / "out"
    done = torchrun(
        *tiny_args(tiny_model_dir, tiny_data_dir, out),
        *FAST,
        *PROBE,
        "--dataloader_num_workers",
        "0",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("=== verdict ===") == 1
    run_dir = only_run_dir(out)
    results = json.loads((run_dir / "results.json").read_text())
    # one seed: auto
    assert results["environment"]["processes"] == 2 and results["speed"]["parallel"] == "data"
    predictions = pd.read_csv(run_dir / "predictions.csv")
    assert predictions.groupby("split").size().to_dict() == {"test": 40, "validation": 60}
    for run in RUNS:
        assert sum(map(sum, results["seeds"][0]["metrics"][run]["test"]["confusion_matrix"])) == 40


@needs_torchrun
def test_under_two_processes_a_bad_input_is_said_once_and_each_process_exits_2(
    tiny_model_dir, tmp_path
):
    done = torchrun(*tiny_args(tiny_model_dir, tmp_path / "nothing", tmp_path / "out"))
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: data_dir {tmp_path / 'nothing'} is not a folder: point --data_dir at a folder "
        "with train and validation files"
    ]
    assert "exitcode  : 2" in done.stderr  # torchrun's own report of each process
    assert not (tmp_path / "out").exists()


# Each process as on its own machine: the same --data_dir path, but process 1's copy of the data is
# its own.
OWN_COPY = """
import os, runpy, sys
if os.environ["LOCAL_RANK"] == "1":
    sys.argv[sys.argv.index("--data_dir") + 1] = {bad!r}
sys.argv[0] = {script!r}
sys.path.insert(0, os.path.dirname({script!r}))
runpy.run_path({script!r}, run_name="__main__")
"""


@needs_torchrun
def test_a_bad_input_only_process_1_sees_is_named_once_and_every_process_exits_2(
    tiny_model_dir, tiny_data_dir, tmp_path
):
    bad = tmp_path / "bad"
    bad.mkdir()
    train = pd.read_parquet(tiny_data_dir / "train.parquet")
    train["label"] = train["label"].map({0: "neg", 1: "pos"})
    train.to_parquet(bad / "train.parquet")
    shutil.copy(tiny_data_dir / "validation.parquet", bad)
    launcher = tmp_path / "own_copy.py"
    launcher.write_text(OWN_COPY.format(bad=str(bad), script=str(ROOT / "sst2_compare.py")))
    done = torchrun(
        *FAST, *tiny_args(tiny_model_dir, tiny_data_dir, tmp_path / "out"), script=launcher
    )
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert (
        len(errors) == 1 and errors[0].startswith("error: process 1: ") and "label" in errors[0]
    ), done.stderr
    # torchrun stops the other process once one has exited (SIGTERM, -15) if it has not exited 2 by
    # then itself
    codes = re.findall(r"exitcode\s*: (-?\d+)", done.stderr)
    assert "2" in codes and set(codes) <= {"2", "-15"}, done.stderr[-3000:]
    # torchrun reports failed processes with a traceback of its own; none comes from the project's
    # code or gloo
    assert f'File "{ROOT}/' not in done.stderr and "gloo" not in done.stderr.lower()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@needs_torchrun
@pytest.mark.xdist_group("three_seeds")
def test_seeds_spread_over_two_processes_give_each_seed_exactly_what_one_process_gives(
    three_seeds_in_one_process, tiny_model_dir, tiny_data_dir, tmp_path
):
    """Three seeds over two processes (42 and 44 in one, 43 in the other), against one process: the
    same metrics and the same P(positive) for every item, to the last digit (one thread per process
    in both)."""
    out = tmp_path / "out"
    spread = torchrun(
        *tiny_args(tiny_model_dir, tiny_data_dir, out),
        *FAST,
        *PROBE,
        "--num_seeds",
        "3",
        "--parallel",
        "seeds",
    )
    assert spread.returncode == 0, spread.stderr[-3000:]
    assert spread.stdout.count("=== verdict ===") == 1
    one, one_predictions = three_seeds_in_one_process
    two = json.loads((only_run_dir(out) / "results.json").read_text())
    assert (
        two["speed"]["parallel"] == "seeds"
        and two["complete"]
        and [s["seed"] for s in two["seeds"]] == [42, 43, 44]
    )
    for a, b in zip(one["seeds"], two["seeds"]):
        for run in RUNS:
            for split in ("validation", "test"):
                assert a["metrics"][run][split]["accuracy"] == b["metrics"][run][split]["accuracy"]
    keys = ["seed", "split", "idx"]
    first, second = (
        predictions.sort_values(keys).reset_index(drop=True)
        for predictions in (one_predictions, pd.read_csv(only_run_dir(out) / "predictions.csv"))
    )
    for column in ("head_only_prob_pos", "full_finetune_prob_pos", "label"):
        assert first[column].tolist() == second[column].tolist()


FAILING_SEED = """
# the script, with seed 43's training failing as a diverged run does (planted at the library, not
# in the script)
import runpy, sys
from transformers import Trainer
sys.path.insert(0, {root!r})
from sst2kit.errors import Diverged
train = Trainer.train

def seed_43_fails(trainer, *args, **kwargs):
    if trainer.args.seed == 43:
        raise Diverged(f"the {{trainer.args.run_name}} run diverged (planted by the test)")
    return train(trainer, *args, **kwargs)

Trainer.train = seed_43_fails
sys.argv[0] = {script!r}
runpy.run_path({script!r}, run_name="__main__")
"""


@needs_torchrun
def test_a_process_that_fails_loses_none_of_the_seeds_the_others_finished(
    tiny_model_dir, tiny_data_dir, tmp_path
):
    script = tmp_path / "failing_seed.py"
    script.write_text(FAILING_SEED.format(root=str(ROOT), script=str(ROOT / "sst2_compare.py")))
    done = torchrun(
        *tiny_args(tiny_model_dir, tiny_data_dir, tmp_path / "out"),
        *FAST,
        *PROBE,
        "--num_seeds",
        "2",
        script=script,
    )
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: seed 43 failed in process 1: the head_only_seed43 run diverged (planted by the "
        "test)"
    ]
    results = json.loads((only_run_dir(tmp_path / "out") / "results.json").read_text())
    assert (
        results["complete"] is False
        and results["seeds"][0]["training"]["full_finetune"]["steps"] > 0
    )
    assert set(pd.read_csv(only_run_dir(tmp_path / "out") / "predictions.csv")["seed"]) == {42}
