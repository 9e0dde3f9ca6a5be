"""Bad input, found before the run folder exists: this module runs every check in order and owns
those of the config and the output folder; the model's live in models.py (load_checked_model: the
run's one load of it), the data files' in data.py (read_labelled, check_external_test_file). What
needs the data loaded (its rows, the training's cost) is checked in the data stage, still before
anything is written. Each problem is one line naming the fix."""

import ast
import difflib
import errno
import functools
import math
import random
import tempfile
import time
from pathlib import Path

from huggingface_hub import constants as hub_constants
from huggingface_hub import get_session

from sst2kit import processes
from sst2kit.console import say
from sst2kit.curve import parse_train_sizes
from sst2kit.data import check_data_dir, check_external_test_file
from sst2kit.errors import UsageError
from sst2kit.models import check_model_path
from sst2kit.names import RUNS
from sst2kit.settings import seed_range
from sst2kit.significance import MAX_RESAMPLES, MIN_RESAMPLES
from sst2kit.startup import field_types, type_problem
from sst2kit.trackers import check_trackers

SEED_LIMIT = 2**32  # numpy's seeding, which set_seed calls, takes seeds in [0, 2**32)
# Cost bounds, far above any sensible run: a value past them is a typo that would otherwise run for
# days.
MAX_EPOCHS = 100
MAX_MIN_STEPS = 100_000  # a learning curve's floor of optimizer steps per run
MAX_SEEDS = 100
MAX_TRAINING_STEPS = 2_000_000  # both runs, every seed: about four days at 6 ms a step
# rows per training step: past this no GPU holds a step of any encoder here
MAX_TRAIN_BATCH = 65_536
MAX_LENGTH = 1_000_000  # tokens; the model's own position limit is checked once it is loaded
MAX_WORKERS = 256
# rows per prediction batch; far above what any GPU's memory holds for a 128-token encoder
MAX_EVAL_BATCH = 65_536


@functools.cache  # the code does not change while it runs: parsed once per process, not per run
def fields_read():
    """Every `cfg.<field>` (or `<anything>.cfg.<field>`) the script and the package read. A field
    config.py declares beyond these would be silently ignored (a misspelt or invented name); one it
    lacks would fail mid-run."""
    package = Path(__file__).resolve().parent
    read = set()
    for source in [*package.glob("*.py"), package.parent / "sst2_compare.py"]:
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and is_the_config(node.value):
                read.add(node.attr)
    return read


def is_the_config(node):
    """`cfg`, or an object's `.cfg` (experiment.cfg, results.cfg)."""
    if isinstance(node, ast.Name):
        return node.id == "cfg"
    return isinstance(node, ast.Attribute) and node.attr == "cfg"


def check_inputs(cfg):
    """Every check that needs neither the data nor the model loaded: the config's values, the output
    folder, the external file, the data files, the model's path, the hub, the trackers."""
    check_config(cfg)
    check_trackers(cfg.report_to)
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
    check_data_dir(cfg.data_dir)
    check_model_path(cfg)  # a missing local folder is said as such, before any talk of the hub
    check_hub(cfg)


def check_config_fields(cfg):
    """config.py's fields are the ones the experiment reads, each of its declared type."""
    fields = field_types(type(cfg))
    for name in vars(type(cfg)):
        if not name.startswith("_") and name not in fields:
            guess = difflib.get_close_matches(name, fields, n=1)
            raise UsageError(
                f"config.py sets {name}, which is not a field"
                + (f": did you mean {guess[0]}?" if guess else "")
            )
    read = fields_read()
    unread, missing = sorted(set(fields) - read), sorted(read - set(fields))
    if unread:
        guess = difflib.get_close_matches(unread[0], missing, n=1)
        raise UsageError(
            f"config.py declares {unread[0]}, which this experiment never reads: a misspelt or "
            "invented "
            "field; " + (f"did you mean {guess[0]}?" if guess else "remove it, or fix its name")
        )
    if missing:
        raise UsageError(
            f"config.py lacks the field {missing[0]}: put it back (see --help for every field)"
        )
    problem = type_problem(cfg)
    if problem:
        raise UsageError(problem)


