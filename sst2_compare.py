"""How much does fine-tuning the whole encoder buy over training only a classification head on a frozen one?

GLUE SST-2, one model (distilbert-base-uncased by default), two runs on the same data:
  head-only:     the encoder frozen, only the classification head trained;
  full fine-tune: every weight trained.
Run `python sst2_compare.py --help` for every setting; defaults live in config.py.
"""
import dataclasses
import json
import sys
import time
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list
from transformers import (AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainingArguments,
                          default_data_collator, set_seed)
from transformers.modeling_outputs import BaseModelOutputWithPooling

import plots
import report
import stats
from checks import (UsageError, check_config, check_hub, check_model, check_output_dir, load_pretrained,
                    parse_config)
from data import column, inside_fractions, load_sst2, split_train_test, take_fraction, tokenize
from report import EVAL_SPLITS, RUNS


# ---------------------------------------------------------------- models

def load_model(cfg, seed):
    """The pretrained encoder with a new head; seeded so the head's initialisation repeats."""
    set_seed(seed)
    return load_pretrained(AutoModelForSequenceClassification, cfg, num_labels=cfg.num_labels,
                           id2label=dict(enumerate(stats.LABEL_NAMES)), dtype=torch.float32,
                           use_safetensors=None if cfg.allow_pickled_weights else True)


def set_encoder_trainable(model, trainable):
    """Freeze or unfreeze the encoder of any *ForSequenceClassification; returns (trainable, frozen) counts."""
    for param in model.base_model.parameters():
        param.requires_grad = trainable
    counts = [sum(p.numel() for p in model.parameters() if p.requires_grad == flag) for flag in (True, False)]
    return tuple(counts)


class ReplayEncoder(torch.nn.Module):
    """Stands in for the frozen encoder: hands the head the encoder outputs computed once beforehand.

    The cached first-token states arrive as `inputs_embeds` of shape (batch, 1, hidden); heads that read
    the first token (DistilBERT, RoBERTa) or the pooler (BERT, which pools the first token) see what the
    real encoder in eval mode would have given them.
    """
    def __init__(self, encoder):
        super().__init__()
        self.pooler = getattr(encoder, "pooler", None)

    def forward(self, *args, inputs_embeds=None, **kwargs):
        pooled = self.pooler(inputs_embeds) if self.pooler is not None else None
        return BaseModelOutputWithPooling(last_hidden_state=inputs_embeds, pooler_output=pooled)


@contextmanager
def encoder_replayed(model):
    encoder = model.base_model
    setattr(model, model.base_model_prefix, ReplayEncoder(encoder))
    try:
        yield model
    finally:
        setattr(model, model.base_model_prefix, encoder)


class FirstTokenStates(torch.utils.data.Dataset):
    def __init__(self, states, labels):
        self.states, self.labels = states, torch.as_tensor(labels)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"inputs_embeds": self.states[i, None], "labels": self.labels[i]}


def model_batch(dataset, rows, collator, device):
    """Rows of a tokenized dataset, padded into model inputs on the device."""
    columns = [c for c in dataset.column_names if c in ("input_ids", "attention_mask", "token_type_ids")]
    return {k: v.to(device) for k, v in collator(dataset.select(rows).select_columns(columns).to_list()).items()}


