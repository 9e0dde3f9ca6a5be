"""Going on with a stopped run: which folder (a path, 'latest', or the job's own after a scheduler
requeued it), what it recorded (every finished seed's comparison and predictions), and whether this
run may add to it (the same settings that shape the results, the same data, a seed range that still
holds every recorded seed). Everything here is checked before anything is written: a folder that
cannot be resumed is left untouched."""

import dataclasses
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sst2kit import processes
from sst2kit.comparison import SeedComparison
from sst2kit.console import say
from sst2kit.errors import UsageError
from sst2kit.names import RUNS
from sst2kit.records import FORMAT, RecordError, from_json
from sst2kit.settings import seed_range
from sst2kit.startup import field_types, type_matches, type_name
from sst2kit.trackers import trackers

# Settings that change no number of the results: where and how files are written, how fast, what is
# printed; and where the data lies (the data themselves are compared by their fingerprint, so a copy
# on another machine resumes). Every other field must equal the recorded one.
FREE_ON_RESUME = frozenset(
    {
        "output_dir",
        "save_models",
        "verbose",
        "resume",
        "report_to",
        "num_seeds",
        "feature_batch_size",
        "per_device_eval_batch_size",
        "dataloader_num_workers",
        "parallel",
        "data_dir",
        "external_test_file",
    }
)
REQUEUED = "SLURM_RESTART_COUNT"  # set by Slurm when it requeues a preempted job, 1 and up


@dataclass(frozen=True)
class StoppedRun:
    folder: Path
    record: dict  # its results.json
    per_seed: list  # its seeds' SeedComparisons, read back from results.json
    predictions: pd.DataFrame  # its predictions.csv
    # a learning curve's sizes but the largest: size -> (its SeedComparisons, its rows of
    # curve_predictions.csv); the largest size's are per_seed and predictions
    smaller_sizes: dict = dataclasses.field(default_factory=dict)

    @property
    def seeds(self):
        """The seeds recorded (on a learning curve, at its largest size)."""
        return [comparison.seed for comparison in self.per_seed]

    @property
    def every_seed(self):
        """Every seed recorded at any size."""
        found = {c.seed for per_seed, _ in self.smaller_sizes.values() for c in per_seed}
        return sorted(found | set(self.seeds))

    def restored(self, eval_splits, *, data, weights):
        """Its finished seeds as they were recorded: per size (None: the run's own, on a curve its
        largest size), their comparisons and their P(positive) per run and split, for this run's
        data and weights (refused when either differs: data and weights are their fingerprints)."""
        check_same_data(self, data)
        if self.record["weights_fingerprint"] != weights:
            raise UsageError(
                f"--resume {self.folder}: its seeds were trained from other weights than the model "
                "holds now (the weights' fingerprint differs: the model folder's files were "
                "replaced, or the hub's model changed): resume with the weights it used, or start "
                "a new run"
            )
        restored = {None: (self.per_seed, self.probs(self.predictions, self.seeds, eval_splits))}
        for size, (per_seed, rows) in self.smaller_sizes.items():
            seeds = [comparison.seed for comparison in per_seed]
            restored[size] = (per_seed, self.probs(rows, seeds, eval_splits, file=CURVE_FILE))
        return restored

    def probs(self, predictions, seeds, eval_splits, *, file="predictions.csv"):
        return recorded_probs(
            self.folder, predictions, seeds=seeds, eval_splits=eval_splits, file=file
        )


def folder_to_resume(cfg):
    """The run folder this run goes on with, or None for a new run: --resume PATH or latest; without
    it, the newest run folder under output_dir when a scheduler requeued this job
    (SLURM_RESTART_COUNT > 0)."""
    wanted = cfg.resume
    if wanted is None and restart_count() > 0:
        wanted = "latest" if newest_run(cfg.output_dir) else None
    if wanted is None:
        return None
    if wanted == "latest":
        folder = newest_run(cfg.output_dir)
        if folder is None:
            raise UsageError(
                f"--resume latest: no run folder with a results.json under {cfg.output_dir}: start "
                "a new run (leave --resume unset)"
            )
        return folder
    return Path(wanted)


