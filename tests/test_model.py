"""The models and the one Trainer builder: what each run trains, and from where it starts."""

import shutil
import subprocess
import sys

import pytest
import torch
from transformers import AutoTokenizer

import sst2_compare as app
from config import Config
from conftest import ROOT
from sst2kit.batches import TokenBatches, token_id_lists, tokenize_splits
from sst2kit.curve import Cell
from sst2kit.data import load_sst2
from sst2kit.features import (
    FirstTokenStates,
    ReplayEncoder,
    encoder_features,
    encoder_replayed,
    first_token_states,
    replay_is_faithful,
)
from sst2kit.models import load_model, set_encoder_trainable
from sst2kit.runtime import Experiment, Precision, Setup


def tiny_batches(model_dir, data_dir, train_pad_multiple=1):
    raw = load_sst2(str(data_dir))
    frames = {"train": raw["train"].to_pandas(), "validation": raw["validation"].to_pandas()}
    return tokenize_splits(
        frames,
        AutoTokenizer.from_pretrained(model_dir),
        max_length=128,
        train_pad_multiple=train_pad_multiple,
    )[1]


def experiment(cfg, run_dir, graphs_off_because="no CUDA device"):
    setup = Setup(
        parallel="single",
        processes=1,
        device="cpu",
        precision=Precision("fp32"),
        cuda_graphs_off_because=graphs_off_because,
    )
    return Experiment(cfg, run_dir, AutoTokenizer.from_pretrained(cfg.model_name), setup)


@pytest.mark.parametrize(
    "fixture, head_names",
    [("tiny_model_dir", {"pre_classifier", "classifier"}), ("tiny_bert_dir", {"classifier"})],
)
def test_freezing_leaves_only_the_head_trainable(request, fixture, head_names):
    model = load_model(Config(model_name=str(request.getfixturevalue(fixture))), seed=0)[0]
    trainable, frozen = set_encoder_trainable(model, False)
    names = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert names == head_names
    assert trainable == sum(
        p.numel() for n, p in model.named_parameters() if n.split(".")[0] in head_names
    )
    assert trainable + frozen == sum(p.numel() for p in model.parameters())
    assert set_encoder_trainable(model, True) == (trainable + frozen, 0)


def test_model_weights_load_in_float32_and_head_init_is_seeded(tiny_model_dir):
    cfg = Config(model_name=str(tiny_model_dir))
    a, b = load_model(cfg, seed=3)[0], load_model(cfg, seed=3)[0]
    assert a.dtype == torch.float32
    assert torch.equal(a.classifier.weight, b.classifier.weight)
    assert not torch.equal(a.classifier.weight, load_model(cfg, seed=4)[0].classifier.weight)


def test_the_two_runs_arguments_differ_only_in_lr_epochs_name_and_folder(tiny_model_dir, tmp_path):
    cfg = Config(model_name=str(tiny_model_dir))
    model = load_model(cfg, seed=0)[0]
    rows = FirstTokenStates(torch.zeros(4, 16), [0, 1, 0, 1])
    data = {"train": rows, "validation": rows}
    setup = experiment(cfg, tmp_path)
    head = app.make_trainer(
        model, 5e-4, 2, "head_only", data=data, cell=Cell(0, {}), experiment=setup
    ).args
    full = app.make_trainer(
        model, 2e-5, 3, "full_finetune", data=data, cell=Cell(0, {}), experiment=setup
    ).args
    head_args, full_args = head.to_dict(), full.to_dict()
    differing = {key for key in head_args if head_args[key] != full_args[key]}
    assert differing == {"learning_rate", "num_train_epochs", "run_name"}
    assert (head.learning_rate, head.num_train_epochs, head.run_name) == (
        5e-4,
        2,
        "head_only_seed0",
    )
    assert (full.learning_rate, full.num_train_epochs, full.run_name) == (
        2e-5,
        3,
        "full_finetune_seed0",
    )
    assert head.per_device_train_batch_size == cfg.per_device_train_batch_size == 32
    assert (
        head.get_warmup_steps(100)
        == full.get_warmup_steps(100)
        == round(100 * cfg.warmup_ratio)
        == 6
    )
    assert head.save_strategy == "no"


@pytest.mark.parametrize("cached_features", [True, False])
def test_head_only_training_leaves_every_encoder_weight_bit_identical(
    tiny_model_dir, tiny_data_dir, tmp_path, cached_features
):
    cfg = Config(model_name=str(tiny_model_dir), save_models=False)
    batches = tiny_batches(tiny_model_dir, tiny_data_dir)
    features = (
        encoder_features(load_model(cfg, 0)[0], batches, batch_size=64, autocast_dtype=None)
        if cached_features
        else None
    )
    model = load_model(cfg, seed=0)[0]
    before = {name: p.detach().clone() for name, p in model.base_model.named_parameters()}
    head_before = model.classifier.weight.detach().clone()
    set_encoder_trainable(model, False)
    with encoder_replayed(model, enabled=cached_features):
        app.make_trainer(
            model,
            5e-3,
            1,
            "head_only",
            data=features or batches,
            cell=Cell(0, {}),
            experiment=experiment(cfg, tmp_path),
        ).train()
    after = dict(model.base_model.named_parameters())
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert not torch.equal(head_before, model.classifier.weight)  # the head did train


