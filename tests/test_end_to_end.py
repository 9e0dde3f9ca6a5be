"""The script as a user runs it: real files out, and none lost or half-written."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

import sst2_compare as app
from config import Config
from conftest import LEARNABLE, REAL_SST2, ROOT, tmpfs_at
from sst2kit.names import EVAL_SPLITS, RUNS

pytestmark = pytest.mark.slow  # whole runs of the script: `pytest -m "not slow"` leaves them out

FAST = [
    "--epochs_head_only",
    "1",
    "--epochs_full_finetune",
    "1",
    "--save_models",
    "false",
    "--bootstrap_resamples",
    "1000",
]
# the tiny DistilBERT's head: pre_classifier and classifier
HEAD_PARAMETERS = 16 * 16 + 16 + 16 * 2 + 2


def tiny_args(model_dir, data_dir, out):
    return ["--model_name", str(model_dir), "--data_dir", str(data_dir), "--output_dir", str(out)]


def only_run_dir(out):
    (run_dir,) = list(out.iterdir())
    return run_dir


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
    full = learned_run.results["runs"]["full_finetune"]
    assert learned_run.results["sizes"] == {
        "train": 360,
        "test": 40,
        "validation": 60,
        "external_test": 50,
    }
    for split in EVAL_SPLITS:
        assert full[split]["accuracy"] >= 0.9, (split, full[split]["accuracy"])
        for run in RUNS:
            matrix = learned_run.results["runs"][run][split]["confusion_matrix"]
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
            accuracy = results["runs"][run][split]["accuracy"]
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
        broken, fixed = learned_run.results["significance"][split]["discordant"]
        assert flipped[flipped["split"] == split]["change"].value_counts().to_dict() == {
            k: v for k, v in (("fixed", fixed), ("broken", broken)) if v
        }


def test_the_delta_is_the_full_finetune_minus_head_only(learned_run):
    results = learned_run.results
    for split in EVAL_SPLITS:
        assert results["deltas"][split]["accuracy"] == pytest.approx(
            results["runs"]["full_finetune"][split]["accuracy"]
            - results["runs"]["head_only"][split]["accuracy"]
        )
        # it learned the word, head-only on random features did not
        assert results["deltas"][split]["accuracy"] > 0
        assert (
            sum(b["items"] for b in results["accuracy_by_length"][split]) == results["sizes"][split]
        )


def test_head_only_trains_the_head_alone(learned_run):
    assert learned_run.results["runs"]["head_only"]["trainable_parameters"] == HEAD_PARAMETERS
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
    assert results["significance"]["test"]["resampled_unit"] == "units"
    assert results["significance"]["test"]["independent_units"] == units < results["sizes"]["test"]
    assert sum(part["items"] for part in results["by_kind"]["test"].values() if part) == 40
    for split, frame in (
        ("validation", learned_run.validation),
        ("external_test", learned_run.external),
    ):
        # a repeat counted once
        assert results["significance"][split]["resampled_unit"] == "sentences"
        assert results["significance"][split]["independent_units"] == frame["sentence"].nunique()


def test_the_probe_reference_is_fitted_on_every_training_item(learned_run):
    probe = learned_run.results["probe_reference"]
    assert set(probe) == {"runs", "delta", "significance", "versus_head_only", "fit"}
    assert probe["fit"]["train_items"] == 360


def test_the_answer_names_the_headline_split_and_opens_report_md(learned_run):
    """On the random tiny encoder the notebook's head learns nothing in one epoch (it answers one
    class, as at the start): the answer is withheld, says which run and why, and report.md carries
    the exact flags to change."""
    results, stdout = learned_run.results, learned_run.stdout
    assert results["headline"]["split"] == "external_test"
    assert results["status"]["head_only"]["status"] == "did not learn"
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
    assert [epoch for epoch, _ in results["runs"]["full_finetune"]["history"]["eval_accuracy"]] == [
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


def run_tiny(model_dir, data_dir, out, *extra):
    assert app.main(tiny_args(model_dir, data_dir, out) + FAST + list(extra)) == 0
    run_dir = only_run_dir(out)
    return run_dir, json.loads((run_dir / "results.json").read_text())


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


def test_several_seeds_answer_for_the_experiment_not_for_seed_42(
    tiny_model_dir, tiny_data_dir, tmp_path, capsys
):
    run_dir, results = run_tiny(
        tiny_model_dir, tiny_data_dir, tmp_path / "out", "--num_seeds", "3", *LEARNABLE[2:]
    )  # the full fine-tune learns; head-only does not
    out = capsys.readouterr().out
    assert results["complete"] is True and [s["seed"] for s in results["seeds"]] == [42, 43, 44]
    assert results["runs"] == results["seeds"][0]["runs"]
    deltas = [s["deltas"]["validation"]["accuracy"] for s in results["seeds"]]
    headline, across = (
        results["headline"],
        results["summary"]["deltas"]["validation"]["across_seeds"],
    )
    assert headline["seeds"] == 3 and headline["delta_accuracy"] == pytest.approx(np.mean(deltas))
    assert (
        headline["delta_accuracy_ci95"]
        == across["delta_accuracy_ci95"]
        != results["seeds"][0]["significance"]["validation"]["delta_accuracy_ci95"]
    )
    # the head-only run learns nothing on the random tiny encoder in any seed: every seed withheld,
    # no claim
    assert (
        headline["seeds_withheld"] == 3
        and headline["claim_withheld"]
        and not headline["difference_claimed"]
    )
    answer = next(line for line in out.splitlines() if line.startswith("Answer:"))
    assert answer.startswith("Answer: none: the head-only run of seed 42 did not learn")
    assert "the head-only run of seed 44 did not learn" in results["headline"]["claim_withheld"]
    assert "over seeds (mean ± SD across seeds" in out
    assert (
        "external_test" not in results["sizes"]
        and "external_test" not in results["summary"]["deltas"]
    )
    predictions = pd.read_csv(run_dir / "predictions.csv")
    per_seed = results["sizes"]["test"] + results["sizes"]["validation"]
    assert predictions.groupby("seed").size().to_dict() == {
        42: per_seed,
        43: per_seed,
        44: per_seed,
    }
    assert not [p for p in run_dir.iterdir() if p.is_dir()]  # --save_models false: no model folders


def test_a_learning_rate_far_too_high_claims_nothing_and_names_the_divergence(
    tiny_model_dir, tiny_data_dir, tmp_path, capsys
):
    """A learning rate of 10: the loss goes up by orders of magnitude and comes back down without
    ever being NaN, and the model answers near chance. No claim, and the answer says why and what to
    lower."""
    _, results = run_tiny(
        tiny_model_dir, tiny_data_dir, tmp_path / "out", "--learning_rate_full_finetune", "10"
    )
    out = capsys.readouterr().out
    assert results["status"]["full_finetune"]["status"] in ("unstable", "diverged")
    assert "spiked to" in results["status"]["full_finetune"]["why"]  # the blow-up named
    assert (
        results["headline"]["difference_claimed"] is False and results["headline"]["claim_withheld"]
    )
    assert not any(entry["difference_claimed"] for entry in results["significance"].values())
    assert "the full fine-tune run of seed 42 " in out and "spiked to" in out
    assert (
        "Fix: the full fine-tune run of seed 42: lower its learning rate: "
        "--learning_rate_full_finetune 1 (a tenth of 10)" in out
    )


@pytest.mark.slow
@pytest.mark.skipif(
    REAL_SST2 is None, reason="needs the real SST-2 in data/sst2 (or SST2_DATA_DIR)"
)
def test_a_learning_rate_far_too_high_on_real_sst2_names_the_blow_up(
    tiny_model_dir, tmp_path, capsys
):
    """The reported miss: learning rate 10 on a 1,500-row slice of SST-2 sent the loss 0.69 ->
    14,007 -> 0.82 with every answer 'positive', and the run was called ok."""
    data = tmp_path / "sst2_slice"
    data.mkdir()
    pd.read_parquet(REAL_SST2 / "train.parquet").head(1500).to_parquet(data / "train.parquet")
    pd.read_parquet(REAL_SST2 / "validation.parquet").head(200).to_parquet(
        data / "validation.parquet"
    )
    _, results = run_tiny(
        tiny_model_dir, data, tmp_path / "out", "--learning_rate_full_finetune", "10"
    )
    status = results["status"]["full_finetune"]
    assert status["status"] != "ok" and "spiked to" in status["why"]
    assert "--learning_rate_full_finetune 1 (a tenth of 10)" in status["advice"]
    assert results["headline"]["claim_withheld"] and "spiked to" in capsys.readouterr().out


def test_notebook_mode_trains_the_head_only_on_the_running_encoder(
    tiny_model_dir, tiny_data_dir, tmp_path, capsys
):
    """The encoder runs at every head-only step and stays exactly as loaded; the head alone
    moves."""
    from transformers import AutoModel, AutoModelForSequenceClassification

    run_dir, results = run_tiny(
        tiny_model_dir,
        tiny_data_dir,
        tmp_path / "out",
        "--cache_encoder_features",
        "false",
        "--save_models",
        "true",
    )
    assert results["timings_seconds"]["features"] < 0.01  # the stage is there, with nothing in it
    assert "frozen-encoder features computed once" not in capsys.readouterr().out
    assert results["runs"]["head_only"]["trainable_parameters"] == HEAD_PARAMETERS
    pretrained = AutoModel.from_pretrained(tiny_model_dir).state_dict()
    head_only = AutoModelForSequenceClassification.from_pretrained(run_dir / "head_only_seed42")
    assert all(
        torch.equal(pretrained[name], tensor)
        for name, tensor in head_only.distilbert.state_dict().items()
    )


def test_grouped_split_leaves_no_leakage(tiny_model_dir, tiny_data_dir, tmp_path):
    _, results = run_tiny(tiny_model_dir, tiny_data_dir, tmp_path / "out", "--split", "grouped")
    assert results["leakage"]["test_items_inside_train_fraction"] == 0
    assert results["config"]["split"] == "grouped"


@pytest.mark.parametrize("cached_features", ["true", "false"])
def test_full_finetune_starts_from_the_trained_head_only_model(
    tiny_model_dir, tiny_data_dir, tmp_path, cached_features
):
    """Validation loss at the full fine-tune's start is the head-only run's final one; from a fresh
    pretrained model (same seed, so the same new head) it is the head-only run's starting one."""

    def eval_losses(init):
        _, results = run_tiny(
            tiny_model_dir,
            tiny_data_dir,
            tmp_path / init,
            "--full_finetune_init",
            init,
            "--cache_encoder_features",
            cached_features,
            "--learning_rate_head_only",
            "0.5",
        )
        return [[loss for _, loss in results["runs"][run]["history"]["eval_loss"]] for run in RUNS]

    head, full = eval_losses("head_only")
    moved = abs(head[-1] - head[0])
    # the head-only run moved the loss (by ~0.002 on cached features), so the two starting
    assert moved > 0.001
    # points are told apart: each is matched to 1% of that
    assert full[0] == pytest.approx(head[-1], abs=moved / 100)
    head, full = eval_losses("pretrained")
    assert full[0] == pytest.approx(head[0], abs=moved / 100)


