"""The experiment's answer over N seeds, as a typed record: per run and split the mean and SD of
each metric; per split and part the mean delta with an interval across seeds and units
(significance.across_seeds), how the seeds' own tests came out by direction; the probe's
comparisons the same way. Claims are decided as for one seed: the headline split alone, the rest
and the probe gated on it, nothing claimed from a run that broke."""

from dataclasses import dataclass

import numpy as np

from sst2kit.comparison import compare_runs, withhold_broken
from sst2kit.metrics import accuracy_by_length, predicted_labels
from sst2kit.names import FULL_FINETUNE, HEAD_ONLY, PROBE, RUNS, headline_split
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


def across(split, per_seed_probs, *, model=FULL_FINETUNE, baseline=HEAD_ONLY, mask=slice(None)):
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
        **{metric: mean_std([getattr(d, metric) for d in deltas]) for metric in METRICS[:3]},
        per_seed_accuracy=[d.accuracy for d in deltas],
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
                split: {
                    m: mean_std([getattr(s.metrics[run][split], m) for s in per_seed])
                    for m in METRICS
                }
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
        summary.full_over_probe, summary.probe_over_head_only = probe_over_seeds(
            per_seed_probs, eval_splits
        )
    decide_summary_claims(summary, per_seed, headline_split(eval_splits))
    return summary


def probe_over_seeds(per_seed_probs, eval_splits):
    """Per split, the full fine-tune over the probe, and the probe over head-only, across seeds."""
    splits = eval_splits.values()
    return (
        {s.name: across(s, per_seed_probs, baseline=PROBE) for s in splits},
        {s.name: across(s, per_seed_probs, model=PROBE) for s in splits},
    )


def decide_summary_claims(summary, per_seed, headline):
    primary = summary.deltas[headline].test
    secondary = [
        *(delta.test for split, delta in summary.deltas.items() if split != headline),
        *(part.test for _, _, part in summary.parts()),
    ]
    involving = {
        FULL_FINETUNE: list((summary.full_over_probe or {}).values()),
        HEAD_ONLY: list((summary.probe_over_head_only or {}).values()),
    }
    decide_claims(
        primary=primary,
        secondary=secondary,
        reference=[*involving[FULL_FINETUNE], *involving[HEAD_ONLY]],
    )
    withhold_broken(per_seed, question=[primary, *secondary], involving=involving)


class Findings:
    """Every seed's comparison so far and the answer over them, kept in seed order: the loop over
    seeds adds each seed here as it is trained (restored seeds first); the files are written from
    what this holds."""

    def __init__(self, eval_splits, *, resamples, first_seed, restored=((), ())):
        self.eval_splits, self.resamples, self.base_seed = eval_splits, resamples, first_seed
        self.per_seed, self.per_seed_probs = list(restored[0]), list(restored[1])
        self.summary = None
        self.summarize()  # restored seeds answer even where none is added to them

    @property
    def first_seed(self):
        """The lowest seed's comparison: the one the tables and confusion matrices show."""
        return self.per_seed[0]

    @property
    def headline(self):
        """results.json's `headline`: the experiment's answer on the headline split. With several
        seeds, the mean delta over them with an interval across seeds and units; with one, that
        seed's delta and interval."""
        return headline_record(headline_split(self.eval_splits), self.per_seed, self.summary)

    def add(self, seed, records, probs):
        """One seed's two runs compared, and the answer over every seed so far decided again.
        records: each run's training record (with its status); probs: each model's P(positive)
        per split (the two runs, and the probe when it was fitted)."""
        comparison = compare_runs(
            seed, records, probs=probs, eval_splits=self.eval_splits, resamples=self.resamples
        )
        self.per_seed.append(comparison)
        self.per_seed_probs.append((seed, probs))
        self.summarize()

    def add_reference(self, reference_for):
        """The probe's P(positive) given to seeds restored without it: reference_for(seed), empty
        when there is no probe. Returns whether any seed got it."""
        added = False
        for seed, probs in self.per_seed_probs:
            if PROBE not in probs:
                reference = reference_for(seed)
                probs.update(reference)
                added = added or bool(reference)
        if added:
            self.summarize()
        return added

    def summarize(self):
        self.per_seed.sort(key=lambda s: s.seed)
        self.per_seed_probs.sort(key=lambda pair: pair[0])
        if len(self.per_seed) > 1:
            self.summary = summarize_seeds(
                self.per_seed,
                self.per_seed_probs,
                self.eval_splits,
                resamples=self.resamples,
                seed=self.base_seed,
            )


@dataclass
class Headline:
    """The experiment's answer on the headline split (results.json's `headline`)."""

    split: str
    seeds: int
    delta_accuracy: float  # with several seeds, the mean of their deltas
    delta_balanced_accuracy: float
    delta_accuracy_ci95: list  # with several seeds, across seeds and units
    interval: str  # what the interval carries, in words
    p_value: float
    p_value_holm: float | None
    difference_claimed: bool
    claim_withheld: str | None  # why, when a run broke
    seeds_ahead: int  # the seeds' own tests, by direction
    seeds_behind: int
    seeds_withheld: int
    seeds_not_established: int


def headline_record(split, per_seed, summary):
    """The answer on the headline split: over the seeds when there are several, else the one
    seed's."""
    if summary:
        over = summary.deltas[split]
        test, value = over.test, over.test.delta_accuracy
        balanced, counts = over.balanced_accuracy["mean"], over.counts
        interval = (
            f"mean of {len(per_seed)} seeds' deltas; margins for the seeds' spread (t, "
            f"{len(per_seed) - 1} df) and for {test.independent_units:,} {test.resampled_unit} "
            "added in quadrature; covers new training seeds and new sentences like these, with "
            "this training set"
        )
    else:
        first_seed = per_seed[0]
        test, value = first_seed.tests[split], first_seed.deltas[split].accuracy
        balanced, counts = first_seed.deltas[split].balanced_accuracy, directions([test])
        interval = (
            f"one seed ({first_seed.seed}); {test.paired_test} over {test.independent_units:,} "
            f"{test.resampled_unit}"
        )
    return Headline(
        split=split,
        seeds=len(per_seed),
        delta_accuracy=value,
        delta_balanced_accuracy=balanced,
        delta_accuracy_ci95=test.delta_accuracy_ci95,
        interval=interval,
        p_value=test.p_value,
        p_value_holm=test.p_value_holm,
        difference_claimed=test.difference_claimed,
        claim_withheld=test.withheld,
        **counts,
    )