def percent_hint(value):
    """'; for 5% use 0.05' when a share in (0, 1] was likely typed as a percentage."""
    return f"; for {value:g}% use {value / 100:g}" if 1 < value <= 100 else ""


def check_config(cfg):
    """Unknown names, wrong types and out-of-range values, each named with the value given and the
    fix."""
    check_config_fields(cfg)
    for name in field_types(type(cfg)):
        value = getattr(cfg, name)
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(
                f"{name} must be a finite number, not {value}: change it in config.py or on the "
                "command line"
            )
    check_curve_settings(cfg)
    for holds, name, requirement, hint in [
        *training_rules(cfg),
        *data_rules(cfg),
        *speed_and_output_rules(cfg),
    ]:
        if not holds:
            raise UsageError(
                f"{name} must be {requirement}, got {getattr(cfg, name)!r}{hint}: change it in "
                "config.py or on the command line"
            )


def check_curve_settings(cfg):
    """train_sizes written as sizes, and not beside the settings a learning curve cannot honour."""
    if not cfg.train_sizes:
        return
    parse_train_sizes(cfg.train_sizes)
    if cfg.subset_fraction is not None:
        raise UsageError(
            "train_sizes and subset_fraction both shrink the training set, and subset_fraction "
            "the evaluation sets too: leave subset_fraction unset for a learning curve"
        )


def training_rules(cfg):
    """(holds, the field, what it must be, a hint at the likely intent) for the training values."""
    largest_rate = max(cfg.learning_rate_head_only, cfg.learning_rate_full_finetune)
    train_batch, eval_batch = (
        f"in [1, {MAX_TRAIN_BATCH:,}]",
        f"in [1, {MAX_EVAL_BATCH:,}]",
    )
    epochs, steps = f"in (0, {MAX_EPOCHS}]", f"in [0, {MAX_MIN_STEPS:,}]"
    return [
        (cfg.learning_rate_head_only > 0, "learning_rate_head_only", "> 0", ""),
        (cfg.learning_rate_full_finetune > 0, "learning_rate_full_finetune", "> 0", ""),
        (
            0 < cfg.per_device_train_batch_size <= MAX_TRAIN_BATCH,
            "per_device_train_batch_size",
            train_batch,
            "",
        ),
        (
            0 < cfg.per_device_eval_batch_size <= MAX_EVAL_BATCH,
            "per_device_eval_batch_size",
            eval_batch,
            "",
        ),
        (0 < cfg.feature_batch_size <= MAX_EVAL_BATCH, "feature_batch_size", eval_batch, ""),
        (0 < cfg.epochs_head_only <= MAX_EPOCHS, "epochs_head_only", epochs, ""),
        (0 < cfg.epochs_full_finetune <= MAX_EPOCHS, "epochs_full_finetune", epochs, ""),
        (cfg.weight_decay >= 0, "weight_decay", ">= 0", ""),
        (0 <= cfg.min_steps_head_only <= MAX_MIN_STEPS, "min_steps_head_only", steps, ""),
        (0 <= cfg.min_steps_full_finetune <= MAX_MIN_STEPS, "min_steps_full_finetune", steps, ""),
        # AdamW multiplies every weight by (1 - learning rate x weight decay) each step: at 1 or
        # more it zeroes or flips the weights, which would only show as a divergence after training
        (
            largest_rate * cfg.weight_decay < 1,
            "weight_decay",
            "such that weight decay x learning "
            "rate is below 1 (AdamW shrinks every weight by that share each step)",
            "",
        ),
        (0 <= cfg.warmup_ratio < 1, "warmup_ratio", "in [0, 1)", percent_hint(cfg.warmup_ratio)),
    ]


