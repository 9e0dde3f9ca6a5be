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
from config import DELTA_KEYS, LABEL_NAMES, RUN_TITLES, RUNS, SPLIT_TITLES, UsageError, evaluated
from data import shared_items


def say(*args):
    """Print on the main process only: one report however many processes train."""
    PartialState().print(*args, flush=True)


def listed(items):
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


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


def class_balance(frames):
    """The notebook's question: is accuracy a fair metric on this data? Train's label counts, and per evaluation
    split its positive share, whether it is close to balanced, and the majority-class floor."""
    train_labels = frames["train"]["label"].to_numpy()
    counts = np.bincount(train_labels, minlength=2)
    splits = {}
    for split in evaluated(frames):
        positive = float(frames[split]["label"].mean())
        splits[split] = {"items": len(frames[split]), "positive_share": positive,
                         "close_to_balanced": max(positive, 1 - positive) < 0.6,
                         "majority_class_floor": stats.majority_floor(train_labels, frames[split]["label"])}
    return {"train_label_counts": dict(zip(LABEL_NAMES, counts.tolist())),
            "train_label_shares": dict(zip(LABEL_NAMES, (counts / counts.sum()).round(4).tolist())), **splits}


def print_setup(experiment, frames, leakage, clusters):
    """What the run works on: the splits, their label mixes, the leakage and independence, where and how it runs."""
    balance = class_balance(frames)
    say(f"split '{experiment.cfg.split}': " + ", ".join(f"{name} {len(frame):,}" for name, frame in frames.items()))
    say("train labels: " + ", ".join(f"{k} {balance['train_label_counts'][k]:,} ({100 * v:.1f}%)"
                                     for k, v in balance["train_label_shares"].items()))
    if "external_test" in frames:
        say(f"external test set: {len(frames['external_test']):,} labelled sentences from "
            f"{experiment.cfg.external_test_file}, scored like GLUE validation, sentence by sentence")
        shared = shared_items(frames["external_test"]["sentence"], frames["validation"]["sentence"])
        if shared:
            say(f"warning: {shared:,} of the external test set's sentences are also GLUE validation sentences: "
                "it is meant to be a set of its own (such as the SST-2 test sentences)")
    for split in evaluated(frames):
        b = balance[split]
        say(f"{split}: {100 * b['positive_share']:.1f}% positive "
            f"({'close to balanced' if b['close_to_balanced'] else 'imbalanced'}); always predicting the majority "
            f"class scores {100 * b['majority_class_floor']:.1f}%: read accuracy against that floor, with F1 and "
            "macro-F1 beside it")
    say(f"leakage: {listed(f'{100 * share:.1f}% of {split} items' for split, share in leakage.items())} are "
        "word-for-word phrases of training items; scores on such items reward memorising.")
    if clusters["test"] is not None:
        say(f"independence: the {len(frames['test']):,} test items are nested phrases falling into "
            f"{clusters['test'].max() + 1:,} clusters; its intervals resample whole clusters")
    for split in evaluated(frames):
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


def print_run(run, metrics, leakage, seed):
    for split in evaluated(metrics):
        m = metrics[split]
        seen = f"  ({100 * leakage[split]:.1f}% of these items are phrases of training items)"
        say(f"\n{RUN_TITLES[run]}, seed {seed}, on {split}: accuracy {m['accuracy']:.4f}  F1 {m['f1']:.4f}  "
            f"macro-F1 {m['macro_f1']:.4f}{seen}")
        (tn, fp), (fn, tp) = m["confusion_matrix"]
        say(f"confusion (rows true, cols predicted):  neg [{tn:5d} {fp:5d}]   pos [{fn:5d} {tp:5d}]")
        say(m["report"])


def reduction(delta):
    share = delta["error_rate_reduction"]
    return f"{100 * share:+.1f}%" if share is not None else "n/a"


def interval_line(split, s, baseline):
    lo, hi = (100 * x for x in s["delta_accuracy_ci95"])
    return (f"{split}: accuracy delta 95% CI [{lo:+.2f}, {hi:+.2f}] points over {s['independent_units']:,} "
            f"{s['resampled_unit']}, {s['paired_test']} p = {s['p_value']:.2g} ({baseline} right & full wrong: "
            f"{s['discordant'][0]}, the reverse: {s['discordant'][1]})")