def restart_count():
    """SLURM_RESTART_COUNT as Slurm sets it (0, 1, 2, ...; unset or empty: 0), refused in one line
    when it is not a count."""
    value = os.environ.get(REQUEUED, "").strip()
    if not value:
        return 0
    if not value.isdigit():
        raise UsageError(
            f"{REQUEUED}={value!r} is not a count (Slurm sets 0, 1, 2, ... when it requeues a "
            "job): unset it, or set a whole number"
        )
    return int(value)


def newest_run(output_dir):
    runs = sorted(
        Path(output_dir).glob("run-*/results.json"), key=lambda path: path.stat().st_mtime
    )
    return runs[-1].parent if runs else None


def load_stopped_run(cfg, *, given=()):
    """The settings to go on with (the stopped run's, but for those given now: recorded_settings)
    and the stopped run named by cfg (None for a new run). One line and exit status 2 for a folder
    that is not a run folder, a results.json that is unreadable, settings given now that differ
    where they shape the results, or a seed range that no longer holds the recorded seeds."""
    folder = folder_to_resume(cfg)
    if folder is None:
        return cfg, None
    if not folder.is_dir() or not (folder / "results.json").is_file():
        raise UsageError(
            f"--resume {folder}: not a run folder (no results.json in it): name a folder under "
            f"{cfg.output_dir} such as run-YYYYMMDD-HHMMSS, or latest"
        )
    stopped = read_stopped_run(folder)
    cfg = recorded_settings(cfg, stopped.record["config"], folder, given=given)
    check_writable(folder, cfg.report_to)
    check_same_settings(cfg, stopped.record["config"], folder)
    seeds = seed_range(cfg)
    outside = [seed for seed in stopped.every_seed if seed not in seeds]
    if outside:
        raise UsageError(
            f"--resume {folder}: it holds seed(s) {', '.join(map(str, outside))}, outside this "
            f"run's seeds {seeds.start}..{seeds.stop - 1}: keep --seed "
            f"{stopped.record['config']['seed']} and --num_seeds at least "
            f"{len(stopped.every_seed)}"
        )
    return cfg, stopped


def recorded_settings(cfg, recorded, folder, *, given):
    """cfg with every setting not given on this command line taken from the stopped run's record:
    `--resume latest` alone goes on with the run as it was started (its flags need not be typed
    again, and config.py's values do not override them). given: the settings on the command line,
    which stay as given (and are checked against the record)."""
    taken, types = {}, field_types(type(cfg))
    for name, value in vars(cfg).items():
        if name == "resume" or name in given or name not in recorded:
            continue
        was = recorded[name]
        if was != value:
            if not type_matches(was, types[name]):
                raise UsageError(
                    f"--resume {folder}: its recorded {name} ({was!r}) is not "
                    f"{type_name(types[name])}: it is damaged; start a new run"
                )
            taken[name] = was
    if taken:
        said = ", ".join(f"--{name} {value}" for name, value in taken.items())
        say(f"resuming with the stopped run's settings: {said}")
    return dataclasses.replace(cfg, **taken)


def read_stopped_run(folder):
    """A run folder's results.json and predictions.csv, refused in one line when unreadable or not
    this experiment's."""
    try:
        record = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise unreadable(folder, "results.json", err) from None
    predictions = read_csv_whole(folder, "predictions.csv")
    written = record.get("format", 1) if isinstance(record, dict) else None
    if written != FORMAT:
        raise UsageError(
            f"--resume {folder}: its results.json is not of this version's layout (format "
            f"{written}, this version writes {FORMAT}): it was written by another program or an "
            "earlier version; start a new run"
        )
    stored = stored_record(StoredRun, record, folder, where="its results.json")
    check_predictions(folder, predictions, seeds_once(folder, stored.seeds))
    smaller = read_curve_sizes(folder, record.get("curve")) if record.get("curve") else {}
    return StoppedRun(folder, record, stored.seeds, predictions, smaller)


def stored_record(kind, record, folder, *, where):
    """record read back as kind (records.from_json), refused in one line where it is damaged."""
    try:
        return from_json(kind, record, where)
    except RecordError as err:
        raise UsageError(f"--resume {folder}: {err}: it is damaged; start a new run") from None


