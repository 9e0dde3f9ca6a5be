"""The run's record: results.json (docs/results.md describes every key), predictions.csv and
flips.csv, rebuilt after every seed and committed together through files.py, so a later failure
loses none of the finished seeds; and report.md, the printed report kept with the run."""

import contextlib
import dataclasses
import platform
import shutil
import tempfile
from pathlib import Path

import accelerate
import datasets
import numpy as np
import pandas as pd
import sklearn
import torch
import transformers

from sst2kit.files import (
    WriteError,
    check_run_dir,
    write_atomic,
    write_csv,
    write_json,
    write_text,
    write_together,
)
from sst2kit.metrics import SEED_COUNTS, directions, predicted_labels, summarize_seeds
from sst2kit.names import LABEL_NAMES, PROBE, RUNS, headline_split
from sst2kit.resume import check_same_data, recorded_probs

# Keys kept one release for readers of the old results.json: the re-split test set's delta was plain
# "delta".
OLD_DELTA_KEYS = {
    "test": "delta",
    "validation": "delta_validation",
    "external_test": "delta_external_test",
}


def environment(setup):
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "accelerate": accelerate.__version__,
        "scikit-learn": sklearn.__version__,
        "device": setup.device,
        "processes": setup.processes,
    }


def predictions_frame(eval_splits, per_seed_probs):
    """One row per evaluated example and seed: its split, sentence and label, each run's prediction
    and P(positive), and whether the full fine-tune fixed ("fixed") or broke ("broken") head-only's
    answer."""
    rows = []
    for seed, probs in per_seed_probs:
        for name, split in eval_splits.items():
            frame = split.frame[["idx", "sentence", "label"]].copy()
            frame.insert(0, "split", name)
            frame.insert(0, "seed", seed)
            right = {}
            for run in RUNS:
                frame[f"{run}_pred"] = predicted_labels(probs[run][name])
                frame[f"{run}_prob_pos"] = np.asarray(probs[run][name], np.float64).round(6)
                right[run] = frame[f"{run}_pred"] == frame["label"]
            frame["change"] = np.select(
                [
                    right["full_finetune"] & ~right["head_only"],
                    right["head_only"] & ~right["full_finetune"],
                ],
                ["fixed", "broken"],
                "",
            )
            rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def flips(predictions):
    """The examples the full fine-tune fixes or breaks, the full fine-tune's surest first."""
    changed = predictions[predictions["change"] != ""].copy()
    sure = (changed["full_finetune_prob_pos"] - 0.5).abs()
    return changed.assign(full_finetune_certainty=sure).sort_values(
        "full_finetune_certainty", ascending=False, kind="stable"
    )


def class_balance(train_labels, eval_splits):
    """results.json's class_balance: train's label counts, and per evaluation split its positive
    share, whether it is close to balanced, and its majority-class floor."""
    counts = np.bincount(np.asarray(train_labels), minlength=2)
    splits = {
        name: {
            "items": len(split.labels),
            "positive_share": split.positive_share,
            "close_to_balanced": split.close_to_balanced,
            "majority_class_floor": split.majority_floor,
        }
        for name, split in eval_splits.items()
    }
    return {
        "train_label_counts": dict(zip(LABEL_NAMES, counts.tolist())),
        "train_label_shares": dict(zip(LABEL_NAMES, (counts / counts.sum()).round(4).tolist())),
        **splits,
    }


def save_results(run_dir, record, predictions):
    """results.json, predictions.csv and flips.csv, committed together."""
    flipped = flips(predictions).drop(
        columns=["head_only_pred", "full_finetune_pred", "full_finetune_certainty"]
    )
    write_together(
        [
            (run_dir / "predictions.csv", lambda path: write_csv(path, predictions)),
            (run_dir / "flips.csv", lambda path: write_csv(path, flipped)),
            (run_dir / "results.json", lambda path: write_json(path, record)),
        ]
    )


