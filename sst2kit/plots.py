"""The figures a reader looks at first: both runs' scores, their confusion matrices, and how training went."""
from functools import partial

import matplotlib

matplotlib.use("Agg")  # files only: works without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sst2kit.names import LABEL_NAMES, RUN_TITLES, RUNS, evaluated  # noqa: E402

RUN_COLORS = {"head_only": "#7a9cc6", "full_finetune": "#d9822b"}
METRICS = {"accuracy": "accuracy", "f1": "F1 (positive)", "macro_f1": "macro-F1"}


def save_figures(per_seed, majority_accuracy, out_dir, write):
    """One PNG per question; every seed's result drawn, so the spread is visible. write(path, writer) puts each
    file in place. Returns the paths."""
    paths = [out_dir / "metrics.png", out_dir / "confusion_matrices.png", out_dir / "training_curves.png",
             out_dir / "accuracy_by_length.png"]
    for draw, path in zip((partial(draw_metrics, majority_accuracy=majority_accuracy), draw_confusion, draw_curves,
                           draw_by_length), paths):
        fig = draw(per_seed)
        write(path, lambda target: fig.savefig(target, format="png", dpi=120, bbox_inches="tight"))
        plt.close(fig)
    return paths


def draw_metrics(per_seed, majority_accuracy):
    splits = evaluated(per_seed[0]["significance"])
    fig, axes = plt.subplots(1, len(splits), figsize=(5.5 * len(splits), 4.2), sharey=True)
    x, width = np.arange(len(METRICS)), 0.38
    for ax, split in zip(axes, splits):
        legend = split == splits[0]  # each label once
        for offset, run in zip((-width / 2, width / 2), RUNS):
            values = np.array([[s["runs"][run][split][m] for m in METRICS] for s in per_seed])
            means = values.mean(0)
            bars = ax.bar(x + offset, means, width, color=RUN_COLORS[run],
                          label=RUN_TITLES[run] if legend else None,
                          yerr=values.std(0, ddof=1) if len(values) > 1 else None, capsize=3)
            for seed_values in values if len(values) > 1 else []:
                ax.scatter(x + offset, seed_values, color="black", s=8, zorder=3)
            ax.bar_label(bars, labels=[f"{v:.3f}" for v in means], padding=2, fontsize=8)
        deltas = [100 * (s["runs"]["full_finetune"][split]["accuracy"] - s["runs"]["head_only"][split]["accuracy"])
                  for s in per_seed]
        ax.hlines(majority_accuracy[split], -0.5, 0.5, colors="black", linestyles="dashed",
                  label="always the majority class" if legend else None)
        probe = per_seed[0].get("probe_reference")
        if probe:  # the same frozen features, a well-fit classifier: what the head-only recipe could have reached
            ax.hlines(probe["runs"][split]["accuracy"], -0.5, 0.5, colors="#3a8a4a", linestyles="dotted",
                      label="best linear probe (reference)" if legend else None)
        ax.set_title(f"{split}: full fine-tune {np.mean(deltas):+.1f} accuracy points")
        ax.set_xticks(x, list(METRICS.values()))
        ax.set_ylim(0, 1.08)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("score" + (f" (mean of {len(per_seed)} seeds, bars: std)" if len(per_seed) > 1 else ""))
    fig.legend(loc="upper center", ncol=4, bbox_to_anchor=(0.5, 0.0))
    return fig


def draw_confusion(per_seed):
    splits = evaluated(per_seed[0]["significance"])
    fig, axes = plt.subplots(len(splits), 2, figsize=(8.5, 3.75 * len(splits)), squeeze=False)
    for row, split in enumerate(splits):
        for col, run in enumerate(RUNS):
            counts = np.sum([s["runs"][run][split]["confusion_matrix"] for s in per_seed], axis=0)
            shares = counts / counts.sum(1, keepdims=True)  # per true class: recall on the diagonal
            ax = axes[row, col]
            ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
            for (i, j), n in np.ndenumerate(counts):
                ax.text(j, i, f"{n:,}\n{100 * shares[i, j]:.1f}%", ha="center", va="center",
                        color="white" if shares[i, j] > 0.6 else "black")
            ax.set_xticks([0, 1], LABEL_NAMES)
            ax.set_yticks([0, 1], LABEL_NAMES)
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
            ax.set_title(f"{RUN_TITLES[run]}, {split}", fontsize=10)
    if len(per_seed) > 1:
        fig.suptitle(f"counts summed over {len(per_seed)} seeds")
    fig.tight_layout()
    return fig


def draw_curves(per_seed):
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    for run in RUNS:
        for i, s in enumerate(per_seed):
            history = s["runs"][run]["history"]
            label = RUN_TITLES[run] if i == 0 else None
            if history["train_loss"]:
                loss_ax.plot(*zip(*history["train_loss"]), color=RUN_COLORS[run], alpha=0.85, label=label)
            if history["eval_accuracy"]:
                acc_ax.plot(*zip(*history["eval_accuracy"]), "o-", color=RUN_COLORS[run], alpha=0.85, label=label)
    loss_ax.set(title="training loss", xlabel="epoch", ylabel="cross-entropy")
    acc_ax.set(title="validation accuracy at the start and after each epoch", xlabel="epoch", ylabel="accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


def draw_by_length(per_seed):
    """Where fine-tuning helps: both runs' accuracy per sentence length, one panel per split (mean over seeds)."""
    splits = evaluated(per_seed[0]["significance"])
    fig, axes = plt.subplots(1, len(splits), figsize=(5.5 * len(splits), 4.2), sharey=True)
    for ax, split in zip(axes, splits):
        buckets = per_seed[0]["accuracy_by_length"][split]
        x = np.arange(len(buckets))
        for run in RUNS:
            means = [np.mean([s["accuracy_by_length"][split][i][run] for s in per_seed]) for i in range(len(buckets))]
            ax.plot(x, means, "o-", color=RUN_COLORS[run], label=RUN_TITLES[run] if split == splits[0] else None)
        ax.set_xticks(x, [f"{b['tokens']}\n({b['items']:,})" for b in buckets])
        ax.set(title=f"{split}: accuracy by length", xlabel="tokens (items)", ylim=(0, 1.05))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy" + (f" (mean of {len(per_seed)} seeds)" if len(per_seed) > 1 else ""))
    fig.legend(loc="upper center", ncol=2, bbox_to_anchor=(0.5, -0.07))
    return fig
