"""The figures a reader looks at first: both runs' scores, their confusion matrices, how training
went, and accuracy by sentence length, each with its uncertainty or its floor."""

import matplotlib

matplotlib.use("Agg")  # files only: works without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sst2kit.files import write_atomic  # noqa: E402
from sst2kit.metrics import MIN_BUCKET_UNITS  # noqa: E402
from sst2kit.names import (  # noqa: E402
    LABEL_NAMES,
    PROBE,
    PROBE_TITLE,
    RUN_TITLES,
    RUNS,
    SPLIT_TITLES,
    headline_split,
)

RUN_COLORS = dict(zip(RUNS, ("#7a9cc6", "#d9822b")))
METRICS = {"accuracy": "accuracy", "f1": "F1 (positive)", "macro_f1": "macro-F1"}


def save_figures(results):
    """One PNG per question in the run folder, each written atomically; every seed's result drawn,
    so the spread is visible. Returns the paths."""
    per_seed, eval_splits, out_dir = results.findings.per_seed, results.eval_splits, results.run_dir
    figures = {
        "metrics.png": lambda: draw_metrics(per_seed, eval_splits, results.findings.summary),
        "confusion_matrices.png": lambda: draw_confusion(per_seed),
        "training_curves.png": lambda: draw_curves(per_seed),
        "accuracy_by_length.png": lambda: draw_by_length(per_seed, results.findings.summary),
    }
    if results.curve:
        split = headline_split(results.eval_splits)
        figures["learning_curve.png"] = lambda: draw_learning_curve(results.curve.points, split)
    paths = []
    for name, draw in figures.items():
        fig = draw()
        write_atomic(
            out_dir / name,
            lambda target: fig.savefig(target, format="png", dpi=120, bbox_inches="tight"),
        )
        plt.close(fig)
        paths.append(out_dir / name)
    return paths


def title_of(split):
    title = SPLIT_TITLES[split]
    return title[0].upper() + title[1:]


def delta_title(per_seed, split, summary):
    """'+27.9 points, 95% CI [+24.4, +31.3]' for one seed; over several, the mean with its interval
    across seeds and units, and the seeds' SD."""
    if summary:
        test = summary.deltas[split].test
        lo, hi = (100 * x for x in test.delta_accuracy_ci95)
        return (
            f"{100 * test.delta_accuracy:+.1f} points over {len(per_seed)} seeds, 95% CI "
            f"[{lo:+.1f}, {hi:+.1f}]\n(seeds' SD {100 * test.seed_sd:.1f})"
        )
    lo, hi = (100 * x for x in per_seed[0].tests[split].delta_accuracy_ci95)
    return f"{100 * per_seed[0].deltas[split].accuracy:+.1f} points, 95% CI [{lo:+.1f}, {hi:+.1f}]"


def draw_metrics(per_seed, eval_splits, summary):
    splits = per_seed[0].splits
    fig, axes = plt.subplots(
        1, len(splits), figsize=(5.5 * len(splits), 4.4), sharey=True, squeeze=False
    )
    for ax, split in zip(axes[0], splits):
        legend = split == splits[0]  # each label once
        draw_run_bars(ax, per_seed, split, legend=legend)
        draw_reference_line(
            ax,
            eval_splits[split].majority_floor,
            color="black",
            style="dashed",
            text="always the majority class: {:.3f}",
            label="always the majority class (accuracy)" if legend else None,
        )
        probe = per_seed[0].probe
        if probe:  # the same frozen features, a well-fit classifier: what head-only could reach
            draw_reference_line(
                ax,
                per_seed[0].metrics[PROBE][split].accuracy,
                color="#3a8a4a",
                style="dotted",
                text="linear probe: {:.3f}",
                label=f"{PROBE_TITLE}, accuracy" if legend else None,
                row=1,
            )
        ax.set_title(
            f"{title_of(split)}\nfull fine-tune − head-only accuracy:\n"
            f"{delta_title(per_seed, split, summary)}",
            fontsize=10,
        )
        ax.set_xticks(np.arange(len(METRICS)), list(METRICS.values()))
        ax.set_ylim(0, 1.12)  # above 1.0: the reference levels' values
        ax.grid(axis="y", alpha=0.3)
    seeds = f" (mean of {len(per_seed)} seeds, bars: std)" if len(per_seed) > 1 else ""
    axes[0, 0].set_ylabel("score" + seeds)
    fig.legend(loc="upper center", ncol=4, bbox_to_anchor=(0.5, -0.02))
    return fig