def data_rules(cfg):
    """The same for the data and statistics values."""
    fraction, last_seed = cfg.subset_fraction, seed_range(cfg)[-1]
    resamples = (
        f"in [{MIN_RESAMPLES:,}, {MAX_RESAMPLES:,}] (fewer cannot reach p < 0.05 after "
        "correction; more costs time and memory for nothing)"
    )
    return [
        (
            fraction is None or 0 < fraction <= 1,
            "subset_fraction",
            "in (0, 1], or unset",
            percent_hint(fraction or 0),
        ),
        (0 < cfg.test_size < 1, "test_size", "in (0, 1)", percent_hint(cfg.test_size)),
        (8 <= cfg.max_length <= MAX_LENGTH, "max_length", f"in [8, {MAX_LENGTH:,}] tokens", ""),
        (1 <= cfg.num_seeds <= MAX_SEEDS, "num_seeds", f"in [1, {MAX_SEEDS}]", ""),
        (
            0 <= cfg.seed and last_seed < SEED_LIMIT,
            "seed",
            f"such that seeds {cfg.seed}..{last_seed} lie in [0, {SEED_LIMIT})",
            "",
        ),
        (
            MIN_RESAMPLES <= cfg.bootstrap_resamples <= MAX_RESAMPLES,
            "bootstrap_resamples",
            resamples,
            "",
        ),
    ]


def speed_and_output_rules(cfg):
    """The same for the speed and output values."""
    return [
        (
            1 <= cfg.pad_to_multiple_of <= cfg.max_length,
            "pad_to_multiple_of",
            f"in [1, max_length ({cfg.max_length})]",
            "",
        ),
        (
            0 <= cfg.dataloader_num_workers <= MAX_WORKERS,
            "dataloader_num_workers",
            f"in [0, {MAX_WORKERS}]",
            "",
        ),
        (
            cfg.output_dir.strip() != "",
            "output_dir",
            "a folder's path, not empty text (the default is checkpoints_sst2)",
            "",
        ),
    ]


def check_output_dir(output_dir, attempts=10):
    """The output folder can really be made and written: made if missing, a probe folder made inside
    it and removed, then whatever the probe made is removed again. (Catches files in the way,
    read-only or virtual file systems, dangling or looping links, names too long.) Safe beside
    another run probing the same place: the probe's name is unique, a folder another run made or
    removed meanwhile is looked at again, and clean-up never raises."""
    path, reason = Path(output_dir), None
    for _ in range(attempts):
        made = []
        try:
            make_folders(path, made)
            Path(tempfile.mkdtemp(dir=path, prefix=".write-probe-")).rmdir()
            return
        except FileNotFoundError as err:  # a folder on the way vanished (another run cleaned up):
            # look again, after a random pause so two runs cleaning up in step fall out of step
            reason = err.strerror
            time.sleep(random.uniform(0, 0.01))
        except (OSError, RuntimeError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            break
        finally:
            for folder in reversed(made):
                remove_when_empty(folder)
    raise UsageError(
        f"output_dir {output_dir} cannot be written ({reason}): pick another --output_dir"
    )


def make_folders(path, made):
    """path and the folders above it made where missing, each one made listed in made."""
    for folder in [*reversed(path.parents), path]:
        if folder.is_dir():
            continue
        try:
            folder.mkdir()
            made.append(folder)
        except FileExistsError:  # made by another run a moment ago, or something else in the way
            if folder.is_dir():
                continue
            if not folder.exists() and not folder.is_symlink():  # made and removed meanwhile
                raise FileNotFoundError(errno.ENOENT, "a folder on the way vanished") from None
            raise


def remove_when_empty(folder, tries=50):
    """Remove a folder this probe made; if another run's probe is inside it for a moment, wait for
    that to go. Never raises: a folder still in use after that is left to the run using it."""
    for _ in range(tries):
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)


