"""Bad input, caught before anything is loaded or written: each problem is one line naming the fix."""
import difflib
import math
import re
import tempfile
import time
from pathlib import Path
from typing import Literal, NamedTuple, Union, get_args, get_origin, get_type_hints

from huggingface_hub import constants as hub_constants, get_session
from transformers import AutoConfig

from sst2kit import processes
from sst2kit.data import READERS
from sst2kit.errors import UsageError
from sst2kit.models import LOAD_ERRORS, load_model, load_tokenizer, model_not_found

SEED_LIMIT = 2**32  # numpy's seeding, which set_seed calls, takes seeds in [0, 2**32)
MAX_RESAMPLES = 10_000_000  # ~300 MB of bootstrap draws; far past where the interval stops moving
# Cost bounds, far above any sensible run: a value past them is a typo that would otherwise run for days.
MAX_EPOCHS = 100
MAX_SEEDS = 100
MAX_TRAINING_STEPS = 2_000_000  # both runs, every seed: about four days at 6 ms a step


def check_inputs(cfg):
    """Every check that needs no data loaded: the config's values, the output folder, the hub, the model.
    Returns the CheckedModel: the model and tokenizer as loaded and checked, which the run then uses (its weights
    and tokenizer are read once)."""
    check_config(cfg)
    problem = None
    if processes.is_main():  # one process probes the folder; the others learn its answer
        try:
            check_output_dir(cfg.output_dir)
        except UsageError as err:
            problem = str(err)
    problem = processes.from_main(problem)
    if problem:
        raise UsageError(problem)
    check_external_test_file(cfg.external_test_file)
    check_model_path(cfg)
    check_hub(cfg)
    return check_model(cfg)


def type_matches(value, annotation):
    """Is value of the field's declared type? (config.py edits bypass the command line's conversion)"""
    if get_origin(annotation) is Literal:
        return value in get_args(annotation)
    if get_origin(annotation) is Union:  # Optional[X]
        return any(type_matches(value, option) for option in get_args(annotation))
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


PROJECT = Path(__file__).resolve().parents[1]


def fields_read():
    """Every config field the experiment's code reads (as cfg.<field>): a field outside this set, even declared
    with a type in config.py, would be silently ignored."""
    sources = [PROJECT / "sst2_compare.py", *sorted((PROJECT / "sst2kit").glob("*.py"))]
    return {name for source in sources for name in re.findall(r"\bcfg\.(\w+)", source.read_text())}