def draw_run_bars(ax, per_seed, split, *, legend, width=0.38):
    """Both runs' metrics as bars (the mean over seeds, their SD, each seed a dot)."""
    x = np.arange(len(METRICS))
    for offset, run in zip((-width / 2, width / 2), RUNS):
        values = np.array([[getattr(s.metrics[run][split], m) for m in METRICS] for s in per_seed])
        means, several = values.mean(0), len(values) > 1
        bars = ax.bar(
            x + offset,
            means,
            width,
            color=RUN_COLORS[run],
            label=RUN_TITLES[run] if legend else None,
            yerr=values.std(0, ddof=1) if several else None,
            capsize=3,
        )
        for seed_values in values if several else []:
            ax.scatter(x + offset, seed_values, color="black", s=8, zorder=3)
        # inside the bar, upright: never on an error bar, a seed's dot or the next bar's label
        ax.bar_label(
            bars,
            labels=[f"{v:.3f}" for v in means],
            label_type="center",
            rotation=90,
            fontsize=8,
            color="white",
        )


def draw_reference_line(ax, value, *, color, style, text, label, row=0):
    """A level across the accuracy bars (a floor, or the probe); its value written in the band
    above 1.0, inside the axes, where no bar, error bar or tick label can be under it."""
    ax.hlines(value, -0.5, 0.5, colors=color, linestyles=style, label=label)
    ax.text(
        0.02,
        0.985 - 0.045 * row,
        text.format(value),
        transform=ax.transAxes,
        ha="left",
        va="top",
        fontsize=7.5,
        color=color,
    )


