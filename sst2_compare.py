"""How much does fine-tuning the whole encoder buy over training only a classification head on a frozen one?

GLUE SST-2, one model (distilbert-base-uncased by default), two runs on the same data:
  head-only:     the encoder frozen, only the classification head trained;
  full fine-tune: every weight trained.
Run `python sst2_compare.py --help` for every setting; defaults live in config.py.
"""
import dataclasses
import difflib
import json
import os
import platform
import sys
import time
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import torch
import transformers
from accelerate import PartialState
from accelerate.utils import broadcast_object_list
from huggingface_hub import constants as hub_constants, get_session
from transformers import (AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                          HfArgumentParser, Trainer, TrainingArguments, default_data_collator, set_seed)
from transformers.modeling_outputs import BaseModelOutputWithPooling

import plots
import stats
from config import Config
from data import UsageError, inside_fractions, load_sst2, split_train_test, take_fraction, tokenize

RUNS = ("head_only", "full_finetune")
EVAL_SPLITS = ("test", "validation")


# ---------------------------------------------------------------- configuration and input checks

class ConfigParser(HfArgumentParser):
    def error(self, message):  # argparse would print the whole usage; one line says more
        raise UsageError(f"{message} (see --help)")


def parse_config(argv):
    parser = ConfigParser(Config, description=__doc__.splitlines()[0], allow_abbrev=False)
    cfg, unknown = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True)
    if unknown:
        flags = [a[2:] for a in parser._option_string_actions if a.startswith("--")]
        guess = difflib.get_close_matches(unknown[0].lstrip("-").split("=")[0], flags, n=1)
        hint = f": did you mean --{guess[0]}?" if guess else ": see --help for the fields"
        raise UsageError(f"unknown option {unknown[0]}{hint}")
    return cfg


def check_config(cfg):
    """Out-of-range values, named with the fix, before anything is loaded or written."""
    rules = [
        (cfg.learning_rate_headonly_finetune > 0, "learning_rate_headonly_finetune must be > 0"),
        (cfg.learning_rate_full_finetune > 0, "learning_rate_full_finetune must be > 0"),
        (cfg.per_device_train_batch_size > 0, "per_device_train_batch_size must be > 0"),
        (cfg.per_device_eval_batch_size > 0, "per_device_eval_batch_size must be > 0"),
        (cfg.feature_batch_size > 0, "feature_batch_size must be > 0"),
        (cfg.epochs_headonly_finetune > 0, "epochs_headonly_finetune must be > 0"),
        (cfg.epochs_full_finetune > 0, "epochs_full_finetune must be > 0"),
        (cfg.weight_decay >= 0, "weight_decay must be >= 0"),
        (0 <= cfg.warmup_ratio < 1, "warmup_ratio must be in [0, 1)"),
        (cfg.subset_fraction is None or 0 < cfg.subset_fraction <= 1, "subset_fraction must be in (0, 1], or unset"),
        (0 < cfg.test_size < 1, "test_size must be in (0, 1)"),
        (cfg.max_length >= 8, "max_length must be at least 8 tokens"),
        (cfg.num_labels == 2, "num_labels must be 2: SST-2 is negative/positive"),
        (cfg.num_seeds >= 1, "num_seeds must be >= 1"),
        (cfg.bootstrap_resamples >= 100, "bootstrap_resamples must be >= 100"),
        (cfg.dataloader_num_workers >= 0, "dataloader_num_workers must be >= 0"),
    ]
    for ok, message in rules:
        if not ok:
            raise UsageError(f"{message}: change it in config.py or on the command line")


def check_output_dir(output_dir):
    existing = Path(output_dir).resolve()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"output_dir {output_dir} cannot be written ({existing} is not a writable folder): "
                         "pick another --output_dir")


def check_hub(cfg):
    """Stop in seconds, not after minutes of retries, when the hub is needed and unreachable."""
    needs_hub = cfg.data_dir is None or not Path(cfg.model_name).is_dir()
    if not needs_hub or hub_constants.HF_HUB_OFFLINE:
        return
    try:
        get_session().head(hub_constants.ENDPOINT, timeout=5)
    except Exception as err:  # any transport failure means the same thing here
        raise UsageError(f"cannot reach the Hugging Face hub ({type(err).__name__}): run offline with local copies, "
                         "e.g. --data_dir ../shared/data/sst2 --model_name PATH/TO/MODEL, "
                         "or set HF_HUB_OFFLINE=1 to use what is in the local cache") from None