def seeds_once(folder, per_seed, *, where=""):
    """The seeds of recorded comparisons, refused when one is listed twice."""
    seeds = [comparison.seed for comparison in per_seed]
    twice = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if twice:
        raise UsageError(
            f"--resume {folder}: its results.json lists seed(s) {', '.join(map(str, twice))} more "
            f"than once{where}: it is damaged or was edited; start a new run"
        )
    return seeds


CURVE_FILE = "curve_predictions.csv"  # a learning curve's every cell's predictions


def read_curve_sizes(folder, curve):
    """A stopped learning curve's sizes but the largest: size -> (its recorded comparisons, its rows
    of curve_predictions.csv), each checked as predictions.csv is."""
    stored = stored_record(StoredCurve, curve, folder, where="its results.json's curve")
    rows = read_csv_whole(folder, CURVE_FILE)
    if "size" not in rows:
        raise UsageError(
            f"--resume {folder}: its {CURVE_FILE} lacks the column size: it is damaged; start a "
            "new run"
        )
    sizes = {}
    for size, per_seed in stored.seeds_by_size.items():
        if not size.isdigit() or int(size) not in stored.sizes:
            raise UsageError(
                f"--resume {folder}: its results.json's curve holds seeds at a size ({size!r}) "
                "that is not one of its sizes: it is damaged or was edited; start a new run"
            )
        at_size = rows[pd.to_numeric(rows["size"], errors="coerce") == int(size)]
        seeds = seeds_once(folder, per_seed, where=f" at {size} examples")
        check_predictions(folder, at_size, seeds, file=CURVE_FILE)
        sizes[int(size)] = (per_seed, at_size)
    return sizes


def read_csv_whole(folder, file):
    """One of the run's CSV files, its cells as text where they are not numbers."""
    try:
        return pd.read_csv(folder / file, keep_default_na=False, dtype={"sentence": str})
    except (OSError, ValueError) as err:
        raise unreadable(folder, file, err) from None


def unreadable(folder, file, err):
    return UsageError(
        f"--resume {folder}: its {file} cannot be read ({type(err).__name__}: "
        f"{str(err)[:120]}): it was not written by this experiment, or is damaged"
    )


PREDICTED = [f"{run}_pred" for run in RUNS]
PROBABILITIES = [f"{run}_prob_pos" for run in RUNS]


def check_predictions(folder, predictions, seeds, *, file="predictions.csv"):
    """predictions.csv (or a curve size's rows of curve_predictions.csv) holds every recorded seed
    and nothing else, each answer 0 or 1 and each P(positive) a number in [0, 1]: a damaged cell is
    refused, not read as 0.5."""
    if not ends_whole(folder / file):
        raise UsageError(
            f"--resume {folder}: its {file} ends inside a row (it was cut short): it is "
            "damaged; start a new run"
        )
    missing = [
        c for c in ("seed", "split", "idx", *PREDICTED, *PROBABILITIES) if c not in predictions
    ]
    if missing:
        raise UsageError(
            f"--resume {folder}: its {file} lacks the column(s) {', '.join(missing)}: it "
            "is damaged; start a new run"
        )
    numbers = predictions[["seed", *PREDICTED, *PROBABILITIES]].apply(
        pd.to_numeric, errors="coerce"
    )
    answers, probs = numbers[PREDICTED].to_numpy(), numbers[PROBABILITIES].to_numpy()
    wrong = (
        numbers["seed"].isna().to_numpy()
        | ~np.isin(answers, (0, 1)).all(axis=1)
        | ~((probs >= 0) & (probs <= 1)).all(axis=1)  # NaN (a cell that is not a number) fails too
        # the answer is P > 0.5, but for a P that rounded to 0.5 in the file
        | ((answers == 1) != (probs > 0.5) & (probs != 0.5)).any(axis=1)
    )
    if wrong.any():
        row = int(predictions.index[np.argmax(wrong)]) + 2  # the header is line 1
        raise UsageError(
            f"--resume {folder}: its {file}'s line {row} holds a seed, answer or "
            "probability that is not one (cut short or edited): it is damaged; start a new run"
        )
    if sorted(set(numbers["seed"].astype(int))) != sorted(seeds):
        raise UsageError(
            f"--resume {folder}: its {file} does not hold the seeds its results.json "
            f"records ({', '.join(map(str, seeds))}): it is damaged; start a new run"
        )


