"""The experiment's answer over N seeds, as a typed record: per run and split the mean and SD of
each metric; per split and part the mean delta with an interval across seeds and units
(significance.across_seeds), how the seeds' own tests came out by direction; the probe's
comparisons the same way. Claims are decided as for one seed: the headline split alone, the rest
and the probe gated on it, nothing claimed from a run that broke."""

from dataclasses import dataclass

import numpy as np

from sst2kit.comparison import withhold_broken
from sst2kit.metrics import accuracy_by_length, predicted_labels
from sst2kit.names import PROBE, RUNS, headline_split
from sst2kit.significance import AcrossSeedsTest, across_seeds, decide_claims

METRICS = ("accuracy", "balanced_accuracy", "f1", "macro_f1")
SEED_COUNTS = ("seeds_ahead", "seeds_behind", "seeds_withheld", "seeds_not_established")


def mean_std(values):
    values = np.asarray(values, float)
    return {
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
    }


def directions(tests):
    """How the seeds' own tests came out, by direction: full fine-tune ahead (claimed, positive),
    behind (claimed, negative), withheld (a run broke), not established (the rest)."""
    ahead = sum(1 for t in tests if t.difference_claimed and t.delta_accuracy_ci95[0] > 0)
    behind = sum(1 for t in tests if t.difference_claimed and t.delta_accuracy_ci95[1] < 0)
    withheld = sum(1 for t in tests if t.withheld)
    return dict(zip(SEED_COUNTS, (ahead, behind, withheld, len(tests) - ahead - behind - withheld)))


@dataclass
class SplitOverSeeds:
    """Full fine-tune minus head-only on one split, over the seeds."""

    accuracy: dict  # mean and SD of the seeds' deltas
    balanced_accuracy: dict
    f1: dict
    per_seed_accuracy: list
    counts: dict  # SEED_COUNTS: how the seeds' own tests came out
    test: AcrossSeedsTest


@dataclass
class PartOverSeeds:
    """Full fine-tune minus head-only on a part of a split, over the seeds."""

    items: int
    counts: dict
    test: AcrossSeedsTest


@dataclass
class SeedsSummary:
    """The answer over the seeds (results.json's summary; docs/results.md)."""

    metrics: dict  # run -> split -> metric -> mean and SD
    deltas: dict  # split -> SplitOverSeeds
    by_kind: dict  # split -> kind of item -> PartOverSeeds
    accuracy_by_length: dict  # split -> metrics.accuracy_by_length, averaged over the seeds
    full_over_probe: dict | None = None  # split -> AcrossSeedsTest
    probe_over_head_only: dict | None = None

    def parts(self):
        return [
            (s, kind, part) for s, parts in self.by_kind.items() for kind, part in parts.items()
        ]


def across(split, per_seed_probs, *, model="full_finetune", baseline="head_only", mask=slice(None)):
    """model minus baseline over every seed, on a split (or a part of it: mask)."""
    labels, units = split.labels[mask], split.units[mask]
    diffs = np.array(
        [
            (predicted_labels(probs[model][split.name][mask]) == labels).astype(float)
            - (predicted_labels(probs[baseline][split.name][mask]) == labels)
            for _, probs in per_seed_probs
        ]
    )
    return across_seeds(diffs, np.unique(units, return_inverse=True)[1], split.unit_name)


def split_over_seeds(split, per_seed, per_seed_probs):
    deltas = [s.deltas[split.name] for s in per_seed]
    return SplitOverSeeds(
        **{metric: mean_std([d[metric] for d in deltas]) for metric in METRICS[:3]},
        per_seed_accuracy=[d["accuracy"] for d in deltas],
        counts=directions([s.tests[split.name] for s in per_seed]),
        test=across(split, per_seed_probs),
    )


def parts_over_seeds(eval_splits, per_seed, per_seed_probs):
    return {
        name: {
            kind: PartOverSeeds(
                items=int(part.sum()),
                counts=directions([s.by_kind[name][kind].test for s in per_seed]),
                test=across(split, per_seed_probs, mask=part),
            )
            for kind, part in split.parts.items()
            if part.any()
        }
        for name, split in eval_splits.items()
        if any(part.any() for part in split.parts.values())
    }


def summarize_seeds(per_seed, per_seed_probs, eval_splits, *, resamples, seed):
    """The experiment's answer over the seeds (SeedsSummary), its claims decided."""
    summary = SeedsSummary(
        metrics={
            run: {
                split: {m: mean_std([s.runs[run][split][m] for s in per_seed]) for m in METRICS}
                for split in eval_splits
            }
            for run in RUNS
        },
        deltas={
            name: split_over_seeds(split, per_seed, per_seed_probs)
            for name, split in eval_splits.items()
        },
        by_kind=parts_over_seeds(eval_splits, per_seed, per_seed_probs),
        accuracy_by_length={
            name: accuracy_by_length(
                split,
                [
                    {run: predicted_labels(probs[run][name]) for run in RUNS}
                    for _, probs in per_seed_probs
                ],
                resamples=resamples,
                seed=seed,
            )
            for name, split in eval_splits.items()
        },
    )
    if all(PROBE in probs for _, probs in per_seed_probs):
        splits = eval_splits.values()
        summary.full_over_probe = {
            s.name: across(s, per_seed_probs, baseline=PROBE) for s in splits
        }
        summary.probe_over_head_only = {
            s.name: across(s, per_seed_probs, model=PROBE) for s in splits
        }
    decide_summary_claims(summary, per_seed, headline_split(eval_splits))
    return summary


def decide_summary_claims(summary, per_seed, headline):
    primary = summary.deltas[headline].test
    secondary = [
        *(delta.test for split, delta in summary.deltas.items() if split != headline),
        *(part.test for _, _, part in summary.parts()),
    ]
    involving = {
        "full_finetune": list((summary.full_over_probe or {}).values()),
        "head_only": list((summary.probe_over_head_only or {}).values()),
    }
    decide_claims(
        primary=primary,
        secondary=secondary,
        reference=[*involving["full_finetune"], *involving["head_only"]],
    )
    withhold_broken(per_seed, question=[primary, *secondary], involving=involving)