def load_pretrained(loader, cfg, **kwargs):
    """Any from_pretrained, with a clear line when the name leads nowhere."""
    try:
        return loader.from_pretrained(cfg.model_name, trust_remote_code=False, **kwargs)
    except (OSError, ValueError) as err:
        offline = " (offline: point --model_name at a local model folder)" if hub_constants.HF_HUB_OFFLINE else ""
        raise UsageError(f"cannot load model {cfg.model_name!r}: {str(err).splitlines()[0][:160]}{offline}") from None


def check_model(cfg):
    """The model's config and tokenizer: cheap, and enough to catch a bad name or max_length before training."""
    folder = Path(cfg.model_name)
    if folder.is_dir() and not list(folder.glob("*.safetensors")) and not cfg.allow_pickled_weights:
        raise UsageError(f"{folder} has no .safetensors weights; pickled weights can run code when loaded: "
                         "convert them, or pass --allow_pickled_weights true if you trust the source")
    model_config = load_pretrained(AutoConfig, cfg)
    limit = getattr(model_config, "max_position_embeddings", None)
    if limit and cfg.max_length > limit:
        raise UsageError(f"max_length {cfg.max_length} exceeds what {cfg.model_name} supports ({limit}): lower it")
    return load_pretrained(AutoTokenizer, cfg)


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


@torch.inference_mode()
def first_token_states(model, dataset, collator, batch_size, autocast_dtype):
    """The frozen encoder's last-layer first-token state for every example, in one pass without dropout.
    Batches are formed in length order so little is padding."""
    encoder, device = model.base_model.eval(), model.device
    inputs = dataset.select_columns([c for c in dataset.column_names if c in ("input_ids", "attention_mask",
                                                                              "token_type_ids")])
    order = np.argsort(dataset["length"], kind="stable")
    states = None
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = {k: v.to(device) for k, v in collator(inputs.select(rows).to_list()).items()}
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            first = encoder(**batch).last_hidden_state[:, 0].float().cpu()
        if states is None:
            states = torch.empty(len(order), first.shape[1])
        states[torch.as_tensor(rows)] = first
    return states


def replay_is_faithful(model, dataset, collator):
    """Does the head on replayed first-token states give the real model's logits? (Not for last-token heads.)"""
    batch = {k: v.to(model.device) for k, v in collator(dataset.select(range(min(8, len(dataset))))
                                                          .select_columns(["input_ids", "attention_mask"]).to_list())
             .items()}
    model.eval()
    with torch.inference_mode():
        real = model(**batch).logits
        states = model.base_model(**batch).last_hidden_state[:, :1]
        with encoder_replayed(model):
            replayed = model(inputs_embeds=states).logits
    return torch.allclose(real, replayed, rtol=1e-3, atol=1e-4)


# ---------------------------------------------------------------- training

def precision_flags(precision):
    """bf16 where the GPU has it, else fp16 on a GPU, else fp32: never a flag that fails on a CPU."""
    if precision == "fp32" or not torch.cuda.is_available():
        return {}
    # bf16 means Ampere or later, which also has TF32 for whatever stays in float32
    return {"bf16": True, "tf32": True} if torch.cuda.is_bf16_supported() else {"fp16": True}


