"""The run folder and its files: results.json, predictions.csv and flips.csv, rewritten after every seed, each
through a temporary file and a rename, so a later failure loses none of the finished seeds and no file is ever
half-written. docs/results.md describes every key."""
import dataclasses
import errno
import itertools
import json
import math
import os
import platform
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import accelerate
import datasets
import numpy as np
import pandas as pd
import sklearn
import torch
import transformers

from sst2kit import processes
from sst2kit.errors import UsageError
from sst2kit.metrics import class_balance, predicted_labels, summarize_seeds
from sst2kit.names import RUNS, headline_split

# Keys kept one release for readers of the old results.json: the re-split test set's delta was plain "delta".
OLD_DELTA_KEYS = {"test": "delta", "validation": "delta_validation", "external_test": "delta_external_test"}


def new_run_dir(output_dir):
    """A fresh folder per run, named by its start time, so no run overwrites another (made by the main process;
    two runs started in the same second get a folder each: making it is the test of whether it is taken)."""
    run_dir = None
    if processes.is_main():
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        for n in itertools.count():
            run_dir = Path(output_dir) / (f"run-{stamp}-{n}" if n else f"run-{stamp}")
            try:
                run_dir.mkdir(parents=True)
                break
            except FileExistsError:
                continue
            except OSError as err:
                raise UsageError(f"cannot make {run_dir} ({err.strerror}): pick another --output_dir") from None
    return processes.from_main(run_dir)


def environment():
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "datasets": datasets.__version__, "accelerate": accelerate.__version__, "scikit-learn": sklearn.__version__,
            "device": gpu or f"cpu ({platform.processor() or platform.machine()})",
            "processes": processes.count()}


class WriteError(UsageError):
    """A file of the run could not be written (a full disk, a quota, a vanished or read-only folder)."""


def cannot_write(path, err):
    if err.errno == errno.ENOSPC:
        return WriteError(f"no space left on {path.parent}: free some space; the files already there are whole")
    if not path.parent.is_dir():
        return WriteError(f"cannot write {path} (its folder no longer exists)")
    return WriteError(f"cannot write {path} ({err.strerror or err}): the files already there are whole")


def write_atomic(path, write):
    """Write through a temporary file and a rename: a run stopped at any point never leaves half a file,
    and a writer that fails leaves no temporary file either. Any write error is one line, not a traceback."""
    write_together([(path, write)])


@contextmanager
def stop_signals_deferred():
    """SIGINT and SIGTERM held back while a few renames finish as one, then delivered to the handlers the run had.
    (Python runs signal handlers in the main thread whichever thread the signal reaches, so they are swapped for
    ones that only take note; masking the signal in one thread would not stop the others from taking it.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = {held: signal.signal(held, lambda signum, frame: received.append(signum))
                for held in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for held, handler in previous.items():
            signal.signal(held, signal.SIG_DFL if handler is None else handler)
        if received:
            signal.raise_signal(received[0])


def write_together(files):
    """(path, writer) pairs committed together: every file is written to a temporary name first, then all are
    renamed into place with stop signals held back, so the files never describe different seeds."""
    temporary = [(path, path.with_name(f".{path.name}.tmp"), write) for path, write in files]
    try:
        for path, tmp, write in temporary:
            try:
                write(tmp)
            except OSError as err:
                raise cannot_write(path, err) from None
        with stop_signals_deferred():
            for path, tmp, _ in temporary:
                try:
                    os.replace(tmp, path)
                except OSError as err:
                    raise cannot_write(path, err) from None
    finally:
        for _, tmp, _ in temporary:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:  # the folder itself may be gone
                pass


def save_model_whole(trainer, folder):
    """The trainer's model saved under a temporary name, renamed into place once whole (by the process that
    saves: under data-parallel training, the main one)."""
    partial = folder.with_name(f".{folder.name}.partial")
    try:
        trainer.save_model(str(partial))
        if trainer.args.should_save:
            with stop_signals_deferred():
                os.replace(partial, folder)
    except OSError as err:
        shutil.rmtree(partial, ignore_errors=True)
        raise cannot_write(folder, err) from None


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text):
    """A CSV cell a spreadsheet would run as a formula gets a leading apostrophe (shown as text, not run). A text
    that really starts with an apostrophe gets one more, so the guard can always be undone: drop one leading
    apostrophe where there is one."""
    return f"'{text}" if text.startswith((*FORMULA_STARTS, "'")) else text


def csv_safe(frame):
    return frame.assign(sentence=frame["sentence"].map(spreadsheet_safe))


def predictions_frame(eval_splits, per_seed_probs):
    """One row per evaluated example and seed: its split, sentence and label, each run's prediction and
    P(positive), and whether the full fine-tune fixed ("fixed") or broke ("broken") head-only's answer."""
    rows = []
    for seed, probs in per_seed_probs:
        for name, split in eval_splits.items():
            frame = split.frame[["idx", "sentence", "label"]].copy()
            frame.insert(0, "split", name)
            frame.insert(0, "seed", seed)
            right = {}
            for run in RUNS:
                frame[f"{run}_pred"] = predicted_labels(probs[run][name])
                frame[f"{run}_prob_pos"] = probs[run][name].round(6)
                right[run] = frame[f"{run}_pred"] == frame["label"]
            frame["change"] = np.select([right["full_finetune"] & ~right["head_only"],
                                         right["head_only"] & ~right["full_finetune"]], ["fixed", "broken"], "")
            rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def flips(predictions):
    """The examples the full fine-tune fixes or breaks, the full fine-tune's surest first."""
    changed = predictions[predictions["change"] != ""].copy()
    sure = (changed["full_finetune_prob_pos"] - 0.5).abs()
    return changed.assign(full_finetune_certainty=sure).sort_values("full_finetune_certainty", ascending=False,
                                                                    kind="stable")