def print_comparison(result, balance, leakage, features_cached, summary=None):
    runs, seed, splits = result["runs"], result["seed"], evaluated(result["significance"])
    seeds = len(summary["delta"]["per_seed_accuracy"]) if summary else 1
    say(f"seed {seed}" + (f" (the first of {seeds}; the verdict below speaks for all)" if seeds > 1 else "") + ":")
    say(f"{'':24}{'head-only':>10}{'full':>10}{'delta (points)':>16}{'error-rate reduction':>22}{'positive':>10}")
    for split in splits:
        h, f, delta = runs["head_only"][split], runs["full_finetune"][split], result[DELTA_KEYS[split]]
        say(f"{split + ' accuracy':24}{h['accuracy']:10.4f}{f['accuracy']:10.4f}{100 * delta['accuracy']:+16.2f}"
            f"{reduction(delta):>22}{100 * balance[split]['positive_share']:9.1f}%")
        say(f"{split + ' F1':24}{h['f1']:10.4f}{f['f1']:10.4f}{100 * delta['f1']:+16.2f}")
    for kind, part in result["test_by_kind"].items():
        if part:
            title = f"test {kind.replace('_', ' ')}"
            say(f"{title:24}{part['accuracy']['head_only']:10.4f}{part['accuracy']['full_finetune']:10.4f}"
                f"{100 * part['delta_accuracy']:+16.2f}    (accuracy on {part['items']:,} items)")
    probe = result.get("probe_reference")
    if probe:
        say("\nbest linear probe (reference), the full fine-tune's gain over it:")
        for split in splits:
            d = probe["delta"][split]
            say(f"{split + ' accuracy':24}{probe['runs'][split]['accuracy']:10.4f}"
                f"{runs['full_finetune'][split]['accuracy']:10.4f}{100 * d['accuracy']:+16.2f}{reduction(d):>22}")
    say("")
    for split in splits:
        say(interval_line(split, result["significance"][split], "head-only"))
    if probe:
        for split in splits:
            say(interval_line(split, probe["significance"][split], "probe"))
    if features_cached:
        say("head-only trained on frozen-encoder features computed once: the encoder's dropout was off (the notebook "
            "ran the encoder with dropout on at every step).")
    say("\n" + conclusion(result, leakage, balance, summary))


def print_summary(summary):
    say("\nover seeds (mean +- std; the split is the same, so the spread is training randomness):")
    splits = evaluated(summary[RUNS[0]])
    for run in RUNS:
        for split in splits:
            m = summary[run][split]
            say(f"  {run:14} {split:13} accuracy {m['accuracy']['mean']:.4f} +- {m['accuracy']['std']:.4f}"
                f"  F1 {m['f1']['mean']:.4f} +- {m['f1']['std']:.4f}")
    for split in splits:
        d = summary[DELTA_KEYS[split]]
        say(f"  delta {split:13} {100 * d['accuracy']['mean']:+.2f} +- {100 * d['accuracy']['std']:.2f} points; "
            f"per seed {', '.join(f'{100 * x:+.2f}' for x in d['per_seed_accuracy'])}")


def population(split, leakage, significance):
    """What a sentence of the verdict speaks of: the split, its independent units, the share seen in training."""
    units = significance["independent_units"]
    leak = f"; {100 * leakage:.0f}% of its items are phrases seen in training" if leakage > 0.05 else ""
    if split == "test":
        return f"the re-split test set ({units:,} clusters of nested phrases{leak})"
    return f"{SPLIT_TITLES[split]} ({units:,} independent sentences{leak})"


def verdict(delta, significance, baseline):
    lo, hi = (100 * x for x in significance["delta_accuracy_ci95"])
    points = 100 * delta["accuracy"]
    evidence = f"95% CI {lo:+.1f} to {hi:+.1f}, {significance['paired_test']} p = {significance['p_value']:.2g}"
    if significance["difference_claimed"]:
        direction = "beats" if points > 0 else "trails"
        return f"full fine-tuning {direction} {baseline} by {abs(points):.1f} points ({evidence})"
    return (f"the difference from {baseline} ({points:+.1f} points) is not established ({evidence}: the interval and "
            "the paired test do not both rule out chance)")


