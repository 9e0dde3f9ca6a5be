"""What a user reads after a run and finds in its folder: every number right on a task the tiny
model learns, every file whole, the console labelled, every second in a named stage."""

import json
import subprocess
import sys
from types import SimpleNamespace

import pandas as pd
import pytest

from config import Config
from conftest import HEAD_PARAMETERS, LEARNABLE, ROOT, only_run_dir, run_tiny, tiny_args
from sst2kit.names import EVAL_SPLITS, RUNS

# whole runs of the script: `pytest -m "not slow"` leaves them out; one xdist group, so that under
# `--dist loadgroup` one worker runs them all and learned_run is made once
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("learned_run")]


@pytest.fixture(scope="module")
def learned_run(tiny_model_dir, tiny_data_dir, tiny_external_test_file, tmp_path_factory):
    """The script as a user runs it, once for this module's tests: on a task the tiny model can
    learn, with an external test set, so every split gets every view and a wrong number shows."""
    out = tmp_path_factory.mktemp("learned") / "out"
    done = subprocess.run(
        [
            sys.executable,
            "sst2_compare.py",
            *tiny_args(tiny_model_dir, tiny_data_dir, out),
            *LEARNABLE,
            "--external_test_file",
            str(tiny_external_test_file),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = only_run_dir(out)
    return SimpleNamespace(
        stdout=done.stdout,
        stderr=done.stderr,
        run_dir=run_dir,
        results=json.loads((run_dir / "results.json").read_text(encoding="utf-8")),
        predictions=pd.read_csv(run_dir / "predictions.csv", keep_default_na=False),
        validation=pd.read_parquet(tiny_data_dir / "validation.parquet"),
        external=pd.read_csv(tiny_external_test_file),
    )


def test_the_full_finetune_learns_the_task_on_every_split(learned_run):
    """The label is one word: a full fine-tune that learned it scores near 1 everywhere (labels
    misaligned with predictions would score near 0.5)."""
    full = learned_run.results["seeds"][0]["metrics"]["full_finetune"]
    assert learned_run.results["sizes"] == {
        "train": 360,
        "test": 40,
        "validation": 60,
        "external_test": 50,
    }
    for split in EVAL_SPLITS:
        assert full[split]["accuracy"] >= 0.9, (split, full[split]["accuracy"])
        for run in RUNS:
            matrix = learned_run.results["seeds"][0]["metrics"][run][split]["confusion_matrix"]
            assert sum(map(sum, matrix)) == learned_run.results["sizes"][split]


def test_predictions_csv_gives_back_every_accuracy_in_results_json(learned_run):
    predictions, results = learned_run.predictions, learned_run.results
    assert predictions.groupby("split").size().to_dict() == {
        "test": 40,
        "validation": 60,
        "external_test": 50,
    }
    for run in RUNS:
        for split in EVAL_SPLITS:
            rows = predictions[predictions["split"] == split]
            accuracy = results["seeds"][0]["metrics"][run][split]["accuracy"]
            assert (rows[f"{run}_pred"] == rows["label"]).mean() == pytest.approx(accuracy)
    for split, frame in (
        ("validation", learned_run.validation),
        ("external_test", learned_run.external),
    ):
        rows = predictions[predictions["split"] == split]
        truth = dict(zip(frame["sentence"], frame["label"]))
        assert all(
            truth[sentence] == label for sentence, label in zip(rows["sentence"], rows["label"])
        )


def test_flips_csv_holds_exactly_the_discordant_pairs(learned_run):
    flipped = pd.read_csv(learned_run.run_dir / "flips.csv")
    for split in EVAL_SPLITS:
        broken, fixed = learned_run.results["seeds"][0]["versus"]["tests"][split]["discordant"]
        assert flipped[flipped["split"] == split]["change"].value_counts().to_dict() == {
            k: v for k, v in (("fixed", fixed), ("broken", broken)) if v
        }


def test_the_delta_is_the_full_finetune_minus_head_only(learned_run):
    results = learned_run.results
    for split in EVAL_SPLITS:
        assert results["seeds"][0]["versus"]["deltas"][split]["accuracy"] == pytest.approx(
            results["seeds"][0]["metrics"]["full_finetune"][split]["accuracy"]
            - results["seeds"][0]["metrics"]["head_only"][split]["accuracy"]
        )
        # it learned the word, head-only on random features did not
        assert results["seeds"][0]["versus"]["deltas"][split]["accuracy"] > 0
        assert (
            sum(b["items"] for b in results["seeds"][0]["accuracy_by_length"][split])
            == results["sizes"][split]
        )


def test_head_only_trains_the_head_alone(learned_run):
    assert (
        learned_run.results["seeds"][0]["training"]["head_only"]["trainable_parameters"]
        == HEAD_PARAMETERS
    )
    assert learned_run.results["newly_initialised_tensors"] == [
        "classifier.bias",
        "classifier.weight",
        "pre_classifier.bias",
        "pre_classifier.weight",
    ]


def test_the_resplit_test_set_is_resampled_over_source_sentence_units(learned_run):
    """The fixture cuts phrases from its sentences, so some test items share a source sentence: the
    test split's intervals must resample fewer units than items (one unit per item here would be too
    confident)."""
    results = learned_run.results
    units = results["independence"]["test"]["units"]
    assert results["seeds"][0]["versus"]["tests"]["test"]["resampled_unit"] == "units"
    assert (
        results["seeds"][0]["versus"]["tests"]["test"]["independent_units"]
        == units
        < results["sizes"]["test"]
    )
    assert (
        sum(part["items"] for part in results["seeds"][0]["by_kind"]["test"].values() if part) == 40
    )
    for split, frame in (
        ("validation", learned_run.validation),
        ("external_test", learned_run.external),
    ):
        # a repeat counted once
        assert results["seeds"][0]["versus"]["tests"][split]["resampled_unit"] == "sentences"
        assert (
            results["seeds"][0]["versus"]["tests"][split]["independent_units"]
            == frame["sentence"].nunique()
        )


def test_the_probe_reference_is_fitted_on_every_training_item(learned_run):
    first_seed = learned_run.results["seeds"][0]
    assert set(first_seed["probe"]) == {"full_over_probe", "over_head_only"}
    assert set(first_seed["metrics"]) == {"head_only", "full_finetune", "probe"}
    assert learned_run.results["probe_fit"]["train_items"] == 360


def test_the_answer_names_the_headline_split_and_opens_report_md(learned_run):
    """On the random tiny encoder the notebook's head learns nothing in one epoch (it answers one
    class, as at the start): the answer is withheld, says which run and why, and report.md carries
    the exact flags to change."""
    results, stdout = learned_run.results, learned_run.stdout
    assert results["headline"]["split"] == "external_test"
    assert results["seeds"][0]["training"]["head_only"]["health"]["status"] == "did not learn"
    assert results["headline"]["claim_withheld"] and not results["headline"]["difference_claimed"]
    answer = next(line for line in stdout.splitlines() if line.startswith("Answer:"))
    assert answer.startswith("Answer: none: the head-only run of seed 42 did not learn: it answers")
    report = (learned_run.run_dir / "report.md").read_text(encoding="utf-8").splitlines()
    assert report[0] == "# sst2-compare report" and report[2].startswith(answer)  # unwrapped there
    assert report[3].startswith(
        "Fix: the head-only run of seed 42: give it more or larger steps: "
        "--epochs_head_only 4 (4x) or --learning_rate_head_only 0.005 (10x)"
    )
    assert "## Words used here" in report and "## Classification reports" in report
    assert "![metrics](metrics.png)" in report


def test_the_console_is_labelled_and_readable(learned_run):
    stdout, stderr = learned_run.stdout, learned_run.stderr
    for banner in (
        "=== data ===",
        "=== head-only (seed 42)",
        "=== full fine-tune (seed 42)",
        "=== best linear probe (reference) ===",
        "=== metrics",
        "=== confusion matrices",
        "=== accuracy delta",
        "=== verdict ===",
        "total wall time",
    ):
        assert banner in stdout
    assert "head-only (frozen encoder) (seed 42) done: validation accuracy" in stdout
    assert "full fine-tune (seed 42) done: validation accuracy 1.0000" in stdout
    assert stdout.index("=== best linear probe") > stdout.index("full fine-tune (seed 42) done")
    # the progress bars
    assert "train head_only_seed42" in stderr and "train full_finetune_seed42" in stderr
    assert max(map(len, stdout.splitlines())) <= 200
    # the Trainer's dicts: in the log file
    assert "{'loss'" not in stdout and "'eval_loss'" not in stdout
    assert "LOAD REPORT" not in stdout + stderr and "with a new two-label head (4 tensors" in stdout
    logged = [
        json.loads(line)
        for line in (learned_run.run_dir / "trainer_log.jsonl").read_text().splitlines()
    ]
    assert {"head_only_seed42", "full_finetune_seed42"} == {entry["run"] for entry in logged}


def test_the_run_folder_holds_whole_files_and_one_model_per_run(learned_run):
    run_dir, results = learned_run.run_dir, learned_run.results
    assert (
        set(results["config"]) == set(Config().__dict__)
        and results["config"]["epochs_full_finetune"] == 5
    )
    assert [
        epoch
        for epoch, _ in results["seeds"][0]["training"]["full_finetune"]["history"]["eval_accuracy"]
    ] == [
        0,
        1,
        2,
        3,
        4,
        5,
    ]
    for png in (
        "metrics.png",
        "confusion_matrices.png",
        "training_curves.png",
        "accuracy_by_length.png",
    ):
        assert (run_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in run_dir.iterdir() if p.is_dir()) == [
        "full_finetune_seed42",
        "head_only_seed42",
    ]
    # no temporary or partial
    assert not list(run_dir.rglob("checkpoint-*")) and not list(run_dir.glob(".*"))


def test_one_seed_reads_the_weights_and_tokenizer_once(
    tiny_model_dir, tiny_data_dir, tmp_path, monkeypatch
):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    loads, original = [], {}

    def counted(cls, *args, **kwargs):
        loads.append(cls.__name__)
        return original[cls](cls, *args, **kwargs)

    for cls in (AutoModelForSequenceClassification, AutoTokenizer):
        original[cls] = cls.from_pretrained.__func__

    monkeypatch.setattr(AutoModelForSequenceClassification, "from_pretrained", classmethod(counted))
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", classmethod(counted))
    run_tiny(tiny_model_dir, tiny_data_dir, tmp_path / "out")
    assert len(loads) == 2  # the input checks' loads of model and tokenizer serve the whole run


def test_every_second_of_the_run_is_in_one_named_stage(learned_run):
    timings = learned_run.results["timings_seconds"]
    assert {
        "imports",
        "input checks",
        "data",
        "setup",
        "features",
        "seed42",
        "waiting for the probe",
        "statistics",
        "files",
        "report",
    } <= set(timings)
    # from the process's start, which loads torch and more
    assert 0.1 < timings["imports"] < timings["total"]
    stages = {
        stage: seconds
        for stage, seconds in timings.items()
        if stage not in ("total", "outside stages")
    }
    assert all(seconds >= 0 for seconds in stages.values())
    # the stages neither overlap nor leave gaps
    assert 0 <= timings["outside stages"] < 0.05 * timings["total"]
    assert sum(stages.values()) + timings["outside stages"] == pytest.approx(timings["total"])


def test_stages_cannot_overlap():
    from sst2kit.console import Stopwatch

    stopwatch = Stopwatch()
    with stopwatch("data"):
        with pytest.raises(RuntimeError, match="stage 'setup' started while 'data' runs"):
            stopwatch.start("setup")
    with stopwatch("setup"):
        pass
    assert set(stopwatch.seconds) == {"data", "setup"}