def check_hub(cfg):
    """Stop in seconds, not after minutes of retries, when the hub is needed and unreachable."""
    needs_hub = cfg.data_dir is None or not Path(cfg.model_name).is_dir()
    if not needs_hub or hub_constants.HF_HUB_OFFLINE:
        return
    try:
        get_session().head(hub_constants.ENDPOINT, timeout=5)
    except Exception as err:  # any transport failure means the same thing here
        model = (
            f"model_name {cfg.model_name}: no such folder, and "
            if not Path(cfg.model_name).is_dir()
            else ""
        )
        raise UsageError(
            f"{model}cannot reach the Hugging Face hub ({type(err).__name__}): run offline with "
            "local "
            "copies, e.g. --data_dir data/sst2 --model_name models/minilm-l6-h384-uncased (see the "
            "README), or set HF_HUB_OFFLINE=1 to use what is in the local cache"
        ) from None


def check_costs(cfg, eval_splits, *, train_rows, processes):
    """What the data decides, bounded before anything trains: the training steps, and the paired
    tests' time."""
    check_training_cost(cfg, train_rows, processes)
    check_statistics_cost(cfg, eval_splits)


def check_training_cost(cfg, train_rows, processes):
    """Both runs' optimizer steps over every seed, bounded before anything trains: the number and
    the bound; and a run whose every step falls in the warm-up (learning rate 0 at its first step)
    said before it trains."""
    steps_per_epoch = math.ceil(train_rows / (cfg.per_device_train_batch_size * processes))
    for run in RUNS:
        epochs = getattr(cfg, f"epochs_{run}")
        run_steps = math.ceil(steps_per_epoch * epochs)
        if run_steps <= math.ceil(cfg.warmup_ratio * run_steps):
            say(
                f"warning: --epochs_{run} {epochs:g} is {run_steps} step(s), all of it warm-up, "
                "which starts at "
                f"learning rate 0: the {run.replace('_', '-')} run will not train (and "
                "select_best_epoch would select untrained weights); give it more epochs"
            )
    steps = (
        math.ceil(steps_per_epoch * (cfg.epochs_head_only + cfg.epochs_full_finetune))
        * cfg.num_seeds
    )
    if steps > MAX_TRAINING_STEPS:
        raise UsageError(
            f"this run would take {steps:,} training steps ({train_rows:,} training rows, batch "
            f"{cfg.per_device_train_batch_size}, {cfg.epochs_head_only:g} + "
            f"{cfg.epochs_full_finetune:g} "
            f"epochs, {cfg.num_seeds} seed(s)), over the bound of {MAX_TRAINING_STEPS:,}: fewer "
            "epochs or seeds, or a larger batch"
        )


# The paired tests' cost: a resample of a split's units costs about 7 ns a unit for the interval and
# the permutation test together (measured: 10,000 resamples of the re-split test set's 4,363 units,
# 0.30 s, 2-core CPU), and each split carries up to about 7 such tests (the runs' comparison, the
# probe's two, the parts, the length buckets).
SECONDS_PER_UNIT_RESAMPLE = 7e-9
TESTS_PER_SPLIT = 7
MAX_STATISTICS_SECONDS = 3600


def check_statistics_cost(cfg, eval_splits):
    """The paired tests' time over every seed, estimated once the units are known and before
    anything trains: over an hour is refused, over a minute said."""
    units = sum(split.unit_count for split in eval_splits.values())
    seconds = (
        cfg.bootstrap_resamples
        * units
        * TESTS_PER_SPLIT
        * cfg.num_seeds
        * SECONDS_PER_UNIT_RESAMPLE
    )
    work = (
        f"{cfg.bootstrap_resamples:,} resamples x {units:,} units x about {TESTS_PER_SPLIT} tests "
        f"x {cfg.num_seeds} seed(s)"
    )
    if seconds > MAX_STATISTICS_SECONDS:
        raise UsageError(
            f"the paired tests would take about {seconds / 3600:.1f} hours ({work}), over the "
            "bound of "
            "one hour: lower bootstrap_resamples (10,000 is plenty for p-values down to 1e-4)"
        )
    if seconds > 60:
        say(f"note: the paired tests will take about {seconds / 60:.0f} minutes ({work})")
