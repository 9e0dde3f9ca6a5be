"""The run's files: results.json (docs/results.md describes every key), predictions.csv and
flips.csv, rewritten after every seed from the seeds' findings and committed together through
files.py, so a later failure loses none of the finished seeds (and when the run folder fails, they
are rescued to a new one); and report.md, the printed report kept with the run."""

import contextlib
import dataclasses
import os
import platform
import shutil
import tempfile
import weakref
from pathlib import Path

import accelerate
import datasets
import numpy as np
import pandas as pd
import sklearn
import torch
import transformers

from sst2kit import processes
from sst2kit.curve import Cell, Curve
from sst2kit.files import (
    WriteError,
    check_run_dir,
    lock_run_dir,
    new_run_dir,
    write_atomic,
    write_csv,
    write_json,
    write_text,
    write_together,
)
from sst2kit.metrics import predicted_labels
from sst2kit.names import FULL_FINETUNE, HEAD_ONLY, LABEL_NAMES, RUNS
from sst2kit.phrases import shared_items
from sst2kit.records import FORMAT, to_json
from sst2kit.resume import CURVE_FILE
from sst2kit.runtime import Experiment
from sst2kit.seeds import Findings
from sst2kit.settings import seed_range


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
                    right[FULL_FINETUNE] & ~right[HEAD_ONLY],
                    right[HEAD_ONLY] & ~right[FULL_FINETUNE],
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


def curve_predictions_frame(curve, eval_splits):
    """curve_predictions.csv: predictions.csv's rows for every cell of a learning curve, its size
    first, without the sentences (predictions.csv has them, in the same order)."""
    frames = [
        predictions_frame(eval_splits, findings.per_seed_probs)
        .drop(columns=["sentence", "change"])
        .assign(size=size)
        for size, findings in sorted(curve.findings.items())
        if findings.per_seed
    ]
    rows = pd.concat(frames, ignore_index=True)
    return rows[["size", *rows.columns.drop("size")]]


def save_results(run_dir, record, predictions, *, curve_predictions=None):
    """results.json, predictions.csv and flips.csv (and a learning curve's curve_predictions.csv),
    committed together."""
    flipped = flips(predictions).drop(
        columns=["head_only_pred", "full_finetune_pred", "full_finetune_certainty"]
    )
    curve = [] if curve_predictions is None else [(run_dir / CURVE_FILE, curve_predictions)]
    write_together(
        [
            (run_dir / "predictions.csv", lambda path: write_csv(path, predictions)),
            (run_dir / "flips.csv", lambda path: write_csv(path, flipped)),
            *((file, lambda path, rows=rows: write_csv(path, rows)) for file, rows in curve),
            (run_dir / "results.json", lambda path: write_json(path, record)),
        ]
    )


