"""The learning curve (--train_sizes): its sizes checked before anything loads, subsets nested and
drawn per seed, the evaluation sets whole at every size, the sizes one Holm family, and on a task a
tiny model learns from one word, the curve it should draw."""

import re

import numpy as np
import pytest

import sst2_compare as app
from config import Config
from conftest import FAST, PROBE, tiny_args
from sst2kit import checks
from sst2kit.curve import (
    CurvePlan,
    CurvePoint,
    decide_over_sizes,
    epochs_for,
    parse_train_sizes,
    resolve_sizes,
    verdict,
)
from sst2kit.errors import UsageError
from sst2kit.significance import across_seeds

# the full fine-tune reaches 100% on the tiny task at the whole training set (360 items, 12 steps an
# epoch at batch 32: 60 steps); the small sizes are raised to the same 60 steps
CURVE = [
    *FAST,
    *("--epochs_full_finetune", "5", "--learning_rate_full_finetune", "1e-2"),
    *("--min_steps_full_finetune", "60", "--min_steps_head_only", "0"),
]


@pytest.mark.parametrize(
    "sizes, message",
    [
        ("0,100", "a size of 0 trains on nothing"),
        ("100,100", "100 is given twice"),
        ("100,lots", "'lots' is not a size"),
        ("0.5", "0.5 is ambiguous: write a share as a percentage (50%)"),
        ("150%", "150% is not a share of the training set"),
        ("100,", "'' is not a size"),
    ],
)
def test_a_size_that_is_not_one_is_refused_before_anything_loads(sizes, message, tmp_path, capsys):
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_train_sizes(sizes)
    argv = tiny_args(tmp_path / "no-model", tmp_path / "no-data", tmp_path / "out")
    assert app.main([*argv, "--train_sizes", sizes]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1 and message in errors[0]  # before the missing model or data is noticed
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "sizes, message",
    [
        ("all,100%", "all and 100% are the same size (360 of 360 examples)"),
        ("36,10%", "36 and 10% are the same size"),
        ("100,361", "361 is more than the 360 examples of the re-split training set"),
    ],
)
def test_sizes_that_do_not_fit_the_training_set_are_one_line_before_training(
    sizes, message, tiny_model_dir, tiny_data_dir, tmp_path, capsys
):
    argv = tiny_args(tiny_model_dir, tiny_data_dir, tmp_path / "out")
    assert app.main([*argv, *FAST, "--train_sizes", sizes]) == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: train_sizes: {message}" + err.split(message, 1)[1].splitlines()[0]
    ]
    assert "Traceback" not in err and not list((tmp_path / "out").glob("run-*"))


def test_a_curve_beside_a_subset_fraction_is_refused():
    with pytest.raises(UsageError, match="leave subset_fraction unset"):
        checks.check_config(Config(train_sizes="100,all", subset_fraction=0.1))
    checks.check_config(Config(train_sizes="100, 10%,ALL"))


def test_sizes_resolve_to_counts_smallest_first():
    assert resolve_sizes(parse_train_sizes("all,10%,25"), 1000) == [25, 100, 1000]
    assert resolve_sizes(parse_train_sizes("0.04%"), 1000) == [1]  # never an empty subset


def test_subsets_are_nested_differ_between_seeds_and_index_the_pool_right():
    labels = np.arange(5000) % 2
    plan = CurvePlan(
        [50, 500, 2000], labels, seeds=[42, 43], epochs=dict.fromkeys([50, 500, 2000]), batch=32
    )
    for seed in (42, 43):
        small, middle, large = (set(plan.subset(size, seed)) for size in plan.counts)
        assert small < middle < large and len(small) == 50 and len(large) == 2000
    assert set(plan.subset(500, 42)) != set(plan.subset(500, 43))
    # only the rows some seed's largest subset uses are kept, and each cell finds its own in them
    assert set(plan.pool) == set(plan.subset(2000, 42)) | set(plan.subset(2000, 43))
    for cell in plan.cells():
        assert list(plan.pool[cell.rows]) == list(plan.subset(cell.size, cell.seed))
    # the largest first, so that under torchrun the longest work is dealt first
    assert [(c.size, c.seed) for c in plan.cells()][:2] == [(2000, 42), (2000, 43)]
    assert [c.first for c in plan.cells()].count(True) == 1 and plan.cells()[0].first


