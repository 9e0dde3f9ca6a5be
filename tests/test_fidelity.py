"""Notebook mode is the course notebook: its training cells, transcribed here with only the
adaptations a local, offline run needs, give the same predictions and the same per-epoch validation
accuracy as the script run with the notebook's settings.

Adaptations: the data from local parquet files (not the hub), the project's re-split call (the
notebook's own: train_test_split(test_size=0.1, seed=42)), scikit-learn for the metric
(evaluate.load fetches code from the hub), dtype=float32 (transformers 5 keeps the stored dtype),
warm-up given as a float warmup_steps (transformers 5 has no warmup_ratio), the seed set before the
model is loaded (so its new head is the project's seed-42 head), the CPU, and the learning rates and
epochs of a task the tiny model can learn in seconds."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from datasets import load_dataset
from sklearn.metrics import accuracy_score
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
    set_seed,
)

import sst2_compare as app
from conftest import tiny_args

pytestmark = pytest.mark.slow  # whole runs of the script: `pytest -m "not slow"` leaves them out

EPOCHS, LR_HEAD, LR_FULL = 2, 5e-2, 3e-2  # high enough that validation loss rises again in epoch 2
NOTEBOOK_MODE = [
    "--cache_encoder_features",
    "false",
    "--cuda_graphs",
    "false",
    "--precision",
    "fp32",
    "--pad_to_multiple_of",
    "1",
    "--select_best_epoch",
    "true",
]


def compute_metrics(eval_pred):
    logits, labels = eval_pred
    return {"accuracy": accuracy_score(labels, np.argmax(logits, axis=-1))}


def notebook(model_dir, data_dir, out):
    """The notebook's cells, in its order: data, tokenizer, head-only run on the frozen encoder,
    then the full fine-tune of the same model. Returns each run's P(positive) on validation, its
    per-epoch validation accuracy, and the checkpoint it ended with."""
    dataset = load_dataset(
        "parquet",
        data_files={
            "train": str(data_dir / "train.parquet"),
            "validation": str(data_dir / "validation.parquet"),
        },
    )
    split = dataset["train"].train_test_split(test_size=0.1, seed=42)
    train_ds, val_ds = split["train"], dataset["validation"]

    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def tokenize(batch):
        return tokenizer(batch["sentence"], truncation=True)

    train_tok = train_ds.map(tokenize, batched=True)
    val_tok = val_ds.map(tokenize, batched=True)
    data_collator = DataCollatorWithPadding(tokenizer=tokenizer)

    set_seed(42)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=2, dtype=torch.float32
    )
    outcome = {}
    for run, lr, trainable in (("head_only", LR_HEAD, False), ("full_finetune", LR_FULL, True)):
        for param in model.base_model.parameters():
            param.requires_grad = trainable
        args = TrainingArguments(
            output_dir=str(out / run),
            eval_strategy="epoch",
            save_strategy="epoch",
            learning_rate=lr,
            per_device_train_batch_size=32,
            per_device_eval_batch_size=64,
            num_train_epochs=EPOCHS,
            weight_decay=0.01,
            warmup_steps=0.06,
            load_best_model_at_end=True,
            seed=42,
            report_to="none",
            use_cpu=True,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=train_tok,
            eval_dataset=val_tok,
            processing_class=tokenizer,
            data_collator=data_collator,
            compute_metrics=compute_metrics,
        )
        trainer.train()
        logits = trainer.predict(val_tok).predictions
        outcome[run] = {
            "probs": torch.as_tensor(logits).float().softmax(-1)[:, 1].numpy(),
            "accuracy_per_epoch": [
                e["eval_accuracy"] for e in trainer.state.log_history if "eval_accuracy" in e
            ],
            "best_checkpoint": trainer.state.best_model_checkpoint,
            "steps_per_epoch": trainer.state.max_steps // EPOCHS,
        }
    return outcome


def test_notebook_mode_gives_the_notebooks_predictions_and_its_choice_of_epoch(
    tiny_model_dir, tiny_data_dir, tmp_path
):
    expected = notebook(tiny_model_dir, tiny_data_dir, tmp_path / "notebook")
    # the fixture does what the test is about: a run whose validation loss rose in epoch 2 ends at
    # epoch 1
    assert expected["head_only"]["best_checkpoint"].endswith(
        f"checkpoint-{expected['head_only']['steps_per_epoch']}"
    )

    out = tmp_path / "project"
    assert (
        app.main(
            [
                *tiny_args(tiny_model_dir, tiny_data_dir, out),
                *NOTEBOOK_MODE,
                "--epochs_head_only",
                str(EPOCHS),
                "--epochs_full_finetune",
                str(EPOCHS),
                "--learning_rate_head_only",
                str(LR_HEAD),
                "--learning_rate_full_finetune",
                str(LR_FULL),
                "--save_models",
                "false",
                "--bootstrap_resamples",
                "1000",
            ]
        )
        == 0
    )
    (run_dir,) = out.iterdir()
    record = json.loads((run_dir / "results.json").read_text())
    predictions = pd.read_csv(run_dir / "predictions.csv")
    validation = predictions[predictions["split"] == "validation"].sort_values("idx")
    for run in ("head_only", "full_finetune"):
        ours = validation[f"{run}_prob_pos"].to_numpy()
        theirs = expected[run]["probs"]
        assert np.array_equal(ours > 0.5, theirs > 0.5), run
        # prediction batches are padded differently (the project sorts them by length): rounding, no
        # more
        assert np.abs(ours - theirs).max() < 1e-5, run
        epochs = [
            value
            for epoch, value in record["seeds"][0]["training"][run]["history"]["eval_accuracy"]
            if epoch > 0
        ]
        assert epochs == expected[run]["accuracy_per_epoch"], run
    assert record["seeds"][0]["training"]["head_only"]["selected_epoch"] == 1