def make_trainer(model, lr, epochs, run_name, *, seed, train_dataset, eval_dataset, data_collator, cfg, run_dir,
                 tokenizer):
    """The one place a TrainingArguments and a Trainer are built."""
    # token ids are padded per batch in other processes, off the step's path; cached features need no collation.
    # On a CPU those processes would take cores from the training itself.
    collate = isinstance(train_dataset, datasets.Dataset) and torch.cuda.is_available()
    workers = cfg.dataloader_num_workers if collate else 0
    args = TrainingArguments(
        output_dir=str(run_dir / run_name),
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
        dataloader_num_workers=workers,
        dataloader_persistent_workers=workers > 0,
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


def head_only_run(model, cfg, seed, data, collator, make, log):
    """Train the head on the frozen encoder: on its features computed once (default), or running it every step."""
    trainable, frozen = set_encoder_trainable(model, False)
    log(f"head-only: {trainable:,} trainable parameters, {frozen:,} frozen")
    model.to(PartialState().device)  # the feature pass runs before any Trainer would move it
    record = {"trainable_parameters": trainable, "frozen_parameters": frozen, "feature_seconds": 0.0}
    train_args = dict(lr=cfg.learning_rate_headonly_finetune, epochs=cfg.epochs_headonly_finetune,
                      run_name=f"head_only_seed{seed}", seed=seed)
    cache = cfg.cache_encoder_features and replay_is_faithful(model, data["validation"], collator)
    if cfg.cache_encoder_features and not cache:
        log("this model's head reads more than the first token: the encoder runs at every step instead")
    if not cache:
        trainer = make(model, train_dataset=data["train"], eval_dataset=data["validation"], data_collator=collator,
                       **train_args)
        probs, outcome = train_and_predict(trainer, {split: data[split] for split in EVAL_SPLITS})
        return trainer, probs, {**record, **outcome}
    started = time.perf_counter()
    states = {split: FirstTokenStates(first_token_states(model, ds, collator, cfg.feature_batch_size,
                                                         autocast_dtype(cfg.precision)), ds["label"])
              for split, ds in data.items()}
    record["feature_seconds"] = time.perf_counter() - started
    log(f"encoder features of {sum(map(len, states.values())):,} examples in {record['feature_seconds']:.1f}s")
    with encoder_replayed(model):
        trainer = make(model, train_dataset=states["train"], eval_dataset=states["validation"],
                       data_collator=default_data_collator, **train_args)
        probs, outcome = train_and_predict(trainer, {split: states[split] for split in EVAL_SPLITS})
    return trainer, probs, {**record, **outcome}


def full_finetune_run(model, cfg, seed, data, collator, make, log):
    trainable, frozen = set_encoder_trainable(model, True)
    log(f"full fine-tune from the {cfg.full_finetune_init} model: {trainable:,} trainable parameters")
    trainer = make(model, cfg.learning_rate_full_finetune, cfg.epochs_full_finetune, f"full_finetune_seed{seed}",
                   seed=seed, train_dataset=data["train"], eval_dataset=data["validation"], data_collator=collator)
    probs, outcome = train_and_predict(trainer, {split: data[split] for split in EVAL_SPLITS})
    return trainer, probs, {"trainable_parameters": trainable, "frozen_parameters": frozen, "feature_seconds": 0.0,
                            **outcome}


def compare_once(cfg, seed, data, collator, make, run_dir, log):
    """Both runs for one seed: metrics, paired significance, predictions and curves."""
    runs, probs = {}, {}
    model = load_model(cfg, seed)
    for run_name, title, train_run in (("head_only", "head-only", head_only_run),
                                       ("full_finetune", "full fine-tune", full_finetune_run)):
        log(f"\n=== {title} (seed {seed}) ===")
        if run_name == "full_finetune" and cfg.full_finetune_init == "pretrained":
            model = load_model(cfg, seed)
        trainer, probs[run_name], runs[run_name] = train_run(model, cfg, seed, data, collator, make, log)
        if cfg.save_models:  # after the run: the head-only model is whole again, its real encoder back in place
            trainer.save_model(str(run_dir / f"{run_name}_seed{seed}"))

    for run in RUNS:
        for split in EVAL_SPLITS:
            runs[run][split] = stats.classification_metrics(data[split]["label"], probs[run][split] > 0.5)
    result = {"seed": seed, "runs": runs,
              "delta": stats.metric_delta(runs["head_only"]["test"], runs["full_finetune"]["test"]),
              "delta_validation": stats.metric_delta(runs["head_only"]["validation"],
                                                     runs["full_finetune"]["validation"]),
              "significance": {split: stats.paired_significance(data[split]["label"], probs["head_only"][split] > 0.5,
                                                                probs["full_finetune"][split] > 0.5,
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
    leakage = inside_fractions(splits["train"]["sentence"],
                               {split: splits[split]["sentence"] for split in EVAL_SPLITS})
    return splits, leakage


def tokenize_for_training(splits, tokenizer, max_length):
    tokenized = tokenize(splits, tokenizer, max_length)
    # predict in length order: batches of similar lengths pad less; outputs stay aligned with these rows
    for split in EVAL_SPLITS:
        tokenized[split] = tokenized[split].select(np.argsort(tokenized[split]["length"], kind="stable"))
    return tokenized


def majority_accuracy(train, split):
    """Accuracy of always predicting the training set's most common label."""
    majority = np.bincount(train["label"], minlength=2).argmax()
    return float(np.mean(np.asarray(split["label"]) == majority))


def class_balance(data):
    """The notebook's question: is accuracy a fair metric on this data?"""
    counts = np.bincount(data["train"]["label"], minlength=2)
    return {"train_label_counts": dict(zip(stats.LABEL_NAMES, counts.tolist())),
            "train_label_shares": dict(zip(stats.LABEL_NAMES, (counts / counts.sum()).round(4).tolist())),
            "majority_class_accuracy_test": majority_accuracy(data["train"], data["test"])}


def print_class_balance(balance, log):
    shares = balance["train_label_shares"]
    log("train labels: " + ", ".join(f"{k} {balance['train_label_counts'][k]:,} ({100 * v:.1f}%)"
                                     for k, v in shares.items()))
    majority = balance["majority_class_accuracy_test"]
    log(f"always predicting the majority class scores {100 * majority:.1f}% on test. The classes are "
        f"{'close to balanced' if max(shares.values()) < 0.6 else 'imbalanced'}, so accuracy is meaningful once "
        f"read against that {100 * majority:.1f}% floor; F1 of 'positive' and macro-F1 are reported beside it.")


def print_run(name, run, leakage, log):
    for split in EVAL_SPLITS:
        m = run[split]
        seen = f"  ({100 * leakage[split]:.1f}% of these items are phrases of training items)"
        log(f"\n{name} on {split}: accuracy {m['accuracy']:.4f}  F1 {m['f1']:.4f}  macro-F1 {m['macro_f1']:.4f}{seen}")
        (tn, fp), (fn, tp) = m["confusion_matrix"]
        log(f"confusion (rows true, cols predicted):  neg [{tn:5d} {fp:5d}]   pos [{fn:5d} {tp:5d}]")
        log(m["report"])


def print_comparison(result, leakage, log):
    runs, sig = result["runs"], result["significance"]
    log(f"{'':22}{'head-only':>10}{'full':>10}{'delta (points)':>16}{'relative':>10}")
    for split, delta in (("test", result["delta"]), ("validation", result["delta_validation"])):
        h, f = runs["head_only"][split], runs["full_finetune"][split]
        log(f"{split + ' accuracy':22}{h['accuracy']:10.4f}{f['accuracy']:10.4f}{100 * delta['accuracy']:+16.2f}"
            f"{delta['accuracy_relative_pct']:+9.1f}%")
        log(f"{split + ' F1':22}{h['f1']:10.4f}{f['f1']:10.4f}{100 * delta['f1']:+16.2f}")
    log("")
    for split in EVAL_SPLITS:
        s = sig[split]
        lo, hi = (100 * x for x in s["delta_accuracy_ci95"])
        log(f"{split}: accuracy delta 95% CI [{lo:+.2f}, {hi:+.2f}] points, McNemar p = {s['mcnemar_p']:.2g} "
            f"(head-only right & full wrong: {s['discordant'][0]}, the reverse: {s['discordant'][1]})")
    log("\n" + conclusion(result, leakage))


def print_summary(summary, log):
    log("\nover seeds (mean +- std):")
    for run_name in RUNS:
        for split in EVAL_SPLITS:
            m = summary[run_name][split]
            log(f"  {run_name:14} {split:10} accuracy {m['accuracy']['mean']:.4f} +- {m['accuracy']['std']:.4f}"
                f"  F1 {m['f1']['mean']:.4f} +- {m['f1']['std']:.4f}")
    for key, split in (("delta", "test"), ("delta_validation", "validation")):
        d = summary[key]["accuracy"]
        log(f"  delta {split:10} {100 * d['mean']:+.2f} +- {100 * d['std']:.2f} points")


def conclusion(result, leakage):
    """Plain sentences that claim no more than the interval and the test support."""
    sentences = []
    for split, delta, label in (("validation", result["delta_validation"], "GLUE validation"),
                                ("test", result["delta"], "the re-split test set")):
        s = result["significance"][split]
        lo, hi = (100 * x for x in s["delta_accuracy_ci95"])
        points = 100 * delta["accuracy"]
        if lo > 0 or hi < 0:
            verdict = f"full fine-tuning {'beats' if points > 0 else 'trails'} head-only by {abs(points):.1f} points"
        else:
            verdict = f"the difference of {points:+.1f} points is not distinguishable from zero"
        leak = f", {100 * leakage[split]:.0f}% of whose items are phrases seen in training" if leakage[split] > 0.05 else ""
        sentences.append(f"On {label}{leak}, {verdict} (95% CI {lo:+.1f} to {hi:+.1f}, McNemar p = {s['mcnemar_p']:.2g}).")
    if leakage["test"] > 0.05:
        sentences.append("The test score rewards memorised phrases; trust GLUE validation, or use --split grouped.")
    return " ".join(sentences)


def environment():
    import accelerate, sklearn  # noqa: E401 - versions only
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "datasets": datasets.__version__, "accelerate": accelerate.__version__, "scikit-learn": sklearn.__version__,
            "device": gpu or f"cpu ({platform.processor() or platform.machine()})",
            "processes": PartialState().num_processes}


def write_atomic(path, write):
    """Write through a temporary file and rename: an interrupted run never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def predictions_frame(data, per_seed_probs):
    frames = []
    for seed, probs in per_seed_probs:
        frame = pd.DataFrame({"seed": seed, "idx": data["test"]["idx"], "sentence": data["test"]["sentence"],
                              "label": data["test"]["label"]})
        for run in RUNS:
            frame[f"{run}_pred"] = (probs[run]["test"] > 0.5).astype(int)
            frame[f"{run}_prob_pos"] = probs[run]["test"].round(6)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


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
    balance = class_balance(data)
    print_class_balance(balance, log)
    log(f"leakage: {100 * leakage['test']:.1f}% of test items and {100 * leakage['validation']:.1f}% of validation "
        "items are word-for-word phrases of training items; scores on such items reward memorising.")
    run_dir = broadcast_object_list([new_run_dir(cfg.output_dir) if state.is_main_process else None])[0]
    log(f"results go to {run_dir}")
    if not torch.cuda.is_available():
        log("warning: no GPU; a full run is slow on a CPU. Try --subset_fraction 0.05 for a quick look.")
    log(f"device: {environment()['device']}, precision: {next(iter(precision_flags(cfg.precision)), 'fp32')}, "
        f"processes: {state.num_processes}")
    timings["data"] = time.perf_counter() - started

    collator = DataCollatorWithPadding(tokenizer)
    make = partial(make_trainer, cfg=cfg, run_dir=run_dir, tokenizer=tokenizer)
    per_seed, per_seed_probs = [], []
    for seed in range(cfg.seed, cfg.seed + cfg.num_seeds):
        stage = time.perf_counter()
        result, probs = compare_once(cfg, seed, data, collator, make, run_dir, log)
        timings[f"seed{seed}"] = time.perf_counter() - stage
        per_seed.append(result)
        per_seed_probs.append((seed, probs))

    if not state.is_main_process:
        return run_dir
    stage = time.perf_counter()
    log("\n=== report ===")
    first = per_seed[0]
    for run_name in RUNS:
        print_run(run_name, first["runs"][run_name], leakage, log)
    print_comparison(first, leakage, log)
    results = {"config": dataclasses.asdict(cfg), "class_balance": balance,
               "sizes": {name: len(ds) for name, ds in data.items()},
               "leakage": {"test_items_inside_train_fraction": leakage["test"],
                           "validation_items_inside_train_fraction": leakage["validation"]},
               **{k: first[k] for k in ("runs", "delta", "delta_validation", "significance")}}
    if cfg.num_seeds > 1:
        results["seeds"] = per_seed
        results["summary"] = stats.summarize_seeds(per_seed)
        print_summary(results["summary"], log)
    figures = plots.save_figures(per_seed, {split: majority_accuracy(data["train"], data[split]) for split in EVAL_SPLITS},
                                 run_dir)
    write_atomic(run_dir / "predictions.csv", lambda p: predictions_frame(data, per_seed_probs).to_csv(p, index=False))
    timings["report"] = time.perf_counter() - stage
    timings["total"] = time.perf_counter() - started
    results.update(timings_seconds=timings, environment=environment())
    write_atomic(run_dir / "results.json", lambda p: p.write_text(json.dumps(results, indent=2)))
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