def check_config(cfg):
    """Unknown names, wrong types and out-of-range values, each named with the fix."""
    fields = get_type_hints(type(cfg))  # not dataclasses.fields: HfArgumentParser rewrites their types in place
    for name in vars(type(cfg)):
        if not name.startswith("_") and name not in fields:
            guess = difflib.get_close_matches(name, fields, n=1)
            raise UsageError(f"config.py sets {name}, which is not a field" + (f": did you mean {guess[0]}?" if guess
                                                                               else ""))
    unread = sorted(set(fields) - fields_read())
    if unread:
        raise UsageError(f"config.py declares {unread[0]}, which this experiment never reads: a misspelt or invented "
                         "field; remove it, or fix its name")
    for name, annotation in fields.items():
        if not type_matches(getattr(cfg, name), annotation):
            raise UsageError(f"{name} = {getattr(cfg, name)!r} is not of type {annotation}: fix it in config.py")
    for name in fields:
        value = getattr(cfg, name)
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{name} must be a finite number, not {value}: change it in config.py or on the "
                             "command line")
    last_seed = cfg.seed + cfg.num_seeds - 1
    rules = [
        (cfg.learning_rate_head_only > 0, "learning_rate_head_only must be > 0"),
        (cfg.learning_rate_full_finetune > 0, "learning_rate_full_finetune must be > 0"),
        (cfg.per_device_train_batch_size > 0, "per_device_train_batch_size must be > 0"),
        (cfg.per_device_eval_batch_size > 0, "per_device_eval_batch_size must be > 0"),
        (cfg.feature_batch_size > 0, "feature_batch_size must be > 0"),
        (0 < cfg.epochs_head_only <= MAX_EPOCHS, f"epochs_head_only must be in (0, {MAX_EPOCHS}]"),
        (0 < cfg.epochs_full_finetune <= MAX_EPOCHS, f"epochs_full_finetune must be in (0, {MAX_EPOCHS}]"),
        (cfg.weight_decay >= 0, "weight_decay must be >= 0"),
        # AdamW multiplies every weight by (1 - learning rate x weight decay) each step: at 1 or more it zeroes or
        # flips the weights, which would only show as a divergence after training had run
        (max(cfg.learning_rate_head_only, cfg.learning_rate_full_finetune) * cfg.weight_decay < 1,
         "weight_decay x learning rate must be below 1 (AdamW shrinks every weight by that share each step)"),
        (0 <= cfg.warmup_ratio < 1, "warmup_ratio must be in [0, 1)"),
        (cfg.subset_fraction is None or 0 < cfg.subset_fraction <= 1, "subset_fraction must be in (0, 1], or unset"),
        (0 < cfg.test_size < 1, "test_size must be in (0, 1)"),
        (cfg.max_length >= 8, "max_length must be at least 8 tokens"),
        (1 <= cfg.num_seeds <= MAX_SEEDS, f"num_seeds must be in [1, {MAX_SEEDS}]"),
        (0 <= cfg.seed and last_seed < SEED_LIMIT, f"seeds {cfg.seed}..{last_seed} must lie in [0, {SEED_LIMIT})"),
        (100 <= cfg.bootstrap_resamples <= MAX_RESAMPLES,
         f"bootstrap_resamples must be in [100, {MAX_RESAMPLES:,}] (each resample costs memory)"),
        (cfg.pad_to_multiple_of >= 1, "pad_to_multiple_of must be >= 1"),
        (cfg.dataloader_num_workers >= 0, "dataloader_num_workers must be >= 0"),
    ]
    for ok, message in rules:
        if not ok:
            raise UsageError(f"{message}: change it in config.py or on the command line")


def check_output_dir(output_dir, attempts=3):
    """The output folder can really be made and written: made if missing, a probe folder made inside it and
    removed, then whatever the probe made is removed again. (Catches files in the way, read-only or virtual
    file systems, dangling or looping links, names too long.) Safe beside another run probing the same place:
    the probe's name is unique, a folder another run made or removed meanwhile is looked at again, and clean-up
    never raises."""
    path, reason = Path(output_dir), None
    for _ in range(attempts):
        made = []
        try:
            for folder in [*reversed(path.parents), path]:
                if not folder.is_dir():
                    try:
                        folder.mkdir()
                        made.append(folder)
                    except FileExistsError:  # made by another run a moment ago, or something else is in the way
                        if not folder.is_dir():
                            raise
            Path(tempfile.mkdtemp(dir=path, prefix=".write-probe-")).rmdir()
            return
        except FileNotFoundError as err:  # a folder on the way vanished (another run cleaned up): look again
            reason = err.strerror
        except (OSError, RuntimeError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            break
        finally:
            for folder in reversed(made):
                remove_when_empty(folder)
    raise UsageError(f"output_dir {output_dir} cannot be written ({reason}): pick another --output_dir")


def remove_when_empty(folder, tries=50):
    """Remove a folder this probe made; if another run's probe is inside it for a moment, wait for that to go.
    Never raises: a folder still in use after that is left to the run using it."""
    for _ in range(tries):
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)


def check_external_test_file(path):
    """The external test set names a file of a format the run reads (its rows are checked when it is read)."""
    if path is None:
        return
    if not Path(path).is_file():
        raise UsageError(f"external_test_file {path} is not a file: point it at a labelled file of sentences "
                         "(columns sentence and label), or leave it unset")
    if Path(path).suffix not in READERS:
        raise UsageError(f"external_test_file {path}: cannot read {Path(path).suffix or 'files without a suffix'}; "
                         f"save it as {', '.join(READERS)}")


def looks_like_a_path(name):
    """A model name a person meant as a local path (a hub id is 'org/name' or 'name')."""
    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or "\\" in name


