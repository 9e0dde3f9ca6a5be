"""What a person reads: the printed report, and the files kept of it."""
import os
import platform

import accelerate
import datasets
import numpy as np
import pandas as pd
import sklearn
import torch
import transformers
from accelerate import PartialState

import stats
from data import column

RUNS = ("head_only", "full_finetune")
EVAL_SPLITS = ("test", "validation")


def majority_accuracy(train, split):
    """Accuracy of always predicting the training set's most common label."""
    majority = np.bincount(column(train, "label"), minlength=2).argmax()
    return float(np.mean(column(split, "label") == majority))


def class_balance(data):
    """The notebook's question: is accuracy a fair metric on this data?"""
    counts = np.bincount(column(data["train"], "label"), minlength=2)
    return {"train_label_counts": dict(zip(stats.LABEL_NAMES, counts.tolist())),
            "train_label_shares": dict(zip(stats.LABEL_NAMES, (counts / counts.sum()).round(4).tolist())),
            "majority_class_accuracy_test": majority_accuracy(data["train"], data["test"])}


def print_class_balance(balance, log):
    shares = balance["train_label_shares"]
    log("train labels: " + ", ".join(f"{k} {balance['train_label_counts'][k]:,} ({100 * v:.1f}%)"
                                     for k, v in shares.items()))
    majority = balance["majority_class_accuracy_test"]
    log(f"always predicting the majority class scores {100 * majority:.1f}% on test. The classes are "
        f"{'close to balanced' if max(shares.values()) < 0.6 else 'imbalanced'}, so accuracy is meaningful once "
        f"read against that {100 * majority:.1f}% floor; F1 of 'positive' and macro-F1 are reported beside it.")


def print_run(name, run, leakage, log):
    for split in EVAL_SPLITS:
        m = run[split]
        seen = f"  ({100 * leakage[split]:.1f}% of these items are phrases of training items)"
        log(f"\n{name} on {split}: accuracy {m['accuracy']:.4f}  F1 {m['f1']:.4f}  macro-F1 {m['macro_f1']:.4f}{seen}")
        (tn, fp), (fn, tp) = m["confusion_matrix"]
        log(f"confusion (rows true, cols predicted):  neg [{tn:5d} {fp:5d}]   pos [{fn:5d} {tp:5d}]")
        log(m["report"])


def print_comparison(result, leakage, floors, log):
    runs, sig = result["runs"], result["significance"]
    log(f"{'':22}{'head-only':>10}{'full':>10}{'delta (points)':>16}{'relative':>10}")
    for split, delta in (("test", result["delta"]), ("validation", result["delta_validation"])):
        h, f = runs["head_only"][split], runs["full_finetune"][split]
        log(f"{split + ' accuracy':22}{h['accuracy']:10.4f}{f['accuracy']:10.4f}{100 * delta['accuracy']:+16.2f}"
            f"{delta['accuracy_relative_pct']:+9.1f}%")
        log(f"{split + ' F1':22}{h['f1']:10.4f}{f['f1']:10.4f}{100 * delta['f1']:+16.2f}")
    log("")
    for split in EVAL_SPLITS:
        s = sig[split]
        lo, hi = (100 * x for x in s["delta_accuracy_ci95"])
        log(f"{split}: accuracy delta 95% CI [{lo:+.2f}, {hi:+.2f}] points, McNemar p = {s['mcnemar_p']:.2g} "
            f"(head-only right & full wrong: {s['discordant'][0]}, the reverse: {s['discordant'][1]})")
    log("\n" + conclusion(result, leakage, floors))


def print_summary(summary, log):
    log("\nover seeds (mean +- std):")
    for run_name in RUNS:
        for split in EVAL_SPLITS:
            m = summary[run_name][split]
            log(f"  {run_name:14} {split:10} accuracy {m['accuracy']['mean']:.4f} +- {m['accuracy']['std']:.4f}"
                f"  F1 {m['f1']['mean']:.4f} +- {m['f1']['std']:.4f}")
    for key, split in (("delta", "test"), ("delta_validation", "validation")):
        d = summary[key]["accuracy"]
        log(f"  delta {split:10} {100 * d['mean']:+.2f} +- {100 * d['std']:.2f} points")


def conclusion(result, leakage, floors):
    """Plain sentences that claim no more than the interval, the test and the majority-class floor support."""
    sentences = []
    for split, delta, label in (("validation", result["delta_validation"], "GLUE validation"),
                                ("test", result["delta"], "the re-split test set")):
        s = result["significance"][split]
        lo, hi = (100 * x for x in s["delta_accuracy_ci95"])
        points = 100 * delta["accuracy"]
        if lo > 0 or hi < 0:
            verdict = f"full fine-tuning {'beats' if points > 0 else 'trails'} head-only by {abs(points):.1f} points"
        else:
            verdict = f"the difference of {points:+.1f} points is not distinguishable from zero"
        leak = f", {100 * leakage[split]:.0f}% of whose items are phrases seen in training" \
            if leakage[split] > 0.05 else ""
        sentences.append(f"On {label}{leak}, {verdict} "
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
    """Write through a temporary file and rename: an interrupted run never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def predictions_frame(data, per_seed_probs):
    frames = []
    for seed, probs in per_seed_probs:
        frame = pd.DataFrame({"seed": seed, **{name: column(data["test"], name)
                                               for name in ("idx", "sentence", "label")}})
        for run in RUNS:
            frame[f"{run}_pred"] = stats.predicted_labels(probs[run]["test"])
            frame[f"{run}_prob_pos"] = probs[run]["test"].round(6)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
