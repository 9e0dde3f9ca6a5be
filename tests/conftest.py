"""Tiny, offline stand-ins: a random DistilBERT and BERT of a few thousand weights, and SST-2-shaped
data."""

import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["HF_HUB_OFFLINE"] = "1"  # nothing in the tests may reach for the hub
# Tiny models on 2 cores: one thread per op. Under load, several threads made a tiny step 1.4 s
# instead of 0.01 s.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")  # and the same in the subprocesses the tests start

# The label is decided by one word, so the tiny model can learn it in seconds: these settings take
# the full fine-tune to 100% validation accuracy, so a wrong number (labels misaligned with
# predictions) cannot pass.
LEARNABLE = (
    "--epochs_head_only 1 --epochs_full_finetune 5 --learning_rate_full_finetune 3e-2".split()
)


def real_sst2():
    """The real SST-2 files, where a machine has them: $SST2_DATA_DIR, else the README's data/sst2,
    else the project's shared folder beside its checkout (our own machines)."""
    for folder in (
        os.environ.get("SST2_DATA_DIR"),
        ROOT / "data" / "sst2",
        ROOT.parent / "shared" / "data" / "sst2",
    ):
        if folder and (Path(folder) / "train.parquet").is_file():
            return Path(folder)
    return None


REAL_SST2 = real_sst2()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", 'slow: a whole run or a long simulation; `pytest -m "not slow"` skips it'
    )