@pytest.mark.parametrize("fixture", ["tiny_model_dir", "tiny_bert_dir"])
def test_cached_features_give_the_real_models_logits(request, fixture, tiny_data_dir):
    """The head-only run trains on first-token states computed once: they must be what the encoder
    gives."""
    folder = request.getfixturevalue(fixture)
    model = load_model(Config(model_name=str(folder)), seed=0)[0].eval()
    validation = tiny_batches(folder, tiny_data_dir)["validation"]
    assert replay_is_faithful(model, validation)
    states = first_token_states(model, validation, batch_size=7, autocast_dtype=None)
    batch = validation.__getitems__(list(range(5)))
    with torch.inference_mode():
        real = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        with encoder_replayed(model):
            replayed = model(inputs_embeds=states[:5, None]).logits
    assert torch.allclose(real, replayed, atol=1e-5)
    assert model.base_model is not None and not isinstance(model.base_model, ReplayEncoder)


def test_batches_pad_to_a_few_shapes_and_keep_every_token():
    rows = [[2, 5, 3], [2] + [7] * 40 + [3], [2, 9, 9, 9, 3]]
    batches = TokenBatches.from_token_ids(rows, [0, 1, 1], pad_id=0, multiple=32)
    short, mixed = batches.__getitems__([0, 2]), batches.__getitems__([0, 1])
    assert short["input_ids"].shape == (2, 32) and mixed["input_ids"].shape == (2, 64)
    assert short["input_ids"][1, :5].tolist() == rows[2] and short["input_ids"][1, 5:].eq(0).all()
    assert short["attention_mask"].sum(1).tolist() == [3, 5]
    assert mixed["labels"].tolist() == [0, 1]
    exact = batches.padded_to_multiple_of(1).__getitems__([0, 2])
    assert exact["input_ids"].shape == (2, 5)
    assert torch.equal(exact["input_ids"], short["input_ids"][:, :5])


def test_a_checkpoint_with_another_head_size_gets_a_fresh_two_label_head(tiny_model_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification

    three = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=3)
    three.save_pretrained(tmp_path / "three")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "three")
    model, fresh = load_model(Config(model_name=str(tmp_path / "three")), seed=0)
    # only the head of the wrong size is new
    assert fresh == ["classifier.bias", "classifier.weight"]
    assert model.config.num_labels == 2 and model.classifier.out_features == 2
    assert torch.equal(
        model.distilbert.embeddings.word_embeddings.weight,
        # the encoder is the checkpoint's
        three.distilbert.embeddings.word_embeddings.weight,
    )


def test_tokenized_rows_stay_with_their_sentence_label_and_idx(tiny_model_dir, tiny_data_dir):
    """Evaluation splits are put in length order: each frame row must still be its token row's
    sentence and label, or every score is computed against the wrong labels."""
    raw = load_sst2(str(tiny_data_dir))
    frames = {"train": raw["train"].to_pandas(), "validation": raw["validation"].to_pandas()}
    original = frames["validation"].set_index("idx")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    sorted_frames, batches = tokenize_splits(
        frames, tokenizer, max_length=128, train_pad_multiple=32
    )
    validation, rows = sorted_frames["validation"], batches["validation"]
    # really reordered, so the check below means something
    assert not validation["idx"].is_monotonic_increasing
    lengths = rows.lengths.tolist()
    assert lengths == sorted(lengths)
    for i, row in enumerate(validation.itertuples()):
        tokens = rows.token_table[i, 1 : lengths[i] - 1].tolist()  # without [CLS] and [SEP]
        assert tokenizer.decode(tokens) == row.sentence == original.loc[row.idx, "sentence"]
        assert rows.labels[i] == row.label == original.loc[row.idx, "label"]
    batch = rows.__getitems__([3, 0])
    assert batch["labels"].tolist() == [validation["label"][3], validation["label"][0]]


REWRITTEN_MID_RUN = """
import sys
sys.path.insert(0, {root!r})
from config import Config
from sst2kit.errors import UsageError
from sst2kit.models import load_checked_model, load_model
cfg = Config(model_name={model!r})
checked = load_checked_model(cfg)
# rewritten in place, as a download or a save over it would
with open({weights!r}, "r+b") as weights:
    weights.truncate(0)
print("still readable", sum(float(p.sum()) for p in checked.model.parameters()) != 0, flush=True)
try:
    load_model(cfg, cfg.seed + 1, weights_as_checked=checked.weights_signature)
except UsageError as err:
    print("refused:", err)
"""


@pytest.mark.slow
def test_weights_rewritten_on_disk_mid_run_neither_kill_the_run_nor_reach_a_later_seed(
    tiny_model_dir, tmp_path
):
    folder = shutil.copytree(tiny_model_dir, tmp_path / "model")
    script = REWRITTEN_MID_RUN.format(
        root=str(ROOT), model=str(folder), weights=str(folder / "model.safetensors")
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    # -7: SIGBUS, the memory-mapped file read after it changed
    assert done.returncode == 0, done.stderr[-2000:]
    assert "still readable True" in done.stdout
    assert (
        "refused: " in done.stdout and "weight files changed on disk during the run" in done.stdout
    )


@pytest.mark.parametrize("side", ["right", "left"])
def test_token_ids_are_the_tokenizers_own(tiny_model_dir, side):
    """The fast path (the Rust tokenizer called directly) gives exactly what the tokenizer's own
    call gives, truncation included, from whichever side the tokenizer truncates."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, truncation_side=side)
    sentences = ["a good film", "the plot was dull and boring " * 10, "unknownword great"]
    ids = token_id_lists(tokenizer, 12)(sentences)
    # the run's own tokenizer is left as it was
    assert tokenizer.backend_tokenizer.truncation is None
    assert (
        ids
        == tokenizer(
            sentences,
            truncation=True,
            max_length=12,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
    )
