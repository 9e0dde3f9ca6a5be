"""The command line over config.py's Config: every field is a flag of the same name, explained by
--help with the words below (a field without any is still a flag), and one line for a mistake."""

import argparse
import dataclasses
import difflib

from transformers import HfArgumentParser

from sst2kit.errors import UsageError

HELP = {
    "model_name": "hub id or local model folder",
    "max_length": "tokens; longer sentences are truncated",
    "allow_pickled_weights": "load a local model that has only pickled (.bin) weights, which can "
    "run code",
    "per_device_train_batch_size": "examples per step and device",
    "per_device_eval_batch_size": "examples per prediction batch",
    "epochs_head_only": "passes over train, head-only run",
    "epochs_full_finetune": "passes over train, full fine-tune",
    "learning_rate_head_only": "peak AdamW learning rate, head-only run",
    "learning_rate_full_finetune": "peak AdamW learning rate, full fine-tune",
    "weight_decay": "AdamW weight decay",
    "warmup_ratio": "share of the steps with a linear warm-up",
    "select_best_epoch": "end each run at its epoch of lowest validation loss, as the notebook's "
    "load_best_model_at_end did (weights kept in memory, not on disk); off by default because "
    "choosing on validation and then reporting validation flatters the result",
    "full_finetune_init": "head_only: continue from the trained head-only model (the notebook); "
    "pretrained: from a fresh pretrained model",
    "data_dir": "folder with train and validation files (parquet/csv/tsv/jsonl); unset: hub",
    "test_size": "share of GLUE train held out as the test set",
    "split": "random: the notebook's split; grouped: no test item is a phrase of a training item",
    "subset_fraction": "keep this seeded share of each split (quick runs)",
    "seed": "the split, subsets, head initialisation, data order",
    "external_test_file": "a labelled file (parquet/csv/tsv/jsonl, columns sentence and label 0/1) "
    "of whole sentences outside GLUE train and validation, such as the official SST-2 test "
    "sentences with their labels: both runs are also scored on it, as the split external_test",
    "train_sizes": "a learning curve: both runs at each of these training-set sizes (counts, "
    "shares such as 10%%, or all; e.g. 500,2000,10%%,all) on nested subsets, every size scored on "
    "the whole evaluation sets (docs/learning-curve.md)",
    "min_steps_head_only": "on a learning curve, a size's head-only run trains for at least this "
    "many optimizer steps (whole epochs added)",
    "min_steps_full_finetune": "the same for the full fine-tune",
    "num_seeds": "repeat both runs for seeds seed, seed+1, ...",
    "bootstrap_resamples": "for the 95%% interval of the accuracy delta",
    "probe_reference": "also fit the best linear probe (cross-validated logistic regression) on "
    "the cached frozen-encoder features, as a reference beside the notebook's head-only run",
    "cache_encoder_features": "head-only trains its head on frozen-encoder features computed once "
    "(encoder dropout off); False: the encoder runs every step with its dropout on, as in the "
    "notebook",
    "precision": "auto: TF32 matmuls on Ampere and newer GPUs, fp16 autocast on older tensor-core "
    "GPUs (V100, T4), fp32 elsewhere",
    "cuda_graphs": "replay each training step's forward and backward as a captured CUDA graph, one "
    "per padded length (GPU only; no compiler)",
    "pad_to_multiple_of": "pad batches to a multiple of this many tokens: a few shapes for the "
    "CUDA graphs; 1 pads to each batch's longest, as the notebook",
    "feature_batch_size": "batch of the one feature pass (no gradients, so larger is faster)",
    "parallel": "under torchrun with several processes: seeds: each process trains whole seeds "
    "alone (the single-GPU recipe); data: every process trains every run on a shard of each batch "
    "(effective batch x processes); auto: seeds when there are several seeds (or curve sizes), "
    "else data",
    "dataloader_num_workers": "processes that prepare batches; batches are slices of tensors, so 0 "
    "is fastest",
    "output_dir": "each run writes a new timestamped folder here",
    "save_models": "keep each run's final model (one per run)",
    "verbose": "also print the Trainer's log lines (always in the run's trainer_log.jsonl)",
    "resume": "a stopped run's folder (or latest: the newest under output_dir) to go on with: its "
    "finished seeds are kept, the missing ones trained; under Slurm a requeued job resumes its own",
    "report_to": "trackers the Trainer logs each run to (tensorboard: into the run folder)",
}
# flags kept from the notebook's names: they still parse, but --help lists the current ones alone
ALIASES = {
    "epochs_head_only": ["--epochs_headonly_finetune"],
    "learning_rate_head_only": ["--learning_rate_headonly_finetune"],
}
DESCRIPTION = (
    "Head-only vs full fine-tune on GLUE SST-2. Every field's default lives in config.py; any can "
    "be overridden here."
)


def flags_given(argv):
    """The settings named on this command line (old names and --no_X as their fields)."""
    old_names = {alias[2:]: name for name, aliases in ALIASES.items() for alias in aliases}
    given = set()
    for token in argv:
        if token.startswith("--"):
            name = token[2:].split("=", 1)[0].replace("-", "_")
            name = old_names.get(name, name)
            given.add(name.removeprefix("no_") if name.startswith("no_") else name)
    return given


def seed_range(cfg):
    """The seeds of the experiment: seed, seed + 1, ..., num_seeds of them."""
    return range(cfg.seed, cfg.seed + cfg.num_seeds)


def explained(config_class):
    """config_class's fields again, each with its help text and aliases, for HfArgumentParser."""
    return dataclasses.make_dataclass(
        config_class.__name__,
        [
            (
                f.name,
                f.type,
                dataclasses.field(
                    default=f.default,
                    metadata={"help": HELP.get(f.name, ""), "aliases": ALIASES.get(f.name, [])},
                ),
            )
            for f in dataclasses.fields(config_class)
        ],
    )


class ConfigParser(HfArgumentParser):
    """HfArgumentParser with a --help that reads right: each setting once, with its type and default
    (a boolean's --no_X twin works but is not listed again with the positive flag's help)."""

    TYPE_NAMES = {int: "INT", float: "FLOAT", str: "TEXT"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for action in self._actions:
            # HfArgumentParser also accepts --model-name for --model_name, and a field's old names
            # (ALIASES): they parse, but each setting is listed once, under its current name
            listed = [flag for flag in action.option_strings if "-" not in flag[2:]]
            if action.dest in ALIASES:
                listed = listed[:1]
            action.option_strings = listed or action.option_strings
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


def parse_config(config_class, argv=None):
    """config_class's defaults, overridden by any `--field value` on the command line."""
    parser = ConfigParser(explained(config_class), allow_abbrev=False, description=DESCRIPTION)
    parsed, unknown = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True)
    if unknown:
        flags = [a[2:] for a in parser._option_string_actions if a.startswith("--")]
        guess = difflib.get_close_matches(unknown[0].lstrip("-").split("=")[0], flags, n=1)
        hint = f": did you mean --{guess[0]}?" if guess else ": see --help for the fields"
        raise UsageError(f"unknown option {unknown[0]}{hint}")
    return config_class(**vars(parsed))