def test_a_failed_probe_fit_loses_none_of_the_trained_runs(
    tiny_model_dir, tiny_data_dir, tmp_path, monkeypatch, capsys
):
    from sst2kit import probe

    def out_of_memory(features, seed):
        raise MemoryError("cannot allocate 30 MiB")

    monkeypatch.setattr(probe, "best_linear_probe", out_of_memory)
    _, results = run_tiny(tiny_model_dir, tiny_data_dir, tmp_path / "out")
    assert (
        "no linear probe reference: its fit failed (MemoryError: cannot allocate 30 MiB)"
        in capsys.readouterr().out
    )
    assert results["complete"] and "probe_reference" not in results
    # decided alone, as with the probe
    assert results["significance"]["validation"]["family"] == "primary"
    # the other split and the test set's 2 parts
    assert results["significance"]["test"]["family_size"] == 3


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


def test_terminated_run_keeps_the_seeds_it_finished(tiny_model_dir, tiny_data_dir, tmp_path):
    """SIGTERM during the second seed: the first seed's results are on disk, readable, and marked
    incomplete."""
    code, stderr, run_dir = stop_run(
        tiny_model_dir,
        tiny_data_dir,
        tmp_path / "out",
        "=== head-only (seed 43)",
        signal.SIGTERM,
        "--num_seeds",
        "2",
        *FAST,
    )
    assert code == 143 and "terminated" in stderr
    results = json.loads((run_dir / "results.json").read_text())
    assert results["complete"] is False and results["runs"]["full_finetune"]["steps"] > 0
    assert set(pd.read_csv(run_dir / "predictions.csv")["seed"]) == {42}
    assert not list(run_dir.glob(".*.tmp"))


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not installed")
def test_two_processes_write_one_set_of_outputs(tiny_model_dir, tiny_data_dir, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(
        [
            "torchrun",
            "--standalone",
            "--nproc_per_node",
            "2",
            "sst2_compare.py",
            *tiny_args(tiny_model_dir, tiny_data_dir, out),
            *FAST,
            "--dataloader_num_workers",
            "0",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
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
        assert sum(map(sum, results["runs"][run]["test"]["confusion_matrix"])) == 40


def test_a_diverged_run_is_reported_as_such_not_as_a_finding(
    tiny_model_dir, tiny_data_dir, tmp_path, capsys
):
    out = tmp_path / "out"
    assert (
        app.main(
            tiny_args(tiny_model_dir, tiny_data_dir, out)
            + FAST
            + ["--learning_rate_full_finetune", "1e30", "--weight_decay", "0"]
        )
        == 2
    )
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert last_line.startswith(
        "error: the full fine-tune run diverged: its training loss was nan by step"
    )
    assert (
        "lower its learning rate (--learning_rate_full_finetune 1e+29, a tenth of 1e+30) or the "
        "weight decay (0;" in last_line
    )
    assert not (only_run_dir(out) / "results.json").exists()  # no verdict drawn from it


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
    assert (
        last_line
        == f"error: no space left on {run_dir}: free some space; the files already there are whole"
    )
    # written before the figures filled the disk
    results = json.loads((run_dir / "results.json").read_text())
    assert results["complete"] is True
    assert not list(run_dir.glob(".*.tmp"))


def test_a_decoder_model_without_a_pad_token_runs(tiny_data_dir, tmp_path, capsys):
    """GPT-2-style: no pad token (the end-of-text token pads), and a last-token head, which cached
    first-token features cannot feed: the head-only run falls back to running the encoder at every
    step."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    from conftest import FILLER, NEGATIVE, POSITIVE

    vocab = {word: i for i, word in enumerate(["<unk>", "<eos>"] + FILLER + POSITIVE + NEGATIVE)}
    word_level = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    folder = tmp_path / "tiny-gpt2"
    PreTrainedTokenizerFast(
        tokenizer_object=word_level, unk_token="<unk>", eos_token="<eos>"
    ).save_pretrained(folder)
    GPT2Model(
        GPT2Config(
            vocab_size=len(vocab),
            n_embd=16,
            n_layer=1,
            n_head=2,
            n_positions=128,
            bos_token_id=1,
            eos_token_id=1,
        )
    ).save_pretrained(folder)
    _, results = run_tiny(folder, tiny_data_dir, tmp_path / "out")
    assert "head reads more than the first token" in capsys.readouterr().out
    assert results["complete"] and results["runs"]["full_finetune"]["steps"] > 0


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not installed")
def test_under_two_processes_a_bad_input_is_said_once_and_each_process_exits_2(
    tiny_model_dir, tmp_path
):
    done = subprocess.run(
        [
            "torchrun",
            "--standalone",
            "--nproc_per_node",
            "2",
            "sst2_compare.py",
            *tiny_args(tiny_model_dir, tmp_path / "nothing", tmp_path / "out"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: data_dir {tmp_path / 'nothing'} is not a folder: point --data_dir at a folder "
        "with train and validation files"
    ]
    assert "exitcode  : 2" in done.stderr  # torchrun's own report of each process
    assert not (tmp_path / "out").exists()


needs_torchrun = pytest.mark.skipif(
    shutil.which("torchrun") is None, reason="torchrun is not installed"
)


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
    done = subprocess.run(
        [
            "torchrun",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(launcher),
            *FAST,
            *tiny_args(tiny_model_dir, tiny_data_dir, tmp_path / "out"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
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
def test_seeds_spread_over_two_processes_give_each_seed_exactly_what_one_process_gives(
    tiny_model_dir, tiny_data_dir, tmp_path
):
    """Three seeds over two processes (42 and 44 in one, 43 in the other), against one process: the
    same metrics and the same P(positive) for every item, to the last digit (one thread per process
    in both)."""
    args = [*tiny_args(tiny_model_dir, tiny_data_dir, tmp_path / "one"), *FAST, "--num_seeds", "3"]
    single = subprocess.run(
        [sys.executable, "sst2_compare.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert single.returncode == 0, single.stderr[-2000:]
    args[args.index(str(tmp_path / "one"))] = str(tmp_path / "two")
    spread = subprocess.run(
        [
            "torchrun",
            "--standalone",
            "--nproc_per_node",
            "2",
            "sst2_compare.py",
            *args,
            "--parallel",
            "seeds",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert spread.returncode == 0, spread.stderr[-3000:]
    assert spread.stdout.count("=== verdict ===") == 1
    one, two = (
        json.loads((only_run_dir(tmp_path / name) / "results.json").read_text())
        for name in ("one", "two")
    )
    assert (
        two["speed"]["parallel"] == "seeds"
        and two["complete"]
        and [s["seed"] for s in two["seeds"]] == [42, 43, 44]
    )
    for a, b in zip(one["seeds"], two["seeds"]):
        for run in RUNS:
            for split in ("validation", "test"):
                assert a["runs"][run][split]["accuracy"] == b["runs"][run][split]["accuracy"]
    keys = ["seed", "split", "idx"]
    first, second = (
        pd.read_csv(only_run_dir(tmp_path / name) / "predictions.csv")
        .sort_values(keys)
        .reset_index(drop=True)
        for name in ("one", "two")
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
    done = subprocess.run(
        [
            "torchrun",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            *tiny_args(tiny_model_dir, tiny_data_dir, tmp_path / "out"),
            *FAST,
            "--num_seeds",
            "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: seed 43 failed in process 1: the head_only_seed43 run diverged (planted by the "
        "test)"
    ]
    results = json.loads((only_run_dir(tmp_path / "out") / "results.json").read_text())
    assert results["complete"] is False and results["runs"]["full_finetune"]["steps"] > 0
    assert set(pd.read_csv(only_run_dir(tmp_path / "out") / "predictions.csv")["seed"]) == {42}
