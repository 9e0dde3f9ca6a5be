"""What a person reads: the printed report, and the files kept of it."""
import dataclasses
import errno
import json
import math
import os
import platform
import time
from contextlib import contextmanager

import accelerate
import datasets
import numpy as np
import pandas as pd
import sklearn
import torch
import transformers
from accelerate import PartialState

import plots
import stats
from config import EVAL_SPLITS, LABEL_NAMES, RUN_TITLES, RUNS, SPLIT_TITLES, UsageError


def say(*args):
    """Print on the main process only: one report however many processes train."""
    PartialState().print(*args, flush=True)


class Stopwatch:
    """Wall time per stage: `with stopwatch("data"): ...` adds the stage's seconds under its name."""

    def __init__(self):
        self.started, self.seconds = time.perf_counter(), {}

    @contextmanager
    def __call__(self, stage):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = time.perf_counter() - started

    def total(self):
        return {**self.seconds, "total": time.perf_counter() - self.started}


def majority_accuracy(train_labels, labels):
    """Accuracy of always predicting the training set's most common label."""
    majority = np.bincount(train_labels, minlength=2).argmax()
    return float(np.mean(np.asarray(labels) == majority))


def class_balance(frames):
    """The notebook's question: is accuracy a fair metric on this data?"""
    train_labels = frames["train"]["label"].to_numpy()
    counts = np.bincount(train_labels, minlength=2)
    return {"train_label_counts": dict(zip(LABEL_NAMES, counts.tolist())),
            "train_label_shares": dict(zip(LABEL_NAMES, (counts / counts.sum()).round(4).tolist())),
            "majority_class_accuracy_test": majority_accuracy(train_labels, frames["test"]["label"])}


def print_setup(experiment, frames, leakage):
    """What the run works on: the splits, the label balance, the leakage, and where and how it runs."""
    balance = class_balance(frames)
    say(f"split '{experiment.cfg.split}': " + ", ".join(f"{name} {len(frame):,}" for name, frame in frames.items()))
    shares = balance["train_label_shares"]
    say("train labels: " + ", ".join(f"{k} {balance['train_label_counts'][k]:,} ({100 * v:.1f}%)"
                                     for k, v in shares.items()))
    majority = balance["majority_class_accuracy_test"]
    say(f"always predicting the majority class scores {100 * majority:.1f}% on test. The classes are "
        f"{'close to balanced' if max(shares.values()) < 0.6 else 'imbalanced'}, so accuracy is meaningful once "
        f"read against that {100 * majority:.1f}% floor; F1 of 'positive' and macro-F1 are reported beside it.")
    say(f"leakage: {100 * leakage['test']:.1f}% of test items and {100 * leakage['validation']:.1f}% of validation "
        "items are word-for-word phrases of training items; scores on such items reward memorising.")
    for split in EVAL_SPLITS:
        labels = frames[split]["label"]
        if len(labels) < 30 or labels.nunique() < 2:
            say(f"warning: {SPLIT_TITLES[split]} has {len(labels)} item(s), of {labels.nunique()} class(es): its "
                "scores and intervals say little; use more data (subset_fraction)")
    say(f"results go to {experiment.run_dir}")
    state = PartialState()
    say(f"device: {environment()['device']}, precision: {experiment.precision.name}, CUDA graphs: "
        f"{experiment.graphs_off_because or 'on'}, processes: {state.num_processes}")
    if state.device.type != "cuda":
        say("warning: no GPU; a full run is slow on a CPU. Try --subset_fraction 0.05 for a quick look.")


def print_run(run, metrics, leakage):
    for split in EVAL_SPLITS:
        m = metrics[split]
        seen = f"  ({100 * leakage[split]:.1f}% of these items are phrases of training items)"
        say(f"\n{RUN_TITLES[run]} on {split}: accuracy {m['accuracy']:.4f}  F1 {m['f1']:.4f}  "
            f"macro-F1 {m['macro_f1']:.4f}{seen}")
        (tn, fp), (fn, tp) = m["confusion_matrix"]
        say(f"confusion (rows true, cols predicted):  neg [{tn:5d} {fp:5d}]   pos [{fn:5d} {tp:5d}]")
        say(m["report"])


def print_comparison(result, leakage, floors):
    runs, sig = result["runs"], result["significance"]
    say(f"{'':22}{'head-only':>10}{'full':>10}{'delta (points)':>16}{'relative':>10}")
    for split, delta in (("test", result["delta"]), ("validation", result["delta_validation"])):
        h, f = runs["head_only"][split], runs["full_finetune"][split]
        say(f"{split + ' accuracy':22}{h['accuracy']:10.4f}{f['accuracy']:10.4f}{100 * delta['accuracy']:+16.2f}"
            f"{delta['accuracy_relative_pct']:+9.1f}%")
        say(f"{split + ' F1':22}{h['f1']:10.4f}{f['f1']:10.4f}{100 * delta['f1']:+16.2f}")
    say("")
    for split in EVAL_SPLITS:
        s = sig[split]
        lo, hi = (100 * x for x in s["delta_accuracy_ci95"])
        say(f"{split}: accuracy delta 95% CI [{lo:+.2f}, {hi:+.2f}] points, McNemar p = {s['mcnemar_p']:.2g} "
            f"(head-only right & full wrong: {s['discordant'][0]}, the reverse: {s['discordant'][1]})")
    say("\n" + conclusion(result, leakage, floors))