def conclusion(result, leakage, balance, summary=None):
    """Plain sentences, each naming the population it measures, that claim no more than the interval, the paired
    test, the majority-class floor and the seeds support."""
    sentences, seed = [], (f"In seed {result['seed']}, o" if summary else "O")
    splits = evaluated(result["significance"])
    for split in splits:
        s = result["significance"][split]
        sentences.append(f"{seed}n {population(split, leakage[split], s)}, "
                         f"{verdict(result[DELTA_KEYS[split]], s, 'head-only')}.")
    parts = []
    for kind, part in result["test_by_kind"].items():
        if part:
            said = verdict({"accuracy": part["delta_accuracy"]}, part["significance"], "head-only")
            parts.append(f"on its {part['items']:,} {kind.replace('_', ' ')}, {said}")
    if parts:
        sentences.append(f"Within it, {'; '.join(parts)}.")
    if leakage["test"] > 0.05:
        trusted = listed(SPLIT_TITLES[split] for split in splits if split != "test")
        sentences.append(f"The test score rewards memorised phrases; trust {trusted}, or use --split grouped.")
    probe = result.get("probe_reference")
    if probe:
        d, s = probe["delta"]["validation"], probe["significance"]["validation"]
        recipe = probe["runs"]["validation"]["accuracy"] - result["runs"]["head_only"]["validation"]["accuracy"]
        sentences.append(f"Against the best linear probe on the same frozen features (a reference, "
                         f"{100 * probe['runs']['validation']['accuracy']:.1f}% on GLUE validation), "
                         f"{verdict(d, s, 'the probe')}" + (
                             f"; so about {100 * recipe:.1f} points of the gap over the notebook's head-only run come "
                             "from how that head was trained, not from freezing the encoder." if recipe > 0 else "."))
    for run, name in (("head_only", "The head-only model"), ("full_finetune", "The full fine-tune")):
        floored = result["at_majority_floor"][run]
        if floored:
            names = listed(SPLIT_TITLES[split] for split in floored)
            pair = ("the full fine-tune with a constant guess" if run == "head_only"
                    else "a constant guess with the head-only model")
            sentences.append(f"{name} does no better than always predicting the majority class on {names}: it "
                             f"learned nothing there beyond the label shares, so the delta on {names} compares {pair}.")
    for split in evaluated(balance):
        if not balance[split]["close_to_balanced"]:
            title = SPLIT_TITLES[split]
            sentences.append(f"{title[0].upper()}{title[1:]} is imbalanced "
                             f"({100 * balance[split]['positive_share']:.0f}% positive): read its F1 and macro-F1.")
    if summary:
        n = len(summary["delta"]["per_seed_accuracy"])
        for split in splits:
            d = summary[DELTA_KEYS[split]]
            sentences.append(f"Over {n} seeds (training randomness on one split), the delta on {SPLIT_TITLES[split]} "
                             f"is {100 * d['accuracy']['mean']:+.1f} +- {100 * d['accuracy']['std']:.1f} points, a "
                             f"difference claimed in {d['seeds_claiming_a_difference']} of {n}.")
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
    """One row per evaluated example and seed: its split, sentence and label, each run's prediction and
    P(positive), and whether the full fine-tune fixed ("fixed") or broke ("broken") head-only's answer."""
    rows = []
    for seed, probs in per_seed_probs:
        for split in evaluated(probs[RUNS[0]]):
            frame = frames[split][["idx", "sentence", "label"]].copy()
            frame["sentence"] = frame["sentence"].map(spreadsheet_safe)
            frame.insert(0, "split", split)
            frame.insert(0, "seed", seed)
            right = {}
            for run in RUNS:
                frame[f"{run}_pred"] = stats.predicted_labels(probs[run][split])
                frame[f"{run}_prob_pos"] = probs[run][split].round(6)
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


