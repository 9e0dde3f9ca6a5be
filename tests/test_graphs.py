"""The GPU speed path's logic, on the CPU: the precision per device, when graphs apply, and the
graphed Trainer's bookkeeping (static gradient buffers, one graph per batch shape, eager odd
batches, falling back when capture fails). The capture itself needs a GPU: bench/step_profile.py
checks it there against the eager step."""

import pytest
import torch
from test_model import experiment, tiny_batches
from transformers import Trainer

import sst2_compare as app
from config import Config
from sst2kit import cuda_graphs as graphs
from sst2kit.curve import Cell
from sst2kit.models import load_model, set_encoder_trainable
from sst2kit.runtime import Precision, decide_precision


@pytest.mark.parametrize(
    "asked, capability, chosen",
    [
        ("auto", None, "fp32"),
        ("auto", (9, 0), "tf32"),
        ("auto", (8, 6), "tf32"),
        ("auto", (7, 5), "fp16"),
        ("auto", (7, 0), "fp16"),
        ("auto", (6, 1), "fp32"),
        ("bf16", (9, 0), "bf16"),
        ("bf16", (7, 5), "fp16"),
        ("fp16", (9, 0), "fp16"),
        ("fp32", (9, 0), "fp32"),
        ("bf16", None, "fp32"),
        ("fp16", None, "fp32"),
    ],
)
def test_precision_is_decided_by_the_device(asked, capability, chosen):
    assert decide_precision(asked, capability) == Precision(chosen)


def test_precision_flags_for_the_trainer():
    assert Precision("tf32").trainer_flags == Precision("fp32").trainer_flags == {}
    assert (
        Precision("bf16").trainer_flags == {"bf16": True}
        and Precision("bf16").autocast_dtype == torch.bfloat16
    )
    assert (
        Precision("fp16").trainer_flags == {"fp16": True}
        and Precision("tf32").autocast_dtype is None
    )


def test_when_graphs_apply():
    def off_because(precision="tf32", wanted=True, processes=1, device_type="cuda", gpus_visible=1):
        return graphs.cuda_graphs_apply(
            wanted,
            Precision(precision),
            processes=processes,
            device_type=device_type,
            gpus_visible=gpus_visible,
        )

    assert off_because() == off_because("bf16") == ""  # graphs on
    assert "turned off" in off_because(wanted=False)
    assert "no CUDA" in off_because("fp32", device_type="cpu", gpus_visible=0)
    assert "fp16" in off_because("fp16")
    assert "several processes" in off_because(processes=2, gpus_visible=2)
    assert "sees 2 GPUs (DataParallel)" in off_because(gpus_visible=2)


def test_graphs_are_refused_where_the_trainer_lacks_what_they_rely_on():
    assert graphs.missing_trainer_internals() == []  # the installed transformers has all of it

    class OlderTrainer(Trainer):
        _prepare_inputs = None

    class OtherSignature(Trainer):
        def training_step(self, model, inputs):
            return super().training_step(model, inputs)

    def off_because(trainer_class):
        return graphs.cuda_graphs_apply(
            True,
            Precision("tf32"),
            processes=1,
            device_type="cuda",
            gpus_visible=1,
            trainer_class=trainer_class,
        )

    assert "lacks _prepare_inputs" in off_because(OlderTrainer)
    assert "lacks training_step(model, inputs, num_items_in_batch)" in off_because(OtherSignature)


def test_gradient_accumulation_trains_eagerly_and_says_so(
    tiny_model_dir, tiny_data_dir, tmp_path, monkeypatch, capsys
):
    """A graphed step runs one whole batch per optimizer step: with accumulation it would skip the
    Trainer's loss division, so a CudaGraphTrainer asked for it trains eagerly and says why."""
    from transformers import TrainingArguments

    # any capture attempt would fail the test below
    monkeypatch.setattr(graphs, "StepGraph", FailingCapture)
    cfg = Config(model_name=str(tiny_model_dir))
    model = load_model(cfg, seed=0)[0]
    args = TrainingArguments(
        output_dir=str(tmp_path),
        run_name="accumulating",
        gradient_accumulation_steps=2,
        max_steps=2,
        per_device_train_batch_size=32,
        use_cpu=True,
        report_to="none",
        remove_unused_columns=False,
        save_strategy="no",
    )
    batches = tiny_batches(tiny_model_dir, tiny_data_dir, train_pad_multiple=32)
    trainer = graphs.CudaGraphTrainer(
        model=model, args=args, train_dataset=batches["train"], data_collator=lambda batch: batch
    )
    trainer.train()
    out = capsys.readouterr().out
    assert (
        "CUDA graphs off for accumulating: gradient accumulation (2 steps); this run trains eagerly"
        in out
    )
    assert "capture failed" not in out and trainer.state.global_step == 2


class EagerStepGraph:
    """StepGraph's protocol without CUDA: each replay zeroes the static buffers and runs forward and
    backward."""

    made = []

    def __init__(self, loss_fn, batch, *, params, grads, pool):
        self.loss_fn, self.shape = loss_fn, tuple(batch["input_ids"].shape)
        self.graph = self
        EagerStepGraph.made.append(self.shape)

    def pool(self):
        return None

    def replay(self, batch, params, grads):
        graphs.attach(params, grads)
        torch._foreach_zero_(grads)
        loss = self.loss_fn(batch)
        loss.backward()
        return loss.detach()


class FailingCapture:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("operation not permitted when stream is capturing")


def train(model_dir, data_dir, tmp_path, graphs_off_because):
    cfg = Config(model_name=str(model_dir), save_models=False)
    batches = tiny_batches(model_dir, data_dir, train_pad_multiple=32)
    model = load_model(cfg, seed=0)[0]
    set_encoder_trainable(model, True)
    trainer = app.make_trainer(
        model,
        1e-3,
        1,
        "full_finetune",
        data=batches,
        cell=Cell(0, {}),
        experiment=experiment(cfg, tmp_path, graphs_off_because),
    )
    trainer.train()
    return trainer, torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("stand_in", [EagerStepGraph, FailingCapture])
def test_graphed_trainer_trains_exactly_like_the_trainer(
    tiny_model_dir, tiny_data_dir, tmp_path, monkeypatch, capsys, stand_in
):
    plain, plain_weights = train(tiny_model_dir, tiny_data_dir, tmp_path, "turned off")
    monkeypatch.setattr(graphs, "StepGraph", stand_in)
    EagerStepGraph.made.clear()
    graphed, graphed_weights = train(tiny_model_dir, tiny_data_dir, tmp_path, "")
    assert type(plain) is Trainer and isinstance(graphed, graphs.CudaGraphTrainer)
    assert torch.allclose(plain_weights, graphed_weights, atol=1e-6)
    # 400 rows, 32 a step: 12 full, 1 of 16
    assert graphed.state.global_step == plain.state.global_step == 13
    if stand_in is EagerStepGraph:
        # one capture per shape
        assert sorted(set(EagerStepGraph.made)) == sorted(EagerStepGraph.made)
        assert {width for _, width in EagerStepGraph.made} <= {32, 64, 96, 128}
        # the epoch's last, smaller batch runs eagerly
        assert {rows for rows, _ in EagerStepGraph.made} == {32}
        assert graphed.graphs_off_because == ""
    else:
        assert "CUDA graph capture failed (operation not permitted" in capsys.readouterr().out
        assert graphed.graphs_off_because
