"""The learning curve: the same comparison at several training-set sizes, on the same evaluation
sets, and where fine-tuning the whole encoder starts to pay.

Each seed draws one order of the re-split training set; a size's subset is the first n items of
that order, so every smaller subset lies inside the next (nested) and the subsets differ from seed
to seed (the interval across seeds then carries which examples were drawn, too). The evaluation
sets are never subsetted. A small subset gives few optimizer steps per epoch, so each run trains
for its configured epochs or, where that is fewer steps than its minimum (min_steps_head_only,
min_steps_full_finetune), for as many whole epochs as reach it: no point is a "did not learn"
artefact of the schedule. Across sizes the question is asked once per size, so the sizes are one
family: a size's difference is claimed when its 95% interval excludes 0 and its p-value,
Holm-adjusted over the sizes, is below 0.05 (docs/statistics.md).
"""

import math
import re
from dataclasses import dataclass

import numpy as np
from scipy import stats

from sst2kit.errors import UsageError
from sst2kit.names import FULL_FINETUNE, HEAD_ONLY, PROBE, RUNS, headline_split
from sst2kit.records import to_json
from sst2kit.significance import ALPHA, holm

ALL = "all"
HOW_TO_WRITE = (
    "give whole counts of training examples (500), shares of the training set (10%) or all, "
    "separated by commas, e.g. --train_sizes 500,2000,10%,all"
)
# the stream a seed's subset order is drawn from: apart from the training's own draws
SUBSET_STREAM = 0x5B5E7


def parse_train_sizes(text):
    """The sizes as written ('500', '10%', 'all'), each checked on its own; a UsageError naming the
    first one that is not a size. Whether they fit the training set is resolve_sizes' question."""
    sizes = [part.strip() for part in str(text).split(",")]
    for size in sizes:
        if size.lower() == ALL:
            continue
        if re.fullmatch(r"\d+(\.\d+)?%", size):
            if not 0 < float(size[:-1]) <= 100:
                raise UsageError(
                    f"train_sizes: {size} is not a share of the training set in (0, 100%]"
                )
            continue
        if re.fullmatch(r"\d*\.\d+|\d+\.\d*", size):
            raise UsageError(
                f"train_sizes: {size} is ambiguous: write a share as a percentage "
                f"({float(size) * 100:g}%) or a whole count of examples"
            )
        if not re.fullmatch(r"\d+", size):
            raise UsageError(f"train_sizes: {size!r} is not a size: {HOW_TO_WRITE}")
        if int(size) == 0:
            raise UsageError("train_sizes: a size of 0 trains on nothing: the smallest is 1")
    repeated = sorted({s for s in sizes if sizes.count(s) > 1})
    if repeated:
        raise UsageError(f"train_sizes: {repeated[0]} is given twice: give each size once")
    return [size.lower() if size.lower() == ALL else size for size in sizes]


def resolve_sizes(sizes, available):
    """The sizes as counts of examples, smallest first; a UsageError for one above the training set
    or two that name the same count (all and 100%, or 10% and its count)."""
    counts = {}
    for size in sizes:
        if size == ALL:
            count = available
        elif size.endswith("%"):
            count = max(1, round(float(size[:-1]) / 100 * available))
        else:
            count = int(size)
        if count > available:
            raise UsageError(
                f"train_sizes: {size} is more than the {available:,} examples of the re-split "
                f"training set: the largest size is all"
            )
        if count in counts:
            raise UsageError(
                f"train_sizes: {counts[count]} and {size} are the same size ({count:,} of "
                f"{available:,} examples): give it once"
            )
        counts[count] = size
    return sorted(counts)


def epochs_for(size, *, configured, min_steps, batch):
    """The epochs a run trains for at this size: the configured ones, or as many whole epochs as
    reach min_steps optimizer steps when the configured ones give fewer."""
    steps_per_epoch = math.ceil(size / batch)
    if configured * steps_per_epoch >= min_steps:
        return configured
    return float(math.ceil(min_steps / steps_per_epoch))


@dataclass
class Cell:
    """One seed's two runs at one size: the unit of work of the loop. size None: no curve (the
    whole training set, today's single run); rows: the training subset's positions in the training
    pool, None for all of it; epochs: each run's epochs at this size."""

    seed: int
    epochs: dict  # run -> epochs
    size: int | None = None
    rows: np.ndarray | None = None
    first: bool = False  # trains the model the input checks loaded (the others load their own)

    @property
    def name(self):
        """The suffix of its runs' names (TensorBoard, the trainer log, saved models)."""
        return f"seed{self.seed}" if self.size is None else f"n{self.size}_seed{self.seed}"

    def __str__(self):
        return f"seed {self.seed}" if self.size is None else f"seed {self.seed} at {self.size:,}"