def check_model_path(cfg):
    """A local model path that is not there says so, rather than 'cannot reach the hub'."""
    path = Path(cfg.model_name).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"model_name {cfg.model_name} is a file: point it at the model's folder (with config.json, "
                         "its weights and its tokenizer files)")
    if not path.exists() and looks_like_a_path(cfg.model_name):
        raise UsageError(f"model_name {cfg.model_name}: no such folder; check the path (or give a hub id such as "
                         "distilbert-base-uncased)")


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


class CheckedModel(NamedTuple):
    """What the model check loaded, kept for the run: its weights and tokenizer are read once."""
    model: object  # seeded with cfg.seed: the first seed's model
    tokenizer: object
    new_head_tensors: list  # the names of the tensors its load initialised afresh (the classification head's)


def check_model(cfg):
    """The model's name leads to a config whose limits fit the run, and to weights that are safe, whole and match
    that config. Returns the model (seeded with cfg.seed) and the names of its newly initialised (head) tensors."""
    folder = Path(cfg.model_name)
    if folder.is_dir() and not list(folder.glob("*.safetensors")) and not cfg.allow_pickled_weights:
        raise UsageError(f"{folder} has no .safetensors weights; pickled weights can run code when loaded: "
                         "convert them, or pass --allow_pickled_weights true if you trust the source")
    try:
        model_config = AutoConfig.from_pretrained(cfg.model_name, trust_remote_code=False)
    except LOAD_ERRORS as err:
        raise model_not_found(cfg, err) from None
    check_model_sizes(cfg, model_config)
    tokenizer = load_tokenizer(cfg)
    # corrupt, truncated, non-finite or mismatched weights are found now, not after the run folder exists
    model, fresh = load_model(cfg, cfg.seed)
    parameters = sum(p.numel() for p in model.parameters())
    if parameters > MAX_PARAMETERS:
        raise UsageError(f"{cfg.model_name} has {parameters:,} parameters, over this experiment's bound of "
                         f"{MAX_PARAMETERS:,}: pick a smaller model")
    return CheckedModel(model, tokenizer, fresh)


# Sane bounds on a model config's sizes: far above any encoder this experiment is for, far below what would take
# hours to build. A value outside them is a damaged or hand-edited config.json.
SIZE_BOUNDS = {"num_hidden_layers": 128, "n_layers": 128, "n_layer": 128, "hidden_size": 16_384, "dim": 16_384,
               "n_embd": 16_384, "intermediate_size": 65_536, "hidden_dim": 65_536, "num_attention_heads": 256,
               "n_heads": 256, "n_head": 256, "vocab_size": 1_000_000, "max_position_embeddings": 1_000_000,
               "n_positions": 1_000_000}
MAX_PARAMETERS = 2_000_000_000


def check_model_sizes(cfg, model_config):
    for name, bound in SIZE_BOUNDS.items():
        if name not in model_config.to_dict():
            continue
        value = getattr(model_config, name)
        if type(value) is not int or not 1 <= value <= bound:
            raise UsageError(f"{cfg.model_name}: config.json's {name} is {value!r}, not a whole number in "
                             f"[1, {bound:,}]: the config is damaged; use the one saved with the weights")
    limit = getattr(model_config, "max_position_embeddings", None)
    if limit is not None and cfg.max_length > limit:
        raise UsageError(f"max_length {cfg.max_length} exceeds what {cfg.model_name} supports ({limit}): lower it")


def check_training_cost(cfg, train_rows, processes):
    """Both runs' optimizer steps over every seed, bounded before anything trains: the number and the bound."""
    steps_per_epoch = math.ceil(train_rows / (cfg.per_device_train_batch_size * processes))
    steps = math.ceil(steps_per_epoch * (cfg.epochs_head_only + cfg.epochs_full_finetune)) * cfg.num_seeds
    if steps > MAX_TRAINING_STEPS:
        raise UsageError(f"this run would take {steps:,} training steps ({train_rows:,} training rows, batch "
                         f"{cfg.per_device_train_batch_size}, {cfg.epochs_head_only:g} + {cfg.epochs_full_finetune:g} "
                         f"epochs, {cfg.num_seeds} seed(s)), over the bound of {MAX_TRAINING_STEPS:,}: fewer epochs "
                         "or seeds, or a larger batch")