def ends_whole(path):
    """Whether the file ends with a line break, as every file this experiment writes does."""
    with open(path, "rb") as written:
        if written.seek(0, os.SEEK_END) == 0:
            return False
        written.seek(-1, os.SEEK_END)
        return written.read(1) == b"\n"


def check_writable(folder, report_to):
    """The folder a resume writes into takes files (a read-only mount is found before anything
    trains), and nothing is in the way of its TensorBoard folder."""
    if processes.is_main():
        try:
            Path(tempfile.mkdtemp(dir=folder, prefix=".write-probe-")).rmdir()
        except OSError as err:
            raise UsageError(
                f"--resume {folder}: it cannot be written ({err.strerror or err}): make it "
                "writable, or copy it somewhere that is and resume that copy"
            ) from None
    board = folder / "tensorboard"
    if "tensorboard" in trackers(report_to) and board.exists() and not board.is_dir():
        raise UsageError(
            f"--resume {folder}: {board} is a file where the run's TensorBoard folder goes: move "
            "it away, or leave tensorboard out of --report_to"
        )


@dataclass
class StoredRun:
    """What --resume reads back from a results.json, each key checked for its type."""

    config: dict
    data_fingerprint: str
    weights_fingerprint: str
    seeds: list[SeedComparison]


@dataclass
class StoredCurve:
    """What --resume reads back from a learning curve's results.json `curve`: each size's seeds
    but the largest's (those are the run's `seeds`)."""

    sizes: list[int]
    seeds_by_size: dict[str, list[SeedComparison]]


def check_same_settings(cfg, recorded, folder):
    """Every setting that shapes the results equals the recorded one: each that differs named, with
    both values."""
    differ = [
        (name, repr(recorded[name]) if name in recorded else "not recorded", value)
        for name, value in vars(cfg).items()
        if name not in FREE_ON_RESUME and recorded.get(name, NOT_RECORDED) != value
    ]
    if differ:
        said = "; ".join(f"{name} {was} there, {now!r} here" for name, was, now in differ)
        raise UsageError(
            f"--resume {folder}: settings that shape the results differ: {said}. Resume with the "
            "recorded ones, or start a new run"
        )


NOT_RECORDED = object()  # a setting a stopped run's config lacks: never equal to this run's


def data_fingerprint(frames):
    """A hash of every split's sentences and labels, in order: the same data gives the same
    fingerprint."""
    digest = hashlib.sha256()
    for name in sorted(frames):
        digest.update(name.encode())
        for sentence, label in zip(frames[name]["sentence"], frames[name]["label"]):
            digest.update(f"{label}\t{sentence}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def check_same_data(stopped, fingerprint):
    if stopped.record["data_fingerprint"] != fingerprint:
        raise UsageError(
            f"--resume {stopped.folder}: its results come from other data (its fingerprint "
            "differs: "
            "another data_dir, subset or split): resume with the data it used, or start a new run"
        )


def recorded_probs(folder, predictions, *, seeds, eval_splits, file="predictions.csv"):
    """Each recorded seed's P(positive) per run and split, in the order of this run's evaluation
    splits (the same data gives the same order, checked by idx), from its rows of predictions (a
    frame of predictions.csv, or of curve_predictions.csv at one size)."""
    per_seed = []
    for seed in seeds:
        rows = predictions[predictions["seed"] == seed]
        probs = {run: {} for run in RUNS}
        for name, split in eval_splits.items():
            part = rows[rows["split"] == name]
            if not np.array_equal(part["idx"].to_numpy(), split.frame["idx"].to_numpy()):
                raise UsageError(
                    f"--resume {folder}: its {file} does not hold seed {seed}'s "
                    f"{name} items in this run's order: it is damaged; start a new run"
                )
            for run in RUNS:
                # the file rounds P to 6 decimals: the recorded answer decides which side of 0.5 it
                # lies on
                prob, answer = (
                    part[f"{run}_prob_pos"].to_numpy(np.float64),
                    part[f"{run}_pred"].to_numpy(),
                )
                probs[run][name] = np.where(
                    answer == 1, np.maximum(prob, np.nextafter(0.5, 1)), np.minimum(prob, 0.5)
                )
        per_seed.append((seed, probs))
    return per_seed