class CurvePlan:
    """Which training items each (size, seed) trains on. orders: per seed, a permutation of the
    re-split training set's rows; pool: the rows any size of any seed uses (None: all of them),
    which alone are tokenized and passed through the frozen encoder; batch: the examples of one
    optimizer step, all processes together."""

    def __init__(self, counts, labels, *, seeds, epochs, batch):
        self.counts, self.seeds, self.epochs, self.batch = counts, list(seeds), epochs, batch
        self.labels = np.asarray(labels)
        self.available = available = len(self.labels)
        self.orders = {
            seed: np.random.default_rng([seed, SUBSET_STREAM]).permutation(available)
            for seed in seeds
        }
        largest = counts[-1]
        used = np.unique(np.concatenate([order[:largest] for order in self.orders.values()]))
        self.pool = None if len(used) == available else used

    def subset(self, size, seed):
        """The training set's rows (of the whole re-split training set) this size trains on in
        this seed, in their original order."""
        return np.sort(self.orders[seed][:size])

    def steps(self, size, run):
        """The optimizer steps a run takes at this size."""
        return math.ceil(self.epochs[size][run] * math.ceil(size / self.batch))

    @property
    def cell_count(self):
        return len(self.counts) * len(self.seeds)

    def largest_labels(self):
        """The labels of the first seed's subset at the largest size: the run's own tables'."""
        return self.labels[self.subset(self.counts[-1], self.seeds[0])]

    def cells(self):
        """Every (size, seed), the largest sizes first (under torchrun they are dealt in this
        order: the longest work first)."""
        return [self.cell(size, seed) for size in reversed(self.counts) for seed in self.seeds]

    def cell(self, size, seed):
        return Cell(
            seed,
            self.epochs[size],
            size,
            None if size == self.available else self.pool_positions(size, seed),
            first=size == self.counts[-1] and seed == self.seeds[0],
        )

    def pool_positions(self, size, seed):
        rows = self.subset(size, seed)
        return rows if self.pool is None else np.searchsorted(self.pool, rows)


def cell_data(cell, features, batches):
    """The cached features (or None) and the tokenized batches a cell trains and is scored on: its
    training subset, and every evaluation split whole."""
    if cell.rows is None:
        return features, batches
    batches = {**batches, "train": batches["train"].reordered(cell.rows)}
    if features is None:
        return None, batches
    return {**features, "train": features["train"].subset(cell.rows)}, batches


def plan_curve(cfg, labels, *, seeds, processes):
    """The curve's plan for this config and the re-split training set's labels; None without
    train_sizes. processes: how many processes share each batch (the steps per epoch)."""
    if not cfg.train_sizes:
        return None
    counts = resolve_sizes(parse_train_sizes(cfg.train_sizes), len(labels))
    batch = cfg.per_device_train_batch_size * processes
    configured = {HEAD_ONLY: cfg.epochs_head_only, FULL_FINETUNE: cfg.epochs_full_finetune}
    least = {HEAD_ONLY: cfg.min_steps_head_only, FULL_FINETUNE: cfg.min_steps_full_finetune}
    epochs = {
        size: {
            run: epochs_for(size, configured=configured[run], min_steps=least[run], batch=batch)
            for run in RUNS
        }
        for size in counts
    }
    return CurvePlan(counts, labels, seeds=seeds, epochs=epochs, batch=batch)


@dataclass
class CurvePoint:
    """The answer at one training size (results.json's curve.points[]; docs/results.md)."""

    size: int
    positive_share: list  # each seed's subset's share of positive labels
    epochs: dict  # run -> epochs at this size
    steps: dict  # run -> optimizer steps
    seeds: int
    accuracy: dict  # model -> {"mean", "ci95"} on the headline split; the probe when fitted
    delta_accuracy: float
    delta_accuracy_ci95: list
    p_value: float
    p_value_holm_over_sizes: float | None
    status: str  # ahead, behind, not established, withheld
    withheld: str | None  # why, when a run broke


def arm_accuracy(values, items):
    """An arm's mean accuracy with its 95% interval: across the seeds (t) when there are several,
    else the binomial interval over the split's items."""
    values = np.asarray(values, float)
    mean = float(values.mean())
    if len(values) > 1:
        half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    else:
        half = 1.96 * math.sqrt(mean * (1 - mean) / max(items, 1))
    return {"mean": mean, "ci95": [max(mean - half, 0.0), min(mean + half, 1.0)]}


def curve_point(size, findings, plan):
    """The answer at one size from its seeds' findings, before the correction over sizes."""
    split = headline_split(findings.eval_splits)
    items = len(findings.eval_splits[split].labels)
    headline, per_seed = findings.headline, findings.per_seed
    models = [*RUNS, *([PROBE] if all(PROBE in s.metrics for s in per_seed) else [])]
    return CurvePoint(
        size=size,
        positive_share=[float(plan.labels[plan.subset(size, s.seed)].mean()) for s in per_seed],
        epochs=dict(plan.epochs[size]),
        steps={run: plan.steps(size, run) for run in RUNS},
        seeds=len(per_seed),
        accuracy={
            model: arm_accuracy([s.metrics[model][split].accuracy for s in per_seed], items)
            for model in models
        },
        delta_accuracy=headline.delta_accuracy,
        delta_accuracy_ci95=list(headline.delta_accuracy_ci95),
        p_value=headline.p_value,
        p_value_holm_over_sizes=None,
        status="withheld" if headline.claim_withheld else "not established",
        withheld=headline.claim_withheld,
    )