class Results:
    """One run's results.json, predictions.csv and flips.csv, rewritten after every seed
    (results.json says `"complete": false` until the last seed is in) from its findings, and what
    the report needs to print them."""

    def __init__(self, experiment, findings, *, static, resumed_seeds, curve=None):
        self.experiment, self.cfg, self.run_dir = experiment, experiment.cfg, experiment.run_dir
        self.findings, self.eval_splits, self.curve = findings, findings.eval_splits, curve
        self.static, self.resumed_seeds = static, resumed_seeds
        self.balance, self.sizes = static["class_balance"], static["sizes"]
        self.new_head_tensors = static["newly_initialised_tensors"]
        self.external_in_validation = external_in_validation(self.eval_splits)
        self.record, self.predictions, self.probe_fit = None, None, None
        self.curve_predictions = None  # on a learning curve, every cell's rows

    @classmethod
    def start(cls, cfg, setup, checked, *, stopped, data):
        """The run folder (a stopped run's own when resuming, its finished seeds restored) and the
        record of what every seed shares. checked: the model as the input checks loaded it; data:
        data.Data: every split's frame, the evaluation splits, a learning curve's plan (or None)."""
        frames, eval_splits, plan = data.frames, data.eval_splits, data.plan
        weights = checked.weights_fingerprint
        restored = (
            stopped.restored(eval_splits, data=data.fingerprint, weights=weights) if stopped else {}
        )
        run_dir = stopped.folder if stopped else new_run_dir(cfg.output_dir)
        lock = lock_run_dir(run_dir) if processes.is_main() else None  # held while the run lives
        experiment = Experiment(cfg, run_dir, checked.tokenizer, setup)
        findings = Findings(
            eval_splits,
            resamples=cfg.bootstrap_resamples,
            first_seed=cfg.seed,
            restored=restored.get(None, ((), ())),
        )
        curve = learning_curve(cfg, plan, findings, restored=restored)
        # the tables describe the largest size's training set (on a curve: the first seed's)
        train_labels = plan.largest_labels() if plan else frames["train"]["label"].to_numpy()
        static = {
            "config": dataclasses.asdict(cfg),
            "class_balance": class_balance(train_labels, eval_splits),
            "sizes": {
                "train": len(train_labels),
                **{name: len(split.labels) for name, split in eval_splits.items()},
            },
            **data_record(eval_splits),
            "newly_initialised_tensors": checked.new_head_tensors,
            "speed": setup.record(),
            "data_fingerprint": data.fingerprint,
            "weights_fingerprint": weights,
        }
        resumed = stopped.seeds if stopped else []
        results = cls(experiment, findings, static=static, resumed_seeds=resumed, curve=curve)
        if lock is not None:  # released with the results: at the run's end, however it ends
            weakref.finalize(results, os.close, lock)
        return results

    @property
    def cells_to_train(self):
        """What this run has not recorded yet: each seed's two runs, in seed order; on a learning
        curve, each (size, seed), the largest sizes first."""
        if self.curve:
            return self.curve.cells_to_train()
        cfg = self.cfg
        epochs = {HEAD_ONLY: cfg.epochs_head_only, FULL_FINETUNE: cfg.epochs_full_finetune}
        return [
            Cell(seed, epochs, first=seed == cfg.seed)
            for seed in seed_range(cfg)
            if seed not in self.resumed_seeds
        ]

    def add(self, cell, records, probs):
        """One cell's runs compared, and the answers over seeds (and sizes) decided again."""
        if self.curve:
            self.curve.add(cell, records, probs)
        else:
            self.findings.add(cell.seed, records, probs)

    @property
    def complete(self):
        """Every seed (at every size) recorded."""
        if self.curve:
            return self.curve.done == self.curve.plan.cell_count
        return len(self.findings.per_seed) == self.cfg.num_seeds

    def save(self, probe_fit, timings):
        """Every file rewritten with every seed so far (main process only)."""
        self.probe_fit = self.probe_fit or probe_fit
        self.record = self.recorded(timings)
        self.predictions = predictions_frame(self.eval_splits, self.findings.per_seed_probs)
        if self.curve:
            self.curve_predictions = curve_predictions_frame(self.curve, self.eval_splits)
        check_run_dir(self.run_dir)
        save_results(
            self.run_dir, self.record, self.predictions, curve_predictions=self.curve_predictions
        )

    def add_reference(self, probe, features, timings):
        """The probe's P(positive) given to seeds restored without it (a curve's cells below the
        whole training set each fitted now on their subset's features), and the files rewritten
        when any lacked it (main process only)."""
        if not processes.is_main():
            return
        whole_set = probe.whole_set_outcome()  # waited for here, even where no seed needs it
        if self.curve:
            added = self.curve.add_reference(lambda cell: probe.outcome(cell, features))
        else:
            added = self.findings.add_reference(lambda seed: whole_set)
        if added or self.record is None:
            self.save(probe.fit, timings)

    def recorded(self, timings):
        """results.json (docs/results.md): the setup, the answer, every seed's comparison, and with
        several seeds the summary over them."""
        findings = self.findings
        return {
            "format": FORMAT,
            "complete": self.complete,
            **self.static,
            "headline": to_json(findings.headline),
            "seeds": to_json(findings.per_seed),
            "summary": to_json(findings.summary),
            "probe_fit": self.probe_fit,
            "curve": self.curve.record() if self.curve else None,
            "resumed_seeds": self.resumed_seeds,
            "timings_seconds": timings,
            "environment": environment(self.experiment.setup),
        }

    def finish(self, timings):
        """results.json rewritten once the report is out, its timings then holding every stage of
        the run (the seeds, and so predictions.csv and flips.csv, are unchanged). Returns the run's
        total seconds."""
        self.record["timings_seconds"] = timings
        write_atomic(self.run_dir / "results.json", lambda path: write_json(path, self.record))
        return timings["total"]

    @contextlib.contextmanager
    def rescued_on_write_error(self):
        """A write error while the seeds run (a full disk, the run folder gone): the finished seeds
        are written to a new folder in the system's temporary directory where one can be made, and
        the one line says where (or that they could not be kept)."""
        try:
            yield
        except WriteError as err:
            if self.record is None:  # nothing finished: nothing to keep
                raise
            raise WriteError(f"{err}; {self.rescue()}") from None

    def rescue(self):
        """The finished seeds written to a new temporary folder: where, or why they could not be."""
        rescue, seeds = None, len(self.record["seeds"])
        try:
            rescue = Path(tempfile.mkdtemp(prefix=f"sst2_compare-{self.run_dir.name}-"))
            save_results(
                rescue, self.record, self.predictions, curve_predictions=self.curve_predictions
            )
        except (OSError, WriteError) as err:
            if rescue is not None:
                # no empty or half-written folder left behind
                shutil.rmtree(rescue, ignore_errors=True)
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            return f"the {seeds} finished seed(s) could not be written elsewhere either ({reason})"
        return f"the {seeds} finished seed(s) were written to {rescue} instead"


def learning_curve(cfg, plan, largest, *, restored):
    """The curve over the plan's sizes (None without one): a Findings per size, the largest size's
    the run's own; restored: a stopped curve's seeds per size, as StoppedRun.restored gives them."""
    if plan is None:
        return None
    by_size = {
        size: Findings(
            largest.eval_splits,
            resamples=cfg.bootstrap_resamples,
            first_seed=cfg.seed,
            restored=restored.get(size, ((), ())),
        )
        for size in plan.counts[:-1]
    }
    by_size[plan.counts[-1]] = largest
    return Curve(plan, by_size)


def save_report(run_dir, text):
    """report.md: the run's report, readable later without its terminal."""
    write_atomic(run_dir / "report.md", lambda path: write_text(path, text))


def data_record(eval_splits):
    """results.json's leakage and independence: each split's share of training phrases, and its
    independent units."""
    return {
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
    }


def external_in_validation(eval_splits):
    """How many of the external test set's sentences are GLUE validation sentences too (0 without
    an external test set)."""
    if "external_test" not in eval_splits:
        return 0
    external = eval_splits["external_test"].frame["sentence"]
    return shared_items(external, eval_splits["validation"].frame["sentence"])