def test_a_small_size_trains_for_enough_steps_and_a_large_one_as_configured():
    assert epochs_for(500, configured=2, min_steps=150, batch=32) == 10  # 16 steps an epoch
    assert epochs_for(60_000, configured=2, min_steps=150, batch=32) == 2
    assert epochs_for(10, configured=2, min_steps=0, batch=32) == 2


def point(size, delta, ci, p, withheld=None):
    return CurvePoint(
        size=size,
        positive_share=[0.5],
        epochs={},
        steps={},
        seeds=3,
        accuracy={},
        delta_accuracy=delta,
        delta_accuracy_ci95=ci,
        p_value=p,
        p_value_holm_over_sizes=None,
        status="withheld" if withheld else "not established",
        withheld=withheld,
    )


def test_the_verdict_names_the_size_from_which_the_full_fine_tune_is_ahead():
    rising = decide_over_sizes(
        [
            point(500, 0.012, [-0.01, 0.034], 0.3),
            point(2000, 0.061, [0.04, 0.08], 1e-6),
            point(8000, 0.08, [0.06, 0.1], 1e-9),
        ]
    )
    assert [p.status for p in rising] == ["not established", "ahead", "ahead"]
    assert verdict(rising).startswith(
        "full fine-tune ahead from 2,000 examples on (+6.1 points (95% CI +4.0 to +8.0)); "
        "below that not established: at 500: +1.2 points (95% CI -1.0 to +3.4)"
    )
    assert verdict(rising[1:]).startswith("full fine-tune ahead at every size from 2,000 to 8,000")
    never = decide_over_sizes([point(500, 0.01, [-0.02, 0.04], 0.5), point(2000, 0.0, [-1, 1], 1)])
    assert verdict(never).startswith("full fine-tune not established ahead at any size")
    broken = decide_over_sizes([point(500, 0.3, [0.2, 0.4], 1e-9, withheld="a run broke")])
    assert broken[0].status == "withheld" and verdict(broken).startswith("no answer at any size")


def test_a_size_is_claimed_only_after_holm_over_the_sizes():
    # p = 0.03 at each of two sizes: each alone would be claimed, the family of two is not
    points = decide_over_sizes(
        [point(500, 0.05, [0.01, 0.09], 0.03), point(900, 0.05, [0.01, 0.09], 0.03)]
    )
    assert [p.p_value_holm_over_sizes for p in points] == [0.06, 0.06]
    assert [p.status for p in points] == ["not established", "not established"]


def null_curve_claims(rng, *, sizes, seeds, items, decide):
    """One simulated 5-size curve where the two arms are equal at every size, but each seed moves
    each arm's accuracy by a large seed-to-seed spread: whether any size claims a difference."""
    points = []
    for size in range(sizes):
        shift = rng.normal(0, 0.05, size=(2, seeds, 1))  # each arm, each seed
        right = rng.random((2, seeds, items)) < 0.8 + shift
        diffs = right[0].astype(float) - right[1]
        test = across_seeds(diffs, np.arange(items))
        points.append(point(size + 1, test.delta_accuracy, test.delta_accuracy_ci95, test.p_value))
    return any(p.status != "not established" for p in decide(points))


def test_a_five_size_curve_claims_a_false_difference_no_more_often_than_one_run():
    """With equal arms at every size, 3 seeds and a large seed-to-seed spread, the curve claims some
    difference at most ~5% of the time; each size tested alone at 0.05 does it ~5 times as often."""

    def uncorrected(points):
        for p in points:
            low, high = p.delta_accuracy_ci95
            if p.p_value < 0.05 and (low > 0 or high < 0):
                p.status = "ahead" if low > 0 else "behind"
        return points

    rng = np.random.default_rng(0)
    runs = 400
    corrected = np.mean(
        [
            null_curve_claims(rng, sizes=5, seeds=3, items=200, decide=decide_over_sizes)
            for _ in range(runs)
        ]
    )
    alone = np.mean(
        [
            null_curve_claims(rng, sizes=5, seeds=3, items=200, decide=uncorrected)
            for _ in range(runs)
        ]
    )
    assert corrected <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / runs)  # within Monte-Carlo error of 5%
    assert alone > 0.09  # about 0.12 here: the family needs its correction