POSITIVE, NEGATIVE = ["good", "great", "lovely", "fine"], ["bad", "awful", "dull", "boring"]
FILLER = ["the", "film", "movie", "was", "is", "a", "very", "plot", "cast", "and"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + FILLER + POSITIVE + NEGATIVE


def sst2_like(n, seed):
    """Sentences whose label is the sentiment word they contain, plus phrases cut from them, as in
    SST-2."""
    rng = np.random.default_rng(seed)
    rows = []
    while len(rows) < n:
        label = int(rng.integers(2))
        words = list(rng.choice(FILLER, size=rng.integers(3, 8)))
        words.insert(int(rng.integers(len(words) + 1)), rng.choice(POSITIVE if label else NEGATIVE))
        rows.append((" ".join(words), label))
        # a phrase of the sentence that keeps the sentiment word
        start = int(rng.integers(len(words) // 2))
        phrase = words[start:]
        if len(phrase) < len(words) and any(w in POSITIVE + NEGATIVE for w in phrase):
            rows.append((" ".join(phrase), label))
    return pd.DataFrame(rows[:n], columns=["sentence", "label"])


def save_tiny_model(folder, architecture):
    """A pretrained-style checkpoint: the encoder alone, so loading it for classification makes a
    new head."""
    from transformers import (
        BertConfig,
        BertModel,
        DistilBertConfig,
        DistilBertModel,
        DistilBertTokenizer,
    )

    torch.manual_seed(0)  # the same tiny model in every session
    if architecture == "distilbert":
        config = DistilBertConfig(
            vocab_size=len(VOCAB),
            dim=16,
            n_layers=1,
            n_heads=2,
            hidden_dim=32,
            max_position_embeddings=128,
        )
        model = DistilBertModel(config)
    else:
        config = BertConfig(
            vocab_size=len(VOCAB),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=128,
        )
        model = BertModel(config)
    model.save_pretrained(folder)
    DistilBertTokenizer(vocab={w: i for i, w in enumerate(VOCAB)}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny-distilbert"), "distilbert")


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny-bert"), "bert")


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-sst2")
    sst2_like(400, seed=0).to_parquet(folder / "train.parquet")
    sst2_like(60, seed=1).to_parquet(folder / "validation.parquet")
    return folder


@pytest.fixture(scope="session")
def tiny_external_test_file(tmp_path_factory):
    """Labelled sentences from outside train and validation, as a user's CSV (the external test
    set)."""
    path = tmp_path_factory.mktemp("external") / "sst2_test_labelled.csv"
    sst2_like(50, seed=7).to_csv(path, index=False)
    return path


@contextmanager
def tmpfs_at(folder, options):
    """A small tmpfs mounted at folder for the test (a full disk, a read-only one); skips where
    mounting fails."""
    folder.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def eval_split(name, labels, units=None, parts=None, unit_name="sentences"):
    """A real EvalSplit of n items (sentences s0, s1, ...), each its own unit unless units are
    given."""
    from sst2kit.evaluation import EvalSplit

    labels = np.asarray(labels)
    frame = pd.DataFrame(
        {
            "idx": range(len(labels)),
            "sentence": [f"s{i}" for i in range(len(labels))],
            "label": labels,
        }
    )
    return EvalSplit(
        name=name,
        frame=frame,
        units=np.arange(len(labels)) if units is None else np.asarray(units),
        unit_name=unit_name,
        lengths=np.full(len(labels), 12),
        leakage=0.0,
        parts=parts or {},
    )


def answers(labels, right):
    """P(positive) of a model that is right exactly where `right` is true."""
    labels, right = np.asarray(labels), np.asarray(right, bool)
    return np.where(right, labels, 1 - labels) * 0.8 + 0.1


def paired_test(**fields):
    """A decided PairedTest as the verdict reads it: plain values, the fields given overriding."""
    from sst2kit.significance import PairedTest

    plain = dict(
        delta_accuracy_ci95=[0.0, 0.0],
        p_value=1.0,
        paired_test="exact McNemar",
        resampled_unit="sentences",
        independent_units=100,
        smallest_possible_p=0.0,
        permutation_draws=None,
        p_value_at_floor=False,
        largest_unit_items=1,
        discordant=[0, 0],
        mcnemar_p_items=1.0,
    )
    return PairedTest(**{**plain, **fields})


# a run in seconds: one epoch each, no model folders, the fewest resamples allowed, and no linear
# probe reference (its cross-validation, 195 fits, is most of a tiny run's CPU time); the tests of
# the probe, of resuming and of processes add PROBE
FAST = ["--epochs_head_only", "1", "--epochs_full_finetune", "1", "--save_models", "false"]
FAST += ["--bootstrap_resamples", "1000", "--probe_reference", "false"]
PROBE = ["--probe_reference", "true"]


def tiny_args(model_dir, data_dir, out):
    return ["--model_name", str(model_dir), "--data_dir", str(data_dir), "--output_dir", str(out)]


def only_run_dir(out):
    (run_dir,) = list(out.iterdir())
    return run_dir


def run_tiny(model_dir, data_dir, out, *extra):
    """The script's main() on the tiny model and data with FAST settings: its run folder and
    results.json."""
    import json

    import sst2_compare as app

    assert app.main(tiny_args(model_dir, data_dir, out) + FAST + list(extra)) == 0
    run_dir = only_run_dir(out)
    return run_dir, json.loads((run_dir / "results.json").read_text())


@pytest.fixture(scope="session")
def three_seeds_in_one_process(tiny_model_dir, tiny_data_dir, tmp_path_factory):
    """A FAST three-seed run with the probe, in this process: what seeds spread over processes, or a
    stopped run resumed, must give number for number. Its tests share the xdist group "three_seeds",
    so the run is made once per session under `--dist loadgroup`."""
    out = tmp_path_factory.mktemp("three-seeds")
    run_dir, record = run_tiny(tiny_model_dir, tiny_data_dir, out, *PROBE, "--num_seeds", "3")
    return record, pd.read_csv(run_dir / "predictions.csv")


HEAD_PARAMETERS = (
    16 * 16 + 16 + 16 * 2 + 2
)  # the tiny DistilBERT's head: pre_classifier, classifier


needs_torchrun = pytest.mark.skipif(
    shutil.which("torchrun") is None, reason="torchrun is not installed"
)


def torchrun(*args, script="sst2_compare.py", env=None):
    """The script (or a launcher of it) under torchrun, two processes on this machine."""
    command = ["torchrun", "--standalone", "--nproc_per_node", "2", str(script), *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def help_in(folder, env=None):
    """`python sst2_compare.py --help` run in folder (a copy of the project): the finished
    process."""
    command = [sys.executable, "sst2_compare.py", "--help"]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=120, env=env)


def trained(healths=None):
    """Each run's Training for a constructed comparison: its health from healths (run -> (status,
    why, advice); ok where not given), its other fields of no consequence to the comparison."""
    from sst2kit.comparison import RunHealth, Training
    from sst2kit.names import RUNS

    return {
        run: Training(
            trainable_parameters=1,
            frozen_parameters=0,
            steps=1,
            train_seconds=0.0,
            predict_seconds=0.0,
            selected_epoch=None,
            history={},
            health=RunHealth(*(healths or {}).get(run, ("ok",))),
        )
        for run in RUNS
    }
