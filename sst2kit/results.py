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
from datetime import datetime
from pathlib import Path

import accelerate
import datasets
import numpy as np
import pandas as pd
import sklearn
import torch
import transformers
from accelerate import PartialState
from accelerate.utils import broadcast_object_list

from sst2kit.errors import UsageError
from sst2kit.metrics import class_balance, predicted_labels, summarize_seeds
from sst2kit.names import RUNS

# Keys kept one release for readers of the old results.json: the re-split test set's delta was plain "delta".
OLD_DELTA_KEYS = {"test": "delta", "validation": "delta_validation", "external_test": "delta_external_test"}


def headline_split(splits):
    """The split whose delta answers the question best: whole sentences never seen in training, the external set
    (larger, and outside GLUE) when there is one, else GLUE validation."""
    return "external_test" if "external_test" in splits else "validation"


def new_run_dir(output_dir):
    """A fresh folder per run, named by its start time, so no run overwrites another (made by the main process;
    two runs started in the same second get a folder each: making it is the test of whether it is taken)."""
    run_dir = None
    if PartialState().is_main_process:
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
    return broadcast_object_list([run_dir])[0]


def environment():
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "datasets": datasets.__version__, "accelerate": accelerate.__version__, "scikit-learn": sklearn.__version__,
            "device": gpu or f"cpu ({platform.processor() or platform.machine()})",
            "processes": PartialState().num_processes}


def write_atomic(path, write):
    """Write through a temporary file and a rename: a run stopped at any point never leaves half a file,
    and a writer that fails leaves no temporary file either. A full disk is one line, not a traceback."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise UsageError(f"no space left on {path.parent}: free some space; the files already there are "
                             "whole") from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text):
    """A cell a spreadsheet would run as a formula gets a leading apostrophe (shown as text, not run)."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def predictions_frame(eval_splits, per_seed_probs):
    """One row per evaluated example and seed: its split, sentence and label, each run's prediction and
    P(positive), and whether the full fine-tune fixed ("fixed") or broke ("broken") head-only's answer."""
    rows = []
    for seed, probs in per_seed_probs:
        for name, split in eval_splits.items():
            frame = split.frame[["idx", "sentence", "label"]].copy()
            frame["sentence"] = frame["sentence"].map(spreadsheet_safe)
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


def save_results(run_dir, results, predictions):
    write_atomic(run_dir / "predictions.csv", lambda path: predictions.to_csv(path, index=False))
    flipped = flips(predictions).drop(columns=["head_only_pred", "full_finetune_pred", "full_finetune_certainty"])
    write_atomic(run_dir / "flips.csv", lambda path: flipped.to_csv(path, index=False))
    write_atomic(run_dir / "results.json",
                 lambda path: path.write_text(json.dumps(strict_json(results), indent=2, allow_nan=False)))


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
        if not PartialState().is_main_process:
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
        save_results(self.run_dir, self.record, self.predictions)