def draw_confusion(per_seed):
    splits = per_seed[0].splits
    fig, axes = plt.subplots(len(splits), 2, figsize=(8.5, 3.75 * len(splits)), squeeze=False)
    for row, split in enumerate(splits):
        for col, run in enumerate(RUNS):
            counts = np.sum([s.metrics[run][split].confusion_matrix for s in per_seed], axis=0)
            # per true class: recall on the diagonal
            shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
            ax = axes[row, col]
            ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
            for (i, j), n in np.ndenumerate(counts):
                ax.text(
                    j,
                    i,
                    f"{n:,}\n{100 * shares[i, j]:.1f}%",
                    ha="center",
                    va="center",
                    color="white" if shares[i, j] > 0.6 else "black",
                )
            ax.set_xticks([0, 1], LABEL_NAMES)
            ax.set_yticks([0, 1], LABEL_NAMES)
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
            ax.set_title(f"{RUN_TITLES[run]}, {SPLIT_TITLES[split]}", fontsize=10)
    summed = f"; counts summed over {len(per_seed)} seeds" if len(per_seed) > 1 else ""
    fig.suptitle(
        f"counts, and % of each true class (row shares: recall on the diagonal){summed}",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


SEED_STYLES = ("-", "--", ":", "-.")


def draw_curves(per_seed):
    """Training loss and validation accuracy, one row per run on that run's own epochs (a 2-epoch
    fine-tune beside a 20-epoch head would fill a tenth of a shared axis); line style tells the
    seed. The accuracy panels share their scale, so the runs' levels compare across rows."""
    fig, axes = plt.subplots(len(RUNS), 2, figsize=(11, 3.3 * len(RUNS)), sharey="col")
    for (loss_ax, acc_ax), run in zip(axes, RUNS):
        for i, s in enumerate(per_seed):
            history, style = s.training[run].history, SEED_STYLES[i % len(SEED_STYLES)]
            label = f"seed {s.seed}" if len(per_seed) > 1 else None
            if history["train_loss"]:
                loss_ax.plot(
                    *zip(*history["train_loss"]),
                    style,
                    color=RUN_COLORS[run],
                    label=label,
                )
            if history["eval_accuracy"]:
                acc_ax.plot(
                    *zip(*history["eval_accuracy"]),
                    style,
                    marker="o",
                    color=RUN_COLORS[run],
                )
        loss_ax.set(title=f"{RUN_TITLES[run]}: training loss", ylabel="cross-entropy")
        acc_ax.set(title=f"{RUN_TITLES[run]}: GLUE validation accuracy", ylabel="accuracy")
        for ax in (loss_ax, acc_ax):
            ax.set_xlabel("epoch (of this run)")
            ax.grid(alpha=0.3)
        if label:
            loss_ax.legend(fontsize=8)
    fig.suptitle(
        "each run on its own epochs; validation scored at the start and after each epoch",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


CURVE_COLORS = {**RUN_COLORS, PROBE: "#3a8a4a"}
CURVE_LABELS = {**RUN_TITLES, PROBE: PROBE_TITLE}


def draw_learning_curve(points, split):
    """Accuracy of each arm against the training-set size (log axis) with its 95% interval, and
    below it the delta with its interval and the zero line: a claimed size filled, an unclaimed one
    hollow, a withheld one (a run broke) a grey cross on the zero line, never a number."""
    fig, (acc_ax, delta_ax) = plt.subplots(
        2, 1, figsize=(7.5, 7), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    draw_curve_arms(acc_ax, [p for p in points if not p.withheld])
    draw_curve_deltas(delta_ax, points)
    acc_ax.set(ylabel=f"{SPLIT_TITLES[split]} accuracy", xscale="log")
    acc_ax.set_title("the learning curve: mean over the seeds, 95% intervals", fontsize=10)
    sizes = [p.size for p in points]
    delta_ax.set_xticks(sizes, [f"{size:,}" for size in sizes], minor=False)
    delta_ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    delta_ax.set(
        xlabel="training examples (log scale)",
        ylabel="full fine-tune − head-only\n(points, 95% CI)",
    )
    delta_ax.set_title(
        "filled: established ahead (Holm over the sizes); hollow: not established; "
        "x: withheld (a run broke)",
        fontsize=8,
    )
    for ax in (acc_ax, delta_ax):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def draw_curve_arms(ax, shown):
    """Each arm's accuracy at the sizes not withheld, with its interval."""
    for model in [m for m in CURVE_LABELS if shown and m in shown[0].accuracy]:
        means = np.array([p.accuracy[model]["mean"] for p in shown])
        bounds = np.array([p.accuracy[model]["ci95"] for p in shown]).T.reshape(2, -1)
        ax.errorbar(
            [p.size for p in shown], means, yerr=np.abs(bounds - means), marker="o", capsize=3,
            color=CURVE_COLORS[model], label=CURVE_LABELS[model],
            linestyle=":" if model == PROBE else "-",
        )  # fmt: skip
    if shown:
        ax.legend(fontsize=8, loc="lower right")


def draw_curve_deltas(ax, points):
    """The delta at each size with its interval; a withheld size a cross on the zero line."""
    for p in points:
        if p.withheld:
            ax.scatter([p.size], [0], marker="x", color="grey", s=60, zorder=3)
            continue
        low, high = (100 * v for v in p.delta_accuracy_ci95)
        delta = 100 * p.delta_accuracy
        ax.errorbar(
            p.size, delta, yerr=[[delta - low], [high - delta]], marker="o", capsize=3,
            color="black", markerfacecolor="black" if p.status == "ahead" else "white",
        )  # fmt: skip
    ax.axhline(0, color="black", linewidth=0.8)


def draw_by_length(per_seed, summary):
    """Where fine-tuning helps (the mean over the seeds when there are several), one column per
    split: above, the paired delta per sentence length (full fine-tune minus head-only, points) with
    its 95% interval over the bucket's independent units; below, both runs' accuracy with a 95%
    interval over units each, and the bucket's majority-class floor. Buckets of too few units for an
    interval (metrics.MIN_BUCKET_UNITS) are hollow and have none."""
    splits = per_seed[0].splits
    by_length = (summary or per_seed[0]).accuracy_by_length
    fig, axes = plt.subplots(
        2,
        len(splits),
        figsize=(5.5 * len(splits), 7.6),
        sharey="row",
        squeeze=False,
        gridspec_kw={"height_ratios": [1, 1.2]},
    )
    for column, split in enumerate(splits):
        title = f"{title_of(split)}: accuracy by length"
        draw_length_column(axes[:, column], by_length[split], title=title, legend=column == 0)
    seeds = f"mean of {len(per_seed)} seeds" if summary else f"seed {per_seed[0].seed}"
    axes[1, 0].set_ylabel(f"accuracy, {seeds}")
    fig.legend(loc="upper center", ncol=3, bbox_to_anchor=(0.5, -0.01))
    fig.tight_layout()
    return fig


def draw_length_column(axes, buckets, *, title, legend):
    """One split: above, the delta per length bucket; below, both runs' accuracy and the floor."""
    delta_ax, ax = axes
    x = np.arange(len(buckets))
    small = np.array([b["delta_ci95"] is None for b in buckets])
    deltas, intervals = [b["delta"] for b in buckets], [b["delta_ci95"] for b in buckets]
    draw_with_intervals(
        delta_ax,
        x,
        deltas,
        intervals=intervals,
        scale=100,
        small=small,
        color="black",
        fmt="o",
        label="full fine-tune − head-only (95% interval over units)" if legend else None,
    )
    delta_ax.axhline(0, color="grey", linewidth=1)
    delta_ax.set(
        title=title, ylabel="delta (points)" if legend else None, xlim=(-0.5, len(buckets) - 0.5)
    )
    delta_ax.set_xticks(x, [b["tokens"] for b in buckets])
    delta_ax.grid(alpha=0.3)
    draw_length_accuracy(ax, buckets, small=small, legend=legend)


def draw_length_accuracy(ax, buckets, *, small, legend):
    """Both runs' accuracy per length bucket with their intervals, and the bucket's floor."""
    x = np.arange(len(buckets))
    for offset, run in zip((-0.06, 0.06), RUNS):
        accuracies, intervals = [b[run] for b in buckets], [b[f"{run}_ci95"] for b in buckets]
        label = f"{RUN_TITLES[run]} (95% interval over units)" if legend else None
        draw_with_intervals(
            ax,
            x + offset,
            accuracies,
            intervals=intervals,
            scale=1,
            small=small,
            color=RUN_COLORS[run],
            fmt="o-",
            label=label,
        )
    if legend and small.any():
        label = f"fewer than {MIN_BUCKET_UNITS} units: no interval"
        ax.scatter([], [], s=40, facecolors="white", edgecolors="black", label=label)
    floors = [b["majority_floor"] for b in buckets]
    label = "bucket's majority-class floor" if legend else None
    ax.plot(x, floors, "k_", markersize=18, mew=2, label=label)
    ax.set_xticks(x, [f"{b['tokens']}\n({b['items']:,})" for b in buckets])
    ax.set(xlabel="tokens (items)", ylim=(0, 1.05), xlim=(-0.5, len(buckets) - 0.5))
    ax.grid(alpha=0.3)


def draw_with_intervals(ax, x, values, *, intervals, scale, small, color, fmt, label):
    """Points with their 95% intervals; a point without one (too few units) hollow and bare."""
    values = scale * np.asarray(values, float)
    low = np.array([scale * i[0] if i else v for i, v in zip(intervals, values)])
    high = np.array([scale * i[1] if i else v for i, v in zip(intervals, values)])
    ax.errorbar(
        x,
        values,
        yerr=np.clip([values - low, high - values], 0, None),
        fmt=fmt,
        color=color,
        capsize=3,
        label=label,
    )
    ax.scatter(
        np.asarray(x)[small], values[small], s=40, facecolors="white", edgecolors=color, zorder=3
    )