class Results:
    """One run's results.json, predictions.csv and flips.csv, rewritten after every seed
    (results.json says `"complete": false` until the last seed is in), and what the report needs to
    print them."""

    def __init__(
        self,
        experiment,
        eval_splits,
        *,
        train_labels,
        new_head_tensors,
        data_fingerprint,
        stopped=None,
    ):
        self.experiment, self.cfg, self.run_dir = experiment, experiment.cfg, experiment.run_dir
        self.eval_splits, self.new_head_tensors = eval_splits, new_head_tensors
        self.balance = class_balance(train_labels, eval_splits)
        self.sizes = {
            "train": len(train_labels),
            **{name: len(split.labels) for name, split in eval_splits.items()},
        }
        self.static = {
            "config": dataclasses.asdict(self.cfg),
            "class_balance": self.balance,
            "sizes": self.sizes,
            "leakage": {
                f"{name}_items_inside_train_fraction": split.leakage
                for name, split in eval_splits.items()
            },
            "independence": {
                name: {
                    "unit": split.unit_name,
                    "units": split.unit_count,
                    "largest_unit_items": split.largest_unit_items,
                    "duplicated_items": split.duplicated_items,
                }
                for name, split in eval_splits.items()
            },
            "newly_initialised_tensors": new_head_tensors,
            "speed": experiment.setup.record(),
            "data_fingerprint": data_fingerprint,
        }
        self.per_seed, self.per_seed_probs, self.record, self.predictions = [], [], None, None
        self.probe_fit, self.summary, self.resumed_seeds = None, None, []
        if stopped:
            self.restore(stopped)

    def restore(self, stopped):
        """The seeds a stopped run finished (resume.py), kept as they were recorded."""
        check_same_data(stopped, self.static["data_fingerprint"])
        self.per_seed = list(stopped.per_seed)
        self.per_seed_probs = recorded_probs(stopped, self.eval_splits)
        self.resumed_seeds = stopped.seeds

    @property
    def headline(self):
        """results.json's `headline`: the experiment's answer on the headline split. With several
        seeds, the mean delta over them with an interval across seeds and units; with one, that
        seed's delta and interval."""
        name, first = headline_split(self.eval_splits), self.per_seed[0]
        if self.summary:
            delta = self.summary["deltas"][name]
            entry, value = delta["across_seeds"], delta["across_seeds"]["delta_accuracy"]
            balanced = delta["balanced_accuracy"]["mean"]
            counts = {key: delta[key] for key in SEED_COUNTS}
            interval = (
                f"mean of {len(self.per_seed)} seeds' deltas; margins for the seeds' spread (t, "
                f"{len(self.per_seed) - 1} df) and for {entry['independent_units']:,} "
                f"{entry['resampled_unit']} added in quadrature; covers new training seeds and new "
                "sentences like these, with this training set"
            )
        else:
            entry, value = first["significance"][name], first["deltas"][name]["accuracy"]
            balanced = first["deltas"][name]["balanced_accuracy"]
            counts = directions([entry])
            interval = (
                f"one seed ({first['seed']}); {entry['paired_test']} over "
                f"{entry['independent_units']:,} {entry['resampled_unit']}"
            )
        return {
            "split": name,
            "seeds": len(self.per_seed),
            "delta_accuracy": value,
            "delta_balanced_accuracy": balanced,
            "delta_accuracy_ci95": entry["delta_accuracy_ci95"],
            "interval": interval,
            "p_value": entry["p_value"],
            "p_value_holm": entry["p_value_holm"],
            "difference_claimed": entry["difference_claimed"],
            "claim_withheld": entry.get("withheld"),
            **counts,
        }

    def add_seed(self, comparison, probs, *, probe_fit, timings):
        """One seed's comparison in; every file rewritten with every seed so far (main process
        only)."""
        self.per_seed.append(comparison)
        self.per_seed_probs.append((comparison["seed"], probs))
        self.update(
            reference={PROBE: probs[PROBE]} if PROBE in probs else {},
            probe_fit=probe_fit,
            timings=timings,
        )

    def update(self, *, reference, probe_fit, timings):
        """Every file rewritten with every seed so far, in seed order: the probe's P(positive) (the
        same in every seed: it is fitted once) given to seeds restored without it."""
        for _, probs in self.per_seed_probs:
            probs.update({key: value for key, value in reference.items() if key not in probs})
        self.per_seed.sort(key=lambda s: s["seed"])
        self.per_seed_probs.sort(key=lambda pair: pair[0])
        self.probe_fit = self.probe_fit or probe_fit
        if len(self.per_seed) > 1:
            self.summary = summarize_seeds(
                self.per_seed,
                self.per_seed_probs,
                self.eval_splits,
                resamples=self.cfg.bootstrap_resamples,
                seed=self.cfg.seed,
            )
        first = self.per_seed[0]
        self.record = {
            "complete": len(self.per_seed) == self.cfg.num_seeds,
            **self.static,
            "headline": self.headline,
            **{
                key: first[key]
                for key in (
                    "runs",
                    "deltas",
                    "significance",
                    "status",
                    "at_majority_floor",
                    "by_kind",
                    "accuracy_by_length",
                )
            },
            # one release
            **{OLD_DELTA_KEYS[split]: delta for split, delta in first["deltas"].items()},
            "test_by_kind": first["by_kind"].get("test"),  # one release: now by_kind["test"]
            "timings_seconds": timings,
            "environment": environment(self.experiment.setup),
        }
        if self.resumed_seeds:
            self.record["resumed_seeds"] = self.resumed_seeds
        if "probe_reference" in first:
            self.record["probe_reference"] = {**first["probe_reference"], "fit": self.probe_fit}
        if len(self.per_seed) > 1:
            self.record["seeds"] = self.per_seed
            self.record["summary"] = self.summary
        self.predictions = predictions_frame(self.eval_splits, self.per_seed_probs)
        self.save()

    def finish(self, timings):
        """results.json rewritten once the report is out, its timings then holding every stage of
        the run (the seeds, and so predictions.csv and flips.csv, are unchanged)."""
        self.record["timings_seconds"] = timings
        write_atomic(self.run_dir / "results.json", lambda path: write_json(path, self.record))

    def save(self):
        check_run_dir(self.run_dir)
        save_results(self.run_dir, self.record, self.predictions)

    @contextlib.contextmanager
    def rescued_on_write_error(self):
        """A write error while the seeds run (a full disk, the run folder gone): the finished seeds
        are written to a new folder in the system's temporary directory where one can be made, and
        the one line says where (or that they could not be kept)."""
        try:
            yield
        except WriteError as err:
            if not self.per_seed:  # nothing finished: nothing to keep
                raise
            raise WriteError(f"{err}; {self.rescue()}") from None

    def rescue(self):
        """The finished seeds written to a new temporary folder: where, or why they could not be."""
        rescue = None
        try:
            rescue = Path(tempfile.mkdtemp(prefix=f"sst2_compare-{self.run_dir.name}-"))
            save_results(rescue, self.record, self.predictions)
        except (OSError, WriteError) as err:
            if rescue is not None:
                # no empty or half-written folder left behind
                shutil.rmtree(rescue, ignore_errors=True)
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            return (
                f"the {len(self.per_seed)} finished seed(s) could not be written elsewhere "
                f"either ({reason})"
            )
        return f"the {len(self.per_seed)} finished seed(s) were written to {rescue} instead"


def save_report(run_dir, text):
    """report.md: the run's report, readable later without its terminal."""
    write_atomic(run_dir / "report.md", lambda path: write_text(path, text))