def decide_over_sizes(points):
    """The sizes as one family: a size's difference is claimed when its interval excludes 0 and its
    p-value, Holm-adjusted over the sizes not withheld, is below ALPHA."""
    tested = [point for point in points if not point.withheld]
    for point, adjusted in zip(tested, holm([point.p_value for point in tested])):
        low, high = point.delta_accuracy_ci95
        point.p_value_holm_over_sizes = adjusted
        if adjusted < ALPHA and (low > 0 or high < 0):
            point.status = "ahead" if low > 0 else "behind"
    return points


def points_text(points):
    return "; ".join(
        f"at {p.size:,}: {'withheld, a run broke' if p.withheld else delta_text(p)}" for p in points
    )


def delta_text(point):
    low, high = (100 * x for x in point.delta_accuracy_ci95)
    return f"{100 * point.delta_accuracy:+.1f} points (95% CI {low:+.1f} to {high:+.1f})"


def verdict(points):
    """One sentence: from which size on the full fine-tune is established ahead, and where it is
    not; or that it is ahead at every size, or at none; withheld sizes named as such."""
    if not points:
        return "no size of the learning curve has finished yet"
    if all(p.withheld for p in points):
        return "no answer at any size: a run broke at every size (its warning names it)"
    ahead_from = len(points)
    while ahead_from > 0 and points[ahead_from - 1].status == "ahead":
        ahead_from -= 1
    below, above = points[:ahead_from], points[ahead_from:]
    family = f"Holm over {len(points)} sizes" if len(points) > 1 else "one size"
    if not above:
        return f"{never_ahead(points)} ({family}): {points_text(points)}"
    if len(points) == 1:
        return f"full fine-tune ahead at {points[0].size:,} examples: {delta_text(points[0])}"
    if not below:
        return (
            f"full fine-tune ahead at every size from {points[0].size:,} to "
            f"{points[-1].size:,} examples ({family}): at {above[0].size:,} "
            f"{delta_text(above[0])}; at {above[-1].size:,} {delta_text(above[-1])}"
        )
    return (
        f"full fine-tune ahead from {above[0].size:,} examples on ({delta_text(above[0])}); "
        f"below that not established: {points_text(below)} ({family})"
    )


def never_ahead(points):
    behind = ", ".join(f"{p.size:,}" for p in points if p.status == "behind")
    if behind:
        return f"full fine-tune established behind head-only at {behind}"
    if len(points) == 1:
        return f"full fine-tune not established ahead at {points[0].size:,} examples"
    return (
        "full fine-tune not established ahead at any size from "
        f"{points[0].size:,} to {points[-1].size:,} examples"
    )


class Curve:
    """Every size's seeds so far (a seeds.Findings per size; the largest size's is the run's main
    findings, which the tables, figures and predictions.csv show) and the answer across sizes."""

    def __init__(self, plan, findings_by_size):
        self.plan, self.findings = plan, findings_by_size
        self.resumed = self.recorded_cells()  # a stopped curve's cells, kept as recorded

    def recorded_cells(self):
        """(size, seed) of every cell recorded so far, the largest sizes first."""
        return [
            (size, comparison.seed)
            for size, findings in sorted(self.findings.items(), reverse=True)
            for comparison in findings.per_seed
        ]

    def cells_to_train(self):
        """The plan's cells not recorded yet, the largest sizes first."""
        recorded = set(self.recorded_cells())
        return [cell for cell in self.plan.cells() if (cell.size, cell.seed) not in recorded]

    def add(self, cell, records, probs):
        self.findings[cell.size].add(cell.seed, records, probs)

    def add_reference(self, outcome_for):
        """The probe's P(positive) given to the cells restored without it: outcome_for(cell) (empty
        without a probe). Returns whether any cell lacked it."""
        added = [
            findings.add_reference(lambda seed, size=size: outcome_for(self.plan.cell(size, seed)))
            for size, findings in self.findings.items()
        ]
        return any(added)

    @property
    def done(self):
        return sum(len(findings.per_seed) for findings in self.findings.values())

    @property
    def points(self):
        """The answer at each size with a finished seed, smallest first, decided over them."""
        return decide_over_sizes(
            [
                curve_point(size, self.findings[size], self.plan)
                for size in self.plan.counts
                if self.findings[size].per_seed
            ]
        )

    def record(self):
        """results.json's curve (docs/results.md)."""
        points = self.points
        return {
            "sizes": self.plan.counts,
            "train_items_available": self.plan.available,
            "subsets": "nested, drawn once per seed from the re-split training set",
            "seeds": self.plan.seeds,
            "cells_done": self.done,
            "points": to_json(points),
            "verdict": verdict(points),
            # what --resume reads back: the largest size's seeds are the run's own `seeds`
            "seeds_by_size": {
                size: to_json(findings.per_seed)
                for size, findings in self.findings.items()
                if size != self.plan.counts[-1]
            },
            "resumed_cells": [list(cell) for cell in self.resumed],
        }