@torch.inference_mode()
def first_token_states(model, dataset, collator, batch_size, autocast_dtype):
    """The frozen encoder's last-layer first-token state for every example, in one pass without dropout.
    Batches are formed in length order so little is padding."""
    encoder = model.base_model.eval()
    order = np.argsort(column(dataset, "length"), kind="stable")
    states = None
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        with torch.autocast(model.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            first = encoder(**model_batch(dataset, rows, collator, model.device)).last_hidden_state[:, 0]
        if states is None:
            states = torch.empty(len(order), first.shape[1])
        states[torch.as_tensor(rows)] = first.float().cpu()
    return states


@torch.inference_mode()
def replay_is_faithful(model, dataset, collator):
    """Does the head on replayed first-token states give the real model's logits? (Not for last-token heads.)"""
    batch = model_batch(dataset, range(min(8, len(dataset))), collator, model.device)
    model.eval()
    real = model(**batch).logits
    states = model.base_model(**batch).last_hidden_state[:, :1]
    with encoder_replayed(model):
        replayed = model(inputs_embeds=states).logits
    return torch.allclose(real, replayed, rtol=1e-3, atol=1e-4)


# ---------------------------------------------------------------- training

def precision_flags(precision):
    """Trainer flags for the precision asked; never one that fails on a CPU.

    auto: TF32 tensor-core matmuls on float32 weights where the GPU has them (Ampere and later). Measured on an
    H200 (bench/step_profile.py), bf16 autocast made a DistilBERT step of batch 32 slower, not faster: its casts
    cost more launch time than the arithmetic they save at this size.
    """
    if precision == "fp32" or not torch.cuda.is_available():
        return {}
    if precision == "bf16":
        return {"bf16": True} if torch.cuda.is_bf16_supported() else {"fp16": True}
    return {"tf32": True} if torch.cuda.get_device_capability()[0] >= 8 else {}


def make_trainer(model, lr, epochs, run_name, *, seed, train_dataset, eval_dataset, data_collator, cfg, run_dir,
                 tokenizer):
    """The one place a TrainingArguments and a Trainer are built."""
    args = TrainingArguments(
        # the Trainer creates this folder at once: a folder per run only where it will hold that run's model
        output_dir=str(run_dir / run_name if cfg.save_models else run_dir),
        run_name=run_name,
        seed=seed,
        learning_rate=lr,
        num_train_epochs=epochs,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=cfg.per_device_eval_batch_size,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float below 1 is a share of all steps
        eval_strategy="epoch",  # validation accuracy per epoch, for the curves
        eval_on_start=True,  # and where each run starts from
        save_strategy="no",  # the final weights are saved once, by the caller
        logging_steps=0.025,  # a share of all steps: 40 points on the loss curve
        logging_nan_inf_filter=False,  # it reads the loss back every step: a GPU sync per step
        dataloader_num_workers=cfg.dataloader_num_workers,
        dataloader_persistent_workers=cfg.dataloader_num_workers > 0,
        dataloader_pin_memory=torch.cuda.is_available(),
        ddp_find_unused_parameters=False,  # frozen weights are simply not registered with DDP
        report_to="none",
        use_cpu=not torch.cuda.is_available(),
        **precision_flags(cfg.precision),
    )
    return Trainer(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                   data_collator=data_collator, processing_class=tokenizer, compute_metrics=epoch_metrics)


def epoch_metrics(prediction):
    metrics = stats.classification_metrics(prediction.label_ids, prediction.predictions.argmax(-1))
    return {k: metrics[k] for k in ("accuracy", "f1", "macro_f1")}


def train_and_predict(trainer, predict_sets):
    """Train, then one prediction pass per split. Returns P(positive) per split, and the run's record."""
    started = time.perf_counter()
    trainer.train()
    record = {"train_seconds": time.perf_counter() - started, "steps": trainer.state.global_step}
    started = time.perf_counter()
    probs = {split: torch.as_tensor(trainer.predict(ds).predictions).float().softmax(-1)[:, 1].numpy()
             for split, ds in predict_sets.items()}
    record["predict_seconds"] = time.perf_counter() - started
    record["history"] = {
        "train_loss": [[e["epoch"], e["loss"]] for e in trainer.state.log_history if "loss" in e],
        "eval_accuracy": [[e["epoch"], e["eval_accuracy"]] for e in trainer.state.log_history if "eval_accuracy" in e],
    }
    return probs, record


def autocast_dtype(precision):
    flags = precision_flags(precision)
    return torch.bfloat16 if flags.get("bf16") else torch.float16 if flags.get("fp16") else None


def encoder_features(cfg, data, collator, log):
    """Every split's first-token states from the pretrained encoder: the same for every seed, so computed once.
    None when this architecture's head reads more than the first token."""
    model = load_model(cfg, cfg.seed).to(PartialState().device)
    if not replay_is_faithful(model, data["validation"], collator):
        log("this model's head reads more than the first token: the encoder runs at every head-only step instead")
        return None
    return {split: FirstTokenStates(first_token_states(model, ds, collator, cfg.feature_batch_size,
                                                       autocast_dtype(cfg.precision)), column(ds, "label"))
            for split, ds in data.items()}


def head_only_run(model, cfg, seed, data, features, collator, make, log):
    """Train the head on the frozen encoder: on its features computed once, or (features None) running it
    at every step, its dropout on, as the notebook did."""
    trainable, frozen = set_encoder_trainable(model, False)
    log(f"head-only: {trainable:,} trainable parameters, {frozen:,} frozen")
    train_args = dict(lr=cfg.learning_rate_headonly_finetune, epochs=cfg.epochs_headonly_finetune,
                      run_name=f"head_only_seed{seed}", seed=seed)
    if features is None:
        trainer = make(model, train_dataset=data["train"], eval_dataset=data["validation"], data_collator=collator,
                       **train_args)
        probs, outcome = train_and_predict(trainer, {split: data[split] for split in EVAL_SPLITS})
    else:
        with encoder_replayed(model):
            trainer = make(model, train_dataset=features["train"], eval_dataset=features["validation"],
                           data_collator=default_data_collator, **train_args)
            probs, outcome = train_and_predict(trainer, {split: features[split] for split in EVAL_SPLITS})
    return trainer, probs, {"trainable_parameters": trainable, "frozen_parameters": frozen, **outcome}


def full_finetune_run(model, cfg, seed, data, collator, make, log):
    trainable, frozen = set_encoder_trainable(model, True)
    log(f"full fine-tune from the {cfg.full_finetune_init} model: {trainable:,} trainable parameters")
    trainer = make(model, cfg.learning_rate_full_finetune, cfg.epochs_full_finetune, f"full_finetune_seed{seed}",
                   seed=seed, train_dataset=data["train"], eval_dataset=data["validation"], data_collator=collator)
    probs, outcome = train_and_predict(trainer, {split: data[split] for split in EVAL_SPLITS})
    return trainer, probs, {"trainable_parameters": trainable, "frozen_parameters": frozen, **outcome}


def compare_once(cfg, seed, data, features, collator, make, log):
    """Both runs for one seed: metrics, paired significance, predictions and curves."""
    runs, probs = {}, {}
    model = load_model(cfg, seed)
    for run_name, title, train_run in (("head_only", "head-only", partial(head_only_run, features=features)),
                                       ("full_finetune", "full fine-tune", full_finetune_run)):
        log(f"\n=== {title} (seed {seed}) ===")
        if run_name == "full_finetune" and cfg.full_finetune_init == "pretrained":
            model = load_model(cfg, seed)
        trainer, probs[run_name], runs[run_name] = train_run(model, cfg, seed, data, collator=collator, make=make,
                                                             log=log)
        if cfg.save_models:  # after the run: the head-only model is whole again, its real encoder back in place
            trainer.save_model()

    preds = {run: {split: stats.predicted_labels(probs[run][split]) for split in EVAL_SPLITS} for run in RUNS}
    labels = {split: column(data[split], "label") for split in EVAL_SPLITS}
    for run in RUNS:
        for split in EVAL_SPLITS:
            runs[run][split] = stats.classification_metrics(labels[split], preds[run][split])
    head, full = runs["head_only"], runs["full_finetune"]
    result = {"seed": seed, "runs": runs,
              "delta": stats.metric_delta(head["test"], full["test"]),
              "delta_validation": stats.metric_delta(head["validation"], full["validation"]),
              "significance": {split: stats.paired_significance(labels[split], preds["head_only"][split],
                                                                preds["full_finetune"][split],
                                                                cfg.bootstrap_resamples, seed)
                               for split in EVAL_SPLITS}}
    return result, probs


# ---------------------------------------------------------------- data and report

def prepare_splits(cfg, log):
    """Train / test / validation as the config asks, and how much of test and validation is phrases of train."""
    raw = load_sst2(cfg.data_dir)
    train, test = split_train_test(raw["train"], cfg.test_size, cfg.seed, cfg.split)
    splits = {"train": train, "test": test, "validation": raw["validation"]}
    splits = {name: take_fraction(ds, cfg.subset_fraction, cfg.seed, name) for name, ds in splits.items()}
    log(f"split '{cfg.split}': " + ", ".join(f"{name} {len(ds):,}" for name, ds in splits.items()))
    leakage = inside_fractions(column(splits["train"], "sentence"),
                               {split: column(splits[split], "sentence") for split in EVAL_SPLITS})
    return splits, leakage


def tokenize_for_training(splits, tokenizer, max_length):
    tokenized = tokenize(splits, tokenizer, max_length)
    # predict in length order: batches of similar lengths pad less; outputs stay aligned with these rows
    for split in EVAL_SPLITS:
        tokenized[split] = tokenized[split].select(np.argsort(column(tokenized[split], "length"), kind="stable"))
    return tokenized


def new_run_dir(output_dir):
    """A fresh folder per run, named by its start time, so no run overwrites another."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir, n = Path(output_dir) / f"run-{stamp}", 1
    while run_dir.exists():
        run_dir, n = Path(output_dir) / f"run-{stamp}-{n}", n + 1
    run_dir.mkdir(parents=True)
    return run_dir


# ---------------------------------------------------------------- main

def run(cfg, log):
    state = PartialState()
    timings, started = {}, time.perf_counter()
    check_config(cfg)
    check_output_dir(cfg.output_dir)
    check_hub(cfg)

    log("=== data ===")
    splits, leakage = prepare_splits(cfg, log)
    tokenizer = check_model(cfg)
    data = tokenize_for_training(splits, tokenizer, cfg.max_length)
    balance = report.class_balance(data)
    report.print_class_balance(balance, log)
    log(f"leakage: {100 * leakage['test']:.1f}% of test items and {100 * leakage['validation']:.1f}% of validation "
        "items are word-for-word phrases of training items; scores on such items reward memorising.")
    run_dir = broadcast_object_list([new_run_dir(cfg.output_dir) if state.is_main_process else None])[0]
    log(f"results go to {run_dir}")
    if not torch.cuda.is_available():
        log("warning: no GPU; a full run is slow on a CPU. Try --subset_fraction 0.05 for a quick look.")
    log(f"device: {report.environment()['device']}, precision: {next(iter(precision_flags(cfg.precision)), 'fp32')}, "
        f"processes: {state.num_processes}")
    timings["data"] = time.perf_counter() - started

    collator = DataCollatorWithPadding(tokenizer)
    stage = time.perf_counter()
    features = encoder_features(cfg, data, collator, log) if cfg.cache_encoder_features else None
    timings["features"] = time.perf_counter() - stage
    if features is not None:
        log(f"\nfrozen-encoder features of {sum(map(len, features.values())):,} examples in "
            f"{timings['features']:.1f}s, for every head-only run")
    make = partial(make_trainer, cfg=cfg, run_dir=run_dir, tokenizer=tokenizer)
    per_seed, per_seed_probs = [], []
    for seed in range(cfg.seed, cfg.seed + cfg.num_seeds):
        stage = time.perf_counter()
        result, probs = compare_once(cfg, seed, data, features, collator, make, log)
        timings[f"seed{seed}"] = time.perf_counter() - stage
        per_seed.append(result)
        per_seed_probs.append((seed, probs))

    if not state.is_main_process:
        return run_dir
    stage = time.perf_counter()
    log("\n=== report ===")
    first = per_seed[0]
    for run_name in RUNS:
        report.print_run(run_name, first["runs"][run_name], leakage, log)
    floors = {split: report.majority_accuracy(data["train"], data[split]) for split in EVAL_SPLITS}
    report.print_comparison(first, leakage, floors, log)
    results = {"config": dataclasses.asdict(cfg), "class_balance": balance,
               "sizes": {name: len(ds) for name, ds in data.items()},
               "leakage": {"test_items_inside_train_fraction": leakage["test"],
                           "validation_items_inside_train_fraction": leakage["validation"]},
               **{k: first[k] for k in ("runs", "delta", "delta_validation", "significance")}}
    if cfg.num_seeds > 1:
        results["seeds"] = per_seed
        results["summary"] = stats.summarize_seeds(per_seed)
        report.print_summary(results["summary"], log)
    figures = plots.save_figures(per_seed, floors, run_dir)
    predictions = report.predictions_frame(data, per_seed_probs)
    report.write_atomic(run_dir / "predictions.csv", lambda path: predictions.to_csv(path, index=False))
    timings["report"] = time.perf_counter() - stage
    timings["total"] = time.perf_counter() - started
    results.update(timings_seconds=timings, environment=report.environment())
    report.write_atomic(run_dir / "results.json", lambda p: p.write_text(json.dumps(results, indent=2)))
    log(f"\nwrote {run_dir}/results.json, predictions.csv, {', '.join(f.name for f in figures)}")
    log(f"total wall time {timings['total']:.1f}s")
    return run_dir


def main(argv=None):
    # one process per GPU, or several CPU processes (gloo) under torchrun / accelerate launch
    state = PartialState(cpu=not torch.cuda.is_available())
    log = partial(print, flush=True) if state.is_main_process else (lambda *a, **k: None)
    try:
        run(parse_config(argv), log)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: results.json and predictions.csv are written only at the end, so none were left "
              "half-written; models saved before the interrupt are kept.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