def print_flips(flipped, seed, most=5):
    flipped = flipped[flipped["seed"] == seed]
    for change, what in (("fixed", "fixes (head-only wrong, full fine-tune right)"),
                         ("broken", "breaks (head-only right, full fine-tune wrong)")):
        rows = flipped[flipped["change"] == change]
        say(f"\nseed {seed}: the full fine-tune {what} {len(rows):,} examples"
            + (f"; the {min(most, len(rows))} it is surest of:" if len(rows) else "."))
        for row in rows.head(most).itertuples():
            say(f"  [{row.split}, {LABEL_NAMES[row.label]}] P(positive) head-only {row.head_only_prob_pos:.2f}, "
                f"full {row.full_finetune_prob_pos:.2f}: {row.sentence[:110]}")


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
    """One run's results.json and predictions.csv, rewritten after every seed so that a later failure loses none
    of the finished seeds (results.json says `"complete": false` until the last is in); then the printed report."""

    def __init__(self, experiment, frames, leakage, clusters, test_phrases, lengths, probe=None,
                 features_cached=False):
        """probe: None, or a Future of the linear probe's (P(positive) per split, what was fit)."""
        self.experiment, self.frames, self.leakage, self.clusters = experiment, frames, leakage, clusters
        self.test_phrases, self.lengths = np.asarray(test_phrases, bool), lengths
        self.probe_fitting, self.probe, self.features_cached = probe, None, features_cached
        self.labels = {split: frames[split]["label"].to_numpy() for split in evaluated(frames)}
        self.balance = class_balance(frames)
        self.floors = {split: self.balance[split]["majority_class_floor"] for split in self.labels}
        self.per_seed, self.per_seed_probs, self.record, self.predictions = [], [], None, None

    def probe_result(self):
        """The linear probe's result, waited for once (it fits while the first seed trains). A probe whose fit failed
        is reported and left out: the runs already trained must not be lost to their reference."""
        if self.probe_fitting is not None:
            fitting, self.probe_fitting = self.probe_fitting, None
            try:
                self.probe = fitting.result()
            except Exception as err:  # noqa: BLE001 - whatever broke, the trained runs' results stand without it
                say(f"no linear probe reference: its fit failed ({type(err).__name__}: {err})")
            else:
                fit = self.probe[1]
                say(f"best linear probe (reference): regularisation C = {fit['C']:.3g} chosen by {fit['folds']}-fold "
                    f"cross-validation on {fit['train_items']:,} training items ({fit['seconds']:.1f}s, on the CPU "
                    "beside the training)")
        return self.probe

    def add_seed(self, seed, records, probs, timings):
        cfg = self.experiment.cfg
        probe = self.probe_result()
        models = {**probs, "probe": probe[0]} if probe else probs
        self.per_seed.append(stats.compare_runs(seed, records, models, self.labels, cfg.bootstrap_resamples,
                                                self.clusters, self.floors, self.test_phrases, self.lengths))
        self.per_seed_probs.append((seed, probs))
        if not PartialState().is_main_process:
            return
        first = self.per_seed[0]
        self.record = {
            "complete": len(self.per_seed) == cfg.num_seeds, "config": dataclasses.asdict(cfg),
            "class_balance": self.balance,
            "sizes": {name: len(frame) for name, frame in self.frames.items()},
            "leakage": {f"{split}_items_inside_train_fraction": share for split, share in self.leakage.items()},
            **{key: first[key] for key in ("runs", *(DELTA_KEYS[split] for split in self.labels), "significance",
                                           "at_majority_floor", "test_by_kind", "accuracy_by_length")},
            "speed": {"precision": self.experiment.precision.name,
                      "cuda_graphs": self.experiment.graphs_off_because or "on"},
            "timings_seconds": timings, "environment": environment()}
        if probe:
            self.record["probe_reference"] = {**first["probe_reference"], "fit": probe[1]}
        if len(self.per_seed) > 1:
            self.record["seeds"] = self.per_seed
            self.record["summary"] = stats.summarize_seeds(self.per_seed)
        self.predictions = predictions_frame(self.frames, self.per_seed_probs)
        save_results(self.experiment.run_dir, self.record, self.predictions)

    def finish(self, total_seconds):
        """The printed report and the figures, once every seed is in."""
        if not PartialState().is_main_process:
            return
        say("\n=== report ===")
        first = self.per_seed[0]
        for run in RUNS:
            print_run(run, first["runs"][run], self.leakage, first["seed"])
        summary = self.record.get("summary")
        print_comparison(first, self.balance, self.leakage, self.features_cached, summary)
        if summary:
            print_summary(summary)
        print_flips(flips(self.predictions), first["seed"])
        figures = plots.save_figures(self.per_seed, self.floors, self.experiment.run_dir, write_atomic)
        say(f"\nwrote {self.experiment.run_dir}/results.json, predictions.csv, flips.csv, "
            f"{', '.join(f.name for f in figures)}")
        say(f"total wall time {total_seconds:.1f}s")
