"""One seed's comparison of the two runs, as a typed record: each run's metrics and health, the
deltas and paired tests per split and per part of a split, the majority-class floors, accuracy by
length, and the probe reference's comparisons. Its claims are decided in three families
(significance.decide_claims); a run that broke makes no claim (withhold_broken)."""

from dataclasses import dataclass, field

import numpy as np

from sst2kit.health import STATUS_VERBS
from sst2kit.metrics import (
    MetricDelta,
    Metrics,
    accuracy_by_length,
    at_floor,
    classification_metrics,
    metric_delta,
    predicted_labels,
)
from sst2kit.names import FULL_FINETUNE, HEAD_ONLY, PROBE, RUN_NAMES, RUNS, headline_split
from sst2kit.significance import PairedTest, decide_claims, paired_significance, withhold


@dataclass
class RunHealth:
    """health.run_status's verdict on one run: ok, or what broke, why and the flags to change."""

    status: str = "ok"
    why: str = ""
    advice: str = ""

    @property
    def broken(self):
        return self.status != "ok"


@dataclass
class Training:
    """One run's training: its size, steps and seconds, the epoch whose weights it ended with
    (select_best_epoch), its curves, and its health."""

    trainable_parameters: int
    frozen_parameters: int
    steps: int
    train_seconds: float
    predict_seconds: float
    selected_epoch: float | None
    history: dict[str, list[list[float]]]  # curve -> [epoch, value] points
    health: RunHealth = field(default_factory=RunHealth)


@dataclass
class Versus:
    """One model minus a baseline on every split: each metric's delta and the paired test."""

    deltas: dict[str, MetricDelta]  # split ->
    tests: dict[str, PairedTest]  # split ->


@dataclass
class PartComparison:
    """Both runs on a part of a split (its whole sentences, or its phrases)."""

    items: int
    accuracy: dict[str, float]  # run ->
    delta_accuracy: float
    test: PairedTest


@dataclass
class ProbeComparison:
    """The best linear probe beside the runs: the full fine-tune over it, and it over head-only."""

    full_over_probe: Versus
    over_head_only: Versus


@dataclass
class SeedComparison:
    """One seed's two runs compared (results.json's `seeds` keeps it; docs/results.md names every
    key)."""

    seed: int
    training: dict[str, Training]  # run ->
    metrics: dict[str, dict[str, Metrics]]  # model (each run, and the probe) -> split ->
    versus: Versus  # full fine-tune minus head-only
    at_majority_floor: dict[str, list[str]]  # run -> the splits where it is no better than constant
    accuracy_by_length: dict[str, list[dict]]  # split -> metrics.accuracy_by_length
    # split -> kind of item -> the part compared (None for an empty part)
    by_kind: dict[str, dict[str, PartComparison | None]]
    probe: ProbeComparison | None = None

    @property
    def status(self):
        """run -> RunHealth."""
        return {run: training.health for run, training in self.training.items()}

    @property
    def splits(self):
        return list(self.versus.tests)

    @property
    def deltas(self):
        return self.versus.deltas

    @property
    def tests(self):
        return self.versus.tests

    def parts(self):
        """(split, kind, PartComparison) for every non-empty part."""
        return [
            (split, kind, part)
            for split, parts in self.by_kind.items()
            for kind, part in parts.items()
            if part
        ]


def model_versus_baseline(baseline, model, *, preds, metrics, eval_splits, resamples, seed):
    """model minus baseline on every split: the metric deltas (with the errors fixed and broken)
    and the paired test."""
    deltas, tests = {}, {}
    for name, split in eval_splits.items():
        base_right = preds[baseline][name] == split.labels
        model_right = preds[model][name] == split.labels
        deltas[name] = metric_delta(
            metrics[baseline][name],
            metrics[model][name],
            fixed=int(np.sum(model_right & ~base_right)),
            broken=int(np.sum(base_right & ~model_right)),
        )
        tests[name] = paired_significance(
            split.labels,
            preds[baseline][name],
            preds[model][name],
            units=split.units,
            unit_name=split.unit_name,
            resamples=resamples,
            seed=seed,
        )
    return Versus(deltas, tests)


