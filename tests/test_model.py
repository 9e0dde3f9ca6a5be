from functools import partial
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, DataCollatorWithPadding

import sst2_compare as app
from config import Config
from data import load_sst2, tokenize


@pytest.mark.parametrize("fixture, head_names", [("tiny_model_dir", {"pre_classifier", "classifier"}),
                                                 ("tiny_bert_dir", {"classifier"})])
def test_freezing_leaves_only_the_head_trainable(request, fixture, head_names):
    cfg = Config(model_name=str(request.getfixturevalue(fixture)))
    model = app.load_model(cfg, seed=0)
    trainable, frozen = app.set_encoder_trainable(model, False)
    names = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert names == head_names
    assert trainable == sum(p.numel() for n, p in model.named_parameters() if n.split(".")[0] in head_names)
    assert trainable + frozen == sum(p.numel() for p in model.parameters())
    assert app.set_encoder_trainable(model, True) == (trainable + frozen, 0)


def test_model_weights_load_in_float32_and_head_init_is_seeded(tiny_model_dir):
    cfg = Config(model_name=str(tiny_model_dir))
    a, b = app.load_model(cfg, seed=3), app.load_model(cfg, seed=3)
    assert a.dtype == torch.float32
    assert torch.equal(a.classifier.weight, b.classifier.weight)
    assert not torch.equal(a.classifier.weight, app.load_model(cfg, seed=4).classifier.weight)


def test_make_trainer_sets_each_runs_lr_epochs_and_folder(tiny_model_dir, tmp_path):
    cfg = Config(model_name=str(tiny_model_dir))
    model = app.load_model(cfg, seed=0)
    rows = app.FirstTokenStates(torch.zeros(4, 16), [0, 1, 0, 1])
    make = partial(app.make_trainer, cfg=cfg, run_dir=tmp_path, tokenizer=None, train_dataset=rows,
                   eval_dataset=rows, data_collator=None, seed=0)
    head = make(model, 5e-4, 2, "head_only").args
    full = make(model, 2e-5, 3, "full_finetune").args
    assert (head.learning_rate, head.num_train_epochs, Path(head.output_dir)) == (5e-4, 2, tmp_path / "head_only")
    assert (full.learning_rate, full.num_train_epochs, Path(full.output_dir)) == (2e-5, 3, tmp_path / "full_finetune")
    assert head.per_device_train_batch_size == cfg.per_device_train_batch_size
    assert head.warmup_steps == pytest.approx(cfg.warmup_ratio)
    assert head.save_strategy == "no"


@pytest.mark.parametrize("fixture", ["tiny_model_dir", "tiny_bert_dir"])
def test_cached_features_give_the_real_models_logits(request, fixture, tiny_data_dir):
    """The head-only run trains on first-token states computed once: they must be what the encoder gives."""
    folder = request.getfixturevalue(fixture)
    model = app.load_model(Config(model_name=str(folder)), seed=0).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    collator = DataCollatorWithPadding(tokenizer)
    validation = tokenize({"validation": load_sst2(str(tiny_data_dir))["validation"]}, tokenizer, 128)["validation"]
    assert app.replay_is_faithful(model, validation, collator)
    states = app.first_token_states(model, validation, collator, batch_size=7, autocast_dtype=None)
    rows = validation.select(range(5)).select_columns(["input_ids", "attention_mask"]).to_list()
    with torch.inference_mode():
        real = model(**collator(rows)).logits
        with app.encoder_replayed(model):
            replayed = model(inputs_embeds=states[:5, None]).logits
    assert torch.allclose(real, replayed, atol=1e-5)
    assert model.base_model is not None and not isinstance(model.base_model, app.ReplayEncoder)
