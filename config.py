"""Every knob of the experiment, and the parser that lets the command line override any of them.

The training hyperparameters default to the course notebook's. The speed settings default to this
project's fast path (cached frozen-encoder features, CUDA graphs, TF32 where the GPU has it); the
notebook's behaviour is one field away for each. Edit the defaults here, or override any field for
one run on the command line with the same name: `python sst2_compare.py --subset_fraction 0.05
--epochs_full_finetune 3`.
"""

import argparse
import difflib
from dataclasses import dataclass, field
from typing import Literal, Optional

from transformers import HfArgumentParser

from sst2kit.errors import UsageError


@dataclass
class Config:
    # model: a hub id, or a local folder (offline use)
    model_name: str = field(
        default="distilbert-base-uncased", metadata={"help": "hub id or local model folder"}
    )
    max_length: int = field(
        default=128, metadata={"help": "tokens; longer sentences are truncated"}
    )
    allow_pickled_weights: bool = field(
        default=False,
        metadata={
            "help": "load a local model that has only pickled (.bin) weights, which can run code"
        },
    )

    # training: the notebook's hyperparameters
    per_device_train_batch_size: int = field(
        default=32, metadata={"help": "examples per step and device"}
    )
    per_device_eval_batch_size: int = field(
        default=64, metadata={"help": "examples per prediction batch"}
    )
    epochs_head_only: float = field(
        default=2,
        metadata={
            "help": "passes over train, head-only run (old name: --epochs_headonly_finetune)",
            "aliases": ["--epochs_headonly_finetune"],
        },
    )
    epochs_full_finetune: float = field(
        default=2, metadata={"help": "passes over train, full fine-tune"}
    )
    learning_rate_head_only: float = field(
        default=5e-4,
        metadata={
            "help": "peak AdamW learning rate, head-only run "
            "(old name: --learning_rate_headonly_finetune)",
            "aliases": ["--learning_rate_headonly_finetune"],
        },
    )
    learning_rate_full_finetune: float = field(
        default=2e-5, metadata={"help": "peak AdamW learning rate, full fine-tune"}
    )
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    warmup_ratio: float = field(
        default=0.06, metadata={"help": "share of the steps with a linear warm-up"}
    )
    select_best_epoch: bool = field(
        default=False,
        metadata={
            "help": "end each run at its epoch of lowest validation loss, as the notebook's "
            "load_best_model_at_end did (weights kept in memory, not on disk); off by default "
            "because choosing on validation and then reporting validation flatters the result"
        },
    )
    full_finetune_init: Literal["head_only", "pretrained"] = field(
        default="head_only",
        metadata={
            "help": "head_only: continue from the trained head-only model (the notebook); "
            "pretrained: from a fresh pretrained model"
        },
    )

    # data
    data_dir: Optional[str] = field(
        default=None,
        metadata={
            "help": "folder with train and validation files (parquet/csv/tsv/jsonl); unset: hub"
        },
    )
    test_size: float = field(
        default=0.1, metadata={"help": "share of GLUE train held out as the test set"}
    )
    split: Literal["random", "grouped"] = field(
        default="random",
        metadata={
            "help": "random: the notebook's split; grouped: no test item is a phrase of a training "
            "item"
        },
    )
    subset_fraction: Optional[float] = field(
        default=None, metadata={"help": "keep this seeded share of each split (quick runs)"}
    )
    seed: int = field(
        default=42, metadata={"help": "the split, subsets, head initialisation, data order"}
    )
    external_test_file: Optional[str] = field(
        default=None,
        metadata={
            "help": "a labelled file (parquet/csv/tsv/jsonl, columns sentence and label 0/1) of "
            "whole "
            "sentences outside GLUE train and validation, such as the official SST-2 test "
            "sentences with "
            "their labels: both runs are also scored on it, as the split external_test"
        },
    )

    # statistics
    num_seeds: int = field(
        default=1, metadata={"help": "repeat both runs for seeds seed, seed+1, ..."}
    )
    bootstrap_resamples: int = field(
        default=10_000, metadata={"help": "for the 95%% interval of the accuracy delta"}
    )
    probe_reference: bool = field(
        default=True,
        metadata={
            "help": "also fit the best linear probe (cross-validated logistic regression) on the "
            "cached "
            "frozen-encoder features, as a reference beside the notebook's head-only run"
        },
    )

    # speed: the defaults are the fast path; the notebook's behaviour is one field away for each
    cache_encoder_features: bool = field(
        default=True,
        metadata={
            "help": "head-only trains its head on frozen-encoder features computed once (encoder "
            "dropout "
            "off); False: the encoder runs every step with its dropout on, as in the notebook"
        },
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = field(
        default="auto",
        metadata={
            "help": "auto: TF32 matmuls on Ampere and newer GPUs, fp16 autocast on older "
            "tensor-core GPUs (V100, T4), fp32 elsewhere"
        },
    )
    cuda_graphs: bool = field(
        default=True,
        metadata={
            "help": "replay each training step's forward and backward as a captured CUDA graph, "
            "one per padded length (GPU only; no compiler)"
        },
    )
    pad_to_multiple_of: int = field(
        default=32,
        metadata={
            "help": "pad batches to a multiple of this many tokens: a few shapes for the CUDA "
            "graphs; 1 pads to each batch's longest, as the notebook"
        },
    )
    feature_batch_size: int = field(
        default=1024,
        metadata={"help": "batch of the one feature pass (no gradients, so larger is faster)"},
    )
    parallel: Literal["auto", "seeds", "data"] = field(
        default="auto",
        metadata={
            "help": "under torchrun with several processes: seeds: each process trains whole seeds "
            "alone (the "
            "single-GPU recipe); data: every process trains every run on a shard of each batch "
            "(effective batch x processes); auto: seeds when num_seeds > 1, else data"
        },
    )
    dataloader_num_workers: int = field(
        default=0,
        metadata={
            "help": "processes that prepare batches; batches are slices of tensors, so 0 is fastest"
        },
    )

    # output
    output_dir: str = field(
        default="checkpoints_sst2",
        metadata={"help": "each run writes a new timestamped folder here"},
    )
    save_models: bool = field(
        default=True, metadata={"help": "keep each run's final model (one per run)"}
    )
    verbose: bool = field(
        default=False,
        metadata={
            "help": "also print the Trainer's log lines (always in the run's trainer_log.jsonl)"
        },
    )
    resume: Optional[str] = field(
        default=None,
        metadata={
            "help": "a stopped run's folder (or latest: the newest under output_dir) to go on "
            "with: its "
            "finished seeds are kept, the missing ones trained; under Slurm a requeued job resumes "
            "its own"
        },
    )
    report_to: Literal["none", "tensorboard", "mlflow", "wandb", "all"] = field(
        default="none",
        metadata={
            "help": "trackers the Trainer logs each run to (tensorboard: into the run folder)"
        },
    )


class ConfigParser(HfArgumentParser):
    """HfArgumentParser over Config, with a --help that reads right: each setting once, with its
    type and default (a boolean's --no_X twin works but is not listed again with the positive flag's
    help)."""

    TYPE_NAMES = {int: "INT", float: "FLOAT", str: "TEXT"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for action in self._actions:
            # HfArgumentParser also accepts --model-name for --model_name: it still parses, but is
            # listed once
            action.option_strings = [
                flag for flag in action.option_strings if "-" not in flag[2:]
            ] or action.option_strings
            if action.option_strings and action.option_strings[0].startswith("--no_"):
                action.help = argparse.SUPPRESS
            elif action.nargs == "?" and action.const is True:  # a boolean setting
                action.metavar = "true|false"
                if action.default is True:
                    action.help += f" (or --no_{action.dest})"
            elif action.choices is None and action.type in self.TYPE_NAMES:
                action.metavar = self.TYPE_NAMES[action.type]

    def error(self, message):  # argparse would print the whole usage; one line says more
        raise UsageError(f"{message} (see --help)")


def parse_config(argv=None):
    """Config's defaults, overridden by any `--field value` on the command line."""
    parser = ConfigParser(
        Config,
        allow_abbrev=False,
        description="Head-only vs full fine-tune on GLUE SST-2. "
        "Every field's default lives in config.py; any can be overridden here.",
    )
    cfg, unknown = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True)
    if unknown:
        flags = [a[2:] for a in parser._option_string_actions if a.startswith("--")]
        guess = difflib.get_close_matches(unknown[0].lstrip("-").split("=")[0], flags, n=1)
        hint = f": did you mean --{guess[0]}?" if guess else ": see --help for the fields"
        raise UsageError(f"unknown option {unknown[0]}{hint}")
    return cfg