def print_summary(summary):
    say("\nover seeds (mean +- std):")
    for run in RUNS:
        for split in EVAL_SPLITS:
            m = summary[run][split]
            say(f"  {run:14} {split:10} accuracy {m['accuracy']['mean']:.4f} +- {m['accuracy']['std']:.4f}"
                f"  F1 {m['f1']['mean']:.4f} +- {m['f1']['std']:.4f}")
    for key, split in (("delta", "test"), ("delta_validation", "validation")):
        d = summary[key]["accuracy"]
        say(f"  delta {split:10} {100 * d['mean']:+.2f} +- {100 * d['std']:.2f} points")


def conclusion(result, leakage, floors):
    """Plain sentences that claim no more than the interval, the test and the majority-class floor support."""
    sentences = []
    for split, delta in (("validation", result["delta_validation"]), ("test", result["delta"])):
        s = result["significance"][split]
        lo, hi = (100 * x for x in s["delta_accuracy_ci95"])
        points = 100 * delta["accuracy"]
        if lo > 0 or hi < 0:
            verdict = f"full fine-tuning {'beats' if points > 0 else 'trails'} head-only by {abs(points):.1f} points"
        else:
            verdict = f"the difference of {points:+.1f} points is not distinguishable from zero"
        leak = f", {100 * leakage[split]:.0f}% of whose items are phrases seen in training" \
            if leakage[split] > 0.05 else ""
        sentences.append(f"On {SPLIT_TITLES[split]}{leak}, {verdict} "
                         f"(95% CI {lo:+.1f} to {hi:+.1f}, McNemar p = {s['mcnemar_p']:.2g}).")
    if leakage["test"] > 0.05:
        sentences.append("The test score rewards memorised phrases; trust GLUE validation, or use --split grouped.")
    for run, name in (("head_only", "The head-only model"), ("full_finetune", "The full fine-tune")):
        if result["runs"][run]["validation"]["accuracy"] <= floors["validation"] + 0.005:
            sentences.append(f"{name} does no better on GLUE validation than always predicting the majority class: "
                             "it learned nothing beyond the label shares, and the delta reflects that.")
    return " ".join(sentences)


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


def predictions_frame(frames, per_seed_probs):
    """One row per test example and seed: the sentence, its label, each run's prediction and P(positive)."""
    rows = []
    for seed, probs in per_seed_probs:
        frame = frames["test"][["idx", "sentence", "label"]].copy()
        frame["sentence"] = frame["sentence"].map(spreadsheet_safe)
        frame.insert(0, "seed", seed)
        for run in RUNS:
            frame[f"{run}_pred"] = stats.predicted_labels(probs[run]["test"])
            frame[f"{run}_prob_pos"] = probs[run]["test"].round(6)
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


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
    write_atomic(run_dir / "results.json",
                 lambda path: path.write_text(json.dumps(strict_json(results), indent=2, allow_nan=False)))


class Results:
    """One run's results.json and predictions.csv, rewritten after every seed so that a later failure loses none
    of the finished seeds (results.json says `"complete": false` until the last is in); then the printed report."""

    def __init__(self, experiment, frames, leakage):
        self.experiment, self.frames, self.leakage = experiment, frames, leakage
        self.labels = {split: frames[split]["label"].to_numpy() for split in EVAL_SPLITS}
        self.per_seed, self.per_seed_probs, self.record = [], [], None

    def add_seed(self, seed, records, probs, timings):
        cfg = self.experiment.cfg
        self.per_seed.append(stats.compare_runs(seed, records, probs, self.labels, cfg.bootstrap_resamples))
        self.per_seed_probs.append((seed, probs))
        if not PartialState().is_main_process:
            return
        first = self.per_seed[0]
        self.record = {
            "complete": len(self.per_seed) == cfg.num_seeds, "config": dataclasses.asdict(cfg),
            "class_balance": class_balance(self.frames),
            "sizes": {name: len(frame) for name, frame in self.frames.items()},
            "leakage": {"test_items_inside_train_fraction": self.leakage["test"],
                        "validation_items_inside_train_fraction": self.leakage["validation"]},
            **{key: first[key] for key in ("runs", "delta", "delta_validation", "significance")},
            "speed": {"precision": self.experiment.precision.name,
                      "cuda_graphs": self.experiment.graphs_off_because or "on"},
            "timings_seconds": timings, "environment": environment()}
        if len(self.per_seed) > 1:
            self.record["seeds"] = self.per_seed
            self.record["summary"] = stats.summarize_seeds(self.per_seed)
        save_results(self.experiment.run_dir, self.record, predictions_frame(self.frames, self.per_seed_probs))

    def finish(self, total_seconds):
        """The printed report and the figures, once every seed is in."""
        if not PartialState().is_main_process:
            return
        say("\n=== report ===")
        first = self.per_seed[0]
        for run in RUNS:
            print_run(run, first["runs"][run], self.leakage)
        train_labels = self.frames["train"]["label"].to_numpy()
        floors = {split: majority_accuracy(train_labels, self.labels[split]) for split in EVAL_SPLITS}
        print_comparison(first, self.leakage, floors)
        if len(self.per_seed) > 1:
            print_summary(self.record["summary"])
        figures = plots.save_figures(self.per_seed, floors, self.experiment.run_dir, write_atomic)
        say(f"\nwrote {self.experiment.run_dir}/results.json, predictions.csv, {', '.join(f.name for f in figures)}")
        say(f"total wall time {total_seconds:.1f}s")