def strict_json(value):
    """results.json for any JSON reader: NaN and infinities (not JSON) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    return value


def write_json(path, results):
    path.write_text(json.dumps(strict_json(results), indent=2, allow_nan=False))


def save_results(run_dir, results, predictions):
    """results.json, predictions.csv and flips.csv, committed together."""
    flipped = flips(predictions).drop(columns=["head_only_pred", "full_finetune_pred", "full_finetune_certainty"])
    write_together([
        (run_dir / "predictions.csv", lambda path: csv_safe(predictions).to_csv(path, index=False)),
        (run_dir / "flips.csv", lambda path: csv_safe(flipped).to_csv(path, index=False)),
        (run_dir / "results.json", lambda path: write_json(path, results))])


def save_report(run_dir, printed, classification_reports, figures):
    """report.md: the whole printed report, scikit-learn's classification reports, and the figures, so a run can
    be read later without its terminal."""
    text = "\n".join(["# sst2-compare report", "", "```", *printed, "```", "",
                      "## Classification reports", "", "```", *classification_reports, "```", "", "## Figures", "",
                      *(f"![{figure.stem}]({figure.name})" for figure in figures), ""])
    write_atomic(run_dir / "report.md", lambda path: path.write_text(text))


class Results:
    """One run's results.json, predictions.csv and flips.csv, rewritten after every seed (results.json says
    `"complete": false` until the last seed is in)."""

    def __init__(self, run_dir, cfg, eval_splits, train_labels, sizes, speed, newly_initialised):
        self.run_dir, self.cfg, self.eval_splits = run_dir, cfg, eval_splits
        self.balance = class_balance(train_labels, eval_splits)
        self.static = {"config": dataclasses.asdict(cfg), "class_balance": self.balance, "sizes": sizes,
                       "leakage": {f"{name}_items_inside_train_fraction": split.leakage
                                   for name, split in eval_splits.items()},
                       "independence": {name: {"unit": split.unit_name, "units": int(len(np.unique(split.units))),
                                               "largest_unit_items": int(np.bincount(split.units).max()),
                                               "duplicated_items": split.duplicated_items}
                                        for name, split in eval_splits.items()},
                       "newly_initialised_tensors": newly_initialised, "speed": speed}
        self.per_seed, self.per_seed_probs, self.record, self.predictions = [], [], None, None

    @property
    def summary(self):
        return summarize_seeds(self.per_seed) if len(self.per_seed) > 1 else None

    def add_seed(self, comparison, probs, timings, probe_fit=None):
        """One seed's comparison in; every file rewritten with every seed so far (main process only)."""
        self.per_seed.append(comparison)
        self.per_seed_probs.append((comparison["seed"], probs))
        if not processes.is_main():
            return
        first, name = self.per_seed[0], headline_split(self.eval_splits)
        significance = first["significance"][name]
        self.record = {
            "complete": len(self.per_seed) == self.cfg.num_seeds, **self.static,
            "headline": {"split": name, "delta_accuracy": first["deltas"][name]["accuracy"],
                         "delta_accuracy_ci95": significance["delta_accuracy_ci95"],
                         "p_value_holm": significance["p_value_holm"],
                         "difference_claimed": significance["difference_claimed"]},
            **{key: first[key] for key in ("runs", "deltas", "significance", "at_majority_floor", "by_kind",
                                           "accuracy_by_length")},
            **{OLD_DELTA_KEYS[split]: delta for split, delta in first["deltas"].items()},  # one release
            "test_by_kind": first["by_kind"].get("test"),  # one release: now by_kind["test"]
            "timings_seconds": timings, "environment": environment()}
        if "probe_reference" in first:
            self.record["probe_reference"] = {**first["probe_reference"], "fit": probe_fit}
        if len(self.per_seed) > 1:
            self.record["seeds"] = self.per_seed
            self.record["summary"] = self.summary
        self.predictions = predictions_frame(self.eval_splits, self.per_seed_probs)
        self.save()

    def finish(self, timings):
        """results.json rewritten once the report is out, its timings then holding every stage of the run (the
        seeds, and so predictions.csv and flips.csv, are unchanged)."""
        if processes.is_main():
            self.record["timings_seconds"] = timings
            write_atomic(self.run_dir / "results.json", lambda path: write_json(path, self.record))

    def save(self):
        try:
            save_results(self.run_dir, self.record, self.predictions)
        except WriteError as err:  # keep the finished seeds somewhere they can be written, and say where
            rescue = Path(tempfile.mkdtemp(prefix=f"sst2_compare-{self.run_dir.name}-"))
            try:
                save_results(rescue, self.record, self.predictions)
            except WriteError:
                raise err from None
            raise WriteError(f"{err}; the {len(self.per_seed)} finished seed(s) were written to {rescue} "
                             "instead") from None