def compare_on_part(split, preds, *, part, resamples, seed):
    """Both runs on a part of a split: accuracies, the delta and its test, units renumbered within
    the part. None for an empty part."""
    if not part.any():
        return None
    labels = split.labels[part]
    accuracy = {run: float(np.mean(preds[run][part] == labels)) for run in RUNS}
    test = paired_significance(
        labels,
        preds[HEAD_ONLY][part],
        preds[FULL_FINETUNE][part],
        units=np.unique(split.units[part], return_inverse=True)[1],
        unit_name=split.unit_name,
        resamples=resamples,
        seed=seed,
    )
    delta = accuracy[FULL_FINETUNE] - accuracy[HEAD_ONLY]
    return PartComparison(int(part.sum()), accuracy, delta, test)


def compare_runs(seed, training, *, probs, eval_splits, resamples):
    """One seed's comparison. training: each run's Training; probs: each model's P(positive) per
    split (the two runs, and the probe when it was fitted); eval_splits: name -> EvalSplit."""
    preds = {
        model: {name: predicted_labels(p[name]) for name in eval_splits}
        for model, p in probs.items()
    }
    metrics = {
        model: {
            name: classification_metrics(split.labels, preds[model][name])
            for name, split in eval_splits.items()
        }
        for model in probs
    }
    scored = dict(
        preds=preds, metrics=metrics, eval_splits=eval_splits, resamples=resamples, seed=seed
    )
    comparison = SeedComparison(
        seed=seed,
        training=training,
        metrics=metrics,
        versus=model_versus_baseline(HEAD_ONLY, FULL_FINETUNE, **scored),
        at_majority_floor=floors(metrics, eval_splits),
        accuracy_by_length={
            name: accuracy_by_length(
                split, [{run: preds[run][name] for run in RUNS}], resamples=resamples, seed=seed
            )
            for name, split in eval_splits.items()
        },
        by_kind=parts_compared(preds, eval_splits, resamples=resamples, seed=seed),
    )
    if PROBE in probs:
        comparison.probe = ProbeComparison(
            model_versus_baseline(PROBE, FULL_FINETUNE, **scored),
            model_versus_baseline(HEAD_ONLY, PROBE, **scored),
        )
    decide_seed_claims(comparison, headline_split(eval_splits))
    return comparison


def floors(metrics, eval_splits):
    """Per run, the splits where it scores no better than always answering the majority class."""
    return {
        run: [
            name
            for name, split in eval_splits.items()
            if at_floor(metrics[run][name].accuracy, split.majority_floor, len(split.labels))
        ]
        for run in RUNS
    }


def parts_compared(preds, eval_splits, *, resamples, seed):
    return {
        name: {
            kind: compare_on_part(
                split,
                {run: preds[run][name] for run in RUNS},
                part=part,
                resamples=resamples,
                seed=seed,
            )
            for kind, part in split.parts.items()
        }
        for name, split in eval_splits.items()
        if split.parts
    }


def decide_seed_claims(comparison, headline):
    """The three families: the headline split's full fine-tune vs head-only alone; the other splits
    and parts, tested only when that is claimed; the probe's comparisons. A run that diverged or
    collapsed makes no claim at all."""
    primary = comparison.tests[headline]
    secondary = [
        *(test for split, test in comparison.tests.items() if split != headline),
        *(part.test for _, _, part in comparison.parts()),
    ]
    involving = {run: [] for run in RUNS}  # the probe's tests, by the run each one involves
    if comparison.probe:
        involving = {
            FULL_FINETUNE: list(comparison.probe.full_over_probe.tests.values()),
            HEAD_ONLY: list(comparison.probe.over_head_only.tests.values()),
        }
    decide_claims(
        primary=primary,
        secondary=secondary,
        reference=[*involving[FULL_FINETUNE], *involving[HEAD_ONLY]],
    )
    withhold_broken([comparison], question=[primary, *secondary], involving=involving)


def withhold_broken(per_seed, *, question, involving):
    """No claim from a run that broke: every test of the question (it involves both runs) and each
    probe test that involves the broken run says why (significance.withhold)."""
    for tests, runs in [(question, RUNS), *((tests, (run,)) for run, tests in involving.items())]:
        broken = broken_runs(per_seed, runs)
        if broken:
            withhold(
                tests,
                "; ".join(f"{name}: {why}" for name, why in broken),
                "; ".join(name for name, _ in broken),
            )


def broken_runs(per_seed, runs=RUNS):
    """Each of these seeds' runs that broke (health.py), as ('the head-only run of seed 42
    collapsed', why)."""
    return [
        (
            f"the {RUN_NAMES[run]} run of seed {s.seed} {STATUS_VERBS[s.status[run].status]}",
            s.status[run].why,
        )
        for s in per_seed
        for run in runs
        if s.status[run].broken
    ]