def test_every_size_is_scored_on_the_whole_evaluation_sets(
    tiny_model_dir, tiny_data_dir, tmp_path, monkeypatch
):
    seen, cell_data = [], app.cell_data

    def recorded(cell, features, batches):
        features, batches = cell_data(cell, features, batches)
        seen.append((cell.size, {name: len(split) for name, split in batches.items()}))
        return features, batches

    monkeypatch.setattr(app, "cell_data", recorded)
    argv = tiny_args(tiny_model_dir, tiny_data_dir, tmp_path / "out")
    assert app.main([*argv, *CURVE, "--train_sizes", "20,100,all"]) == 0
    assert [size for size, _ in seen] == [360, 100, 20]
    for size, lengths in seen:
        assert lengths == {"train": size, "validation": 60, "test": 40}


@pytest.fixture(scope="module")
def tiny_curves(tiny_model_dir, tiny_data_dir, tmp_path_factory):
    """The tiny task's curve at 12, 24 and all 360 examples, the same at 24 alone, and today's
    single run, each with the probe: their results.json (its run folder under "folder")."""
    import json

    out = tmp_path_factory.mktemp("curves")
    records = {}
    for name, extra in {
        "curve": ["--train_sizes", "12,24,all"],
        "twenty-four": ["--train_sizes", "24"],
        "single": [],
    }.items():
        argv = [*tiny_args(tiny_model_dir, tiny_data_dir, out / name), *CURVE, *PROBE, *extra]
        assert app.main(argv) == 0
        (run_dir,) = (out / name).iterdir()
        records[name] = json.loads((run_dir / "results.json").read_text())
        records[name]["folder"] = run_dir
        records[name]["log"] = [
            json.loads(line) for line in (run_dir / "trainer_log.jsonl").read_text().splitlines()
        ]
    return records


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_curves")  # the three runs made once, on one worker
def test_the_tiny_task_draws_the_curve_it_should(tiny_curves):
    """The label is one word: a dozen examples miss many of the sentiment words, two dozen few, all
    360 none: the full fine-tune climbs to 100%, each size one point of the curve, in order."""
    points = tiny_curves["curve"]["curve"]["points"]
    assert [p["size"] for p in points] == [12, 24, 360]
    full = [p["accuracy"]["full_finetune"]["mean"] for p in points]
    assert full[0] < full[1] < full[2] == 1.0 and full[0] < 0.8
    assert [p["steps"]["full_finetune"] for p in points] == [60, 60, 60]  # 60 epochs of one step
    # 60 epochs are scored every 6th: the start and 9 more, not 60 validation passes
    scored = [
        line["epoch"]
        for line in tiny_curves["curve"]["log"]
        if line["run"] == "full_finetune_n12_seed42" and "eval_accuracy" in line
    ]
    assert scored == [0, 6, 12, 18, 24, 30, 36, 42, 48, 54]
    assert tiny_curves["curve"]["complete"] and tiny_curves["curve"]["curve"]["verdict"]


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_curves")
def test_the_full_size_equals_the_single_run_and_a_size_equals_its_one_size_curve(tiny_curves):
    curve, single = tiny_curves["curve"], tiny_curves["single"]
    assert curve["seeds"][0]["metrics"] == single["seeds"][0]["metrics"]
    at_24 = tiny_curves["twenty-four"]["curve"]["points"][0]
    assert at_24["accuracy"] == curve["curve"]["points"][1]["accuracy"]
    assert at_24["delta_accuracy"] == curve["curve"]["points"][1]["delta_accuracy"]


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_curves")
def test_a_curve_over_two_processes_equals_one_process(
    tiny_curves, tiny_model_dir, tiny_data_dir, tmp_path
):
    """Its three sizes dealt over two processes, largest first (one seed: several cells are enough
    for the processes to take whole cells), against one process: every point the same, to the last
    digit (one thread per process in both)."""
    import json

    from conftest import only_run_dir, torchrun

    out = tmp_path / "two"
    spread = torchrun(
        *tiny_args(tiny_model_dir, tiny_data_dir, out), *CURVE, *PROBE, "--train_sizes", "12,24,all"
    )
    assert spread.returncode == 0, spread.stderr[-3000:]
    one, two = tiny_curves["curve"], json.loads((only_run_dir(out) / "results.json").read_text())
    assert two["speed"]["parallel"] == "seeds" and two["complete"]
    assert one["curve"]["points"] == two["curve"]["points"]
    assert one["curve"]["verdict"] == two["curve"]["verdict"]


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_curves")
def test_a_curve_stopped_between_cells_and_resumed_equals_an_uninterrupted_one(
    tiny_curves, tiny_model_dir, tiny_data_dir, tmp_path, capsys
):
    """Stopped by SIGTERM once the 360 and 24 cells are written (the 24 one's probe fitted on its
    subset), the curve resumed from its folder alone trains only the 12 cell, and its files equal
    the uninterrupted curve's, the probe at every size included."""
    import json

    import pandas as pd
    from test_no_work_lost import stop_run
    from test_resume_and_trackers import without_times

    argv = [*CURVE, *PROBE, "--train_sizes", "12,24,all"]
    marker = "=== head-only (seed 42 at 12)"
    code, _, run_dir = stop_run(tiny_model_dir, tiny_data_dir, tmp_path / "out", marker, 15, *argv)
    assert code == 128 + 15
    stopped = json.loads((run_dir / "results.json").read_text())
    assert not stopped["complete"] and stopped["curve"]["cells_done"] == 2
    assert "Partial: 2 of 3 cells" in (run_dir / "report.md").read_text()
    refused_when_damaged(run_dir, tmp_path / "damaged", capsys)
    capsys.readouterr()
    assert app.main(["--resume", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "cell(s) seed 42 at 360, seed 42 at 24 kept as recorded" in out
    assert "=== head-only (seed 42 at 12)" in out and "=== head-only (seed 42 at 24)" not in out
    resumed = json.loads((run_dir / "results.json").read_text())
    assert resumed["curve"]["resumed_cells"] == [[360, 42], [24, 42]]
    uninterrupted = {key: value for key, value in tiny_curves["curve"].items() if key != "log"}
    ignore = ("folder", "resumed_cells")
    assert without_times(drop(resumed, ignore)) == without_times(drop(uninterrupted, ignore))
    assert all("probe" in point["accuracy"] for point in resumed["curve"]["points"])
    for file in ("predictions.csv", "curve_predictions.csv"):
        expected = pd.read_csv(tiny_curves["curve"]["folder"] / file)
        assert pd.read_csv(run_dir / file).equals(expected)


def refused_when_damaged(run_dir, copy, capsys):
    """A copy of the stopped curve with its smaller sizes' predictions cut short, or a size edited
    into its results.json: one line each, exit status 2."""
    import json
    import shutil

    shutil.copytree(run_dir, copy)
    rows = (copy / "curve_predictions.csv").read_bytes()
    (copy / "curve_predictions.csv").write_bytes(rows[:-5])
    capsys.readouterr()
    assert app.main(["--resume", str(copy)]) == 2
    assert "its curve_predictions.csv ends inside a row" in capsys.readouterr().err
    (copy / "curve_predictions.csv").write_bytes(rows)
    record = json.loads((copy / "results.json").read_text())
    record["curve"]["seeds_by_size"]["25"] = record["curve"]["seeds_by_size"].pop("24")
    (copy / "results.json").write_text(json.dumps(record))
    assert app.main(["--resume", str(copy)]) == 2
    assert "seeds at a size ('25') that is not one of its sizes" in capsys.readouterr().err


def drop(record, keys):
    """record (results.json) less keys, at any depth."""
    if isinstance(record, dict):
        return {key: drop(value, keys) for key, value in record.items() if key not in keys}
    if isinstance(record, list):
        return [drop(value, keys) for value in record]
    return record


def test_a_curve_with_more_seeds_is_the_same_data_for_resume(tiny_model_dir, tiny_data_dir):
    """More seeds draw more training rows into a curve's pool (only those are tokenized), but the
    data is the same: its fingerprint, which --resume compares, must not change with the pool."""
    from types import SimpleNamespace

    from sst2kit.models import load_tokenizer

    setup = SimpleNamespace(data_parallel_processes=1, cuda_graphs=False)
    data = {}
    for seeds in (1, 3):
        cfg = Config(
            model_name=str(tiny_model_dir),
            data_dir=str(tiny_data_dir),
            train_sizes="12,24",
            num_seeds=seeds,
        )
        data[seeds] = app.load_data(cfg, load_tokenizer(cfg), setup)
    assert len(data[1].frames["train"]) < len(data[3].frames["train"])  # the pools differ
    assert data[1].fingerprint == data[3].fingerprint
