"""How far to trust the difference between two models scored on the same items: a 95% interval and a
paired test over independent units, one rule that decides a claim, and the Holm correction across
one seed's tests.

Units: a unit is a group of items that are not independent evidence (a sentence listed twice; a
source sentence and the phrases cut from it). When every item is its own unit the interval is an
item bootstrap and the test exact McNemar; otherwise whole units are resampled and the test flips
the sign of each unit's summed difference.
"""

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.optimize import brentq
from scipy.stats import binomtest
from scipy.stats import t as student_t

ALPHA = 0.05
# A Monte Carlo p-value is at least 1 / (resamples + 1). Holm multiplies the smallest by the
# family's size (at most 6: the probe's comparisons on three splits), and that must stay well below
# ALPHA (under ALPHA / 2) for a claim to be possible at all, whatever the effect.
LARGEST_FAMILY = 6
MIN_RESAMPLES = 1_000
# The cluster tests cost units x resamples draws each; far past here the interval and p-value no
# longer move.
MAX_RESAMPLES = 1_000_000
# draws per chunk of resamples: bounds memory whatever the resample and unit counts
BLOCK = 2_000_000


@dataclass(kw_only=True)
class Test:
    """One comparison, model minus baseline on the same items: its 95% interval and p-value over
    independent units, and once decide_family (and withhold) have run, whether it is claimed."""

    delta_accuracy_ci95: list
    p_value: float
    paired_test: str
    resampled_unit: str
    independent_units: int
    smallest_possible_p: float
    family: str = ""
    family_size: int = 1
    p_value_holm: float | None = None
    tested: bool = True
    difference_claimed: bool = False
    can_be_claimed: bool = True
    withheld: str | None = None  # why, when a run it involves broke
    withheld_runs: str | None = None


@dataclass(kw_only=True)
class PairedTest(Test):
    """One seed's test: exact McNemar when every item is its own unit, else a sign-flip permutation
    over units (a Monte Carlo p-value, at least 1 / (draws + 1))."""

    permutation_draws: int | None
    p_value_at_floor: bool
    largest_unit_items: int
    discordant: list  # [baseline right and model wrong, the reverse]
    mcnemar_p_items: float
    seeds: ClassVar[int] = 1


@dataclass(kw_only=True)
class AcrossSeedsTest(Test):
    """The experiment's test over N seeds (across_seeds): a t interval with one margin for the
    seeds' spread and one for the test set's units."""

    delta_accuracy: float
    degrees_of_freedom: list
    seeds: int
    seed_sd: float
    variance_between_seeds: float
    variance_over_units: float
    permutation_draws: ClassVar[None] = None
    p_value_at_floor: ClassVar[bool] = False


def mcnemar_exact(base_correct, model_correct):
    """Two-sided exact McNemar test on paired right/wrong outcomes: only the discordant pairs carry
    evidence."""
    base_correct, model_correct = np.asarray(base_correct, bool), np.asarray(model_correct, bool)
    base_wins = int(np.sum(base_correct & ~model_correct))
    model_wins = int(np.sum(model_correct & ~base_correct))
    n = base_wins + model_wins
    p = 1.0 if n == 0 else binomtest(min(base_wins, model_wins), n, 0.5).pvalue
    return float(p), [base_wins, model_wins]


def bootstrap_delta_ci(base_correct, model_correct, *, resamples, seed):
    """Paired bootstrap 95% interval of accuracy(model) - accuracy(baseline), items resampled.

    Per example the paired difference is -1, 0 or +1, so a resample's mean depends only on how many
    of each it drew: a multinomial draw with the observed shares is the same bootstrap, without n x
    resamples indices.
    """
    diff = np.asarray(model_correct, int) - np.asarray(base_correct, int)
    n = len(diff)
    shares = [np.mean(diff == -1), np.mean(diff == 0), np.mean(diff == 1)]
    counts = np.random.default_rng(seed).multinomial(n, shares, size=resamples)
    deltas = (counts[:, 2] - counts[:, 0]) / n
    low, high = np.percentile(deltas, [2.5, 97.5])
    return [float(low), float(high)]


def cluster_bootstrap_ci(diff, units, *, resamples, seed):
    """95% interval of the mean paired difference, whole units resampled: each resample draws as
    many units as there are, with replacement.

    A unit's whole part in the mean is its (summed difference, item count) pair, and units often
    come in few kinds (tens of kinds among the re-split test set's 4,363 units): then each resample
    draws how many units of each kind it takes (a multinomial draw with the kinds' shares), the same
    bootstrap at a tenth of the cost. Otherwise (few units of many kinds) units are drawn one by
    one."""
    sums, sizes = np.bincount(units, weights=diff), np.bincount(units)
    present = sizes > 0
    sums, sizes = sums[present], sizes[present]
    kinds, counts = np.unique(np.stack([sums, sizes], 1), axis=0, return_counts=True)
    rng, deltas = np.random.default_rng(seed), []
    by_kind = len(kinds) * 12 < len(sizes)  # a multinomial draw per kind costs about 12 unit draws
    chunk = max(1, BLOCK // (len(kinds) if by_kind else len(sizes)))
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        if by_kind:
            drawn = rng.multinomial(len(sizes), counts / len(sizes), size=rows)
            deltas.append((drawn @ kinds[:, 0]) / (drawn @ kinds[:, 1]))
        else:
            draws = rng.integers(0, len(sizes), size=(rows, len(sizes)))
            deltas.append(sums[draws].sum(1) / sizes[draws].sum(1))
    low, high = np.percentile(np.concatenate(deltas), [2.5, 97.5])
    return [float(low), float(high)]


def cluster_sign_flip_p(diff, units, *, resamples, seed):
    """Two-sided paired permutation test over units: under 'both models are as good', each unit's
    summed difference is as likely to have the other sign, so its signs are flipped at random. A
    Monte Carlo p-value: its smallest possible value is 1 / (resamples + 1)."""
    sums = np.bincount(units, weights=diff)
    total = sums.sum()
    observed = abs(total)
    if observed == 0:
        return 1.0
    rng, extreme = np.random.default_rng(seed), 0
    # sums are whole numbers far below 2**24: float32 adds them exactly
    chunk, sums32 = max(1, BLOCK // len(sums)), sums.astype(np.float32)
    for start in range(0, resamples, chunk):
        # a random bit per unit (8 from each random byte) says which sums change sign, 10x faster
        # than drawing +-1 floats: flipping the units in `flipped` leaves total - 2 * (their sum)
        random_bytes = rng.integers(
            0, 256, size=(min(chunk, resamples - start), (len(sums) + 7) // 8), dtype=np.uint8
        )
        flipped = np.unpackbits(random_bytes, axis=1, count=len(sums)).astype(np.float32)
        extreme += int(np.sum(np.abs(total - 2 * (flipped @ sums32)) >= observed - 1e-9))
    return (1 + extreme) / (1 + resamples)


def paired_significance(
    labels, base_preds, model_preds, *, units, resamples, seed, unit_name="sentences"
):
    """model minus baseline on these items: a 95% interval and a paired test over independent units
    (an id per item). The claim itself is decided across the seed's family of tests, by
    decide_claims."""
    base_correct = np.asarray(base_preds) == np.asarray(labels)
    model_correct = np.asarray(model_preds) == np.asarray(labels)
    mcnemar_p, discordant = mcnemar_exact(base_correct, model_correct)
    sizes = np.bincount(units)
    if len(sizes) == len(labels):  # every item its own unit
        interval = bootstrap_delta_ci(base_correct, model_correct, resamples=resamples, seed=seed)
        p, test, draws = mcnemar_p, "exact McNemar", None
    else:
        diff = model_correct.astype(float) - base_correct
        interval = cluster_bootstrap_ci(diff, units, resamples=resamples, seed=seed)
        p = cluster_sign_flip_p(diff, units, resamples=resamples, seed=seed)
        test, draws = "sign-flip permutation", resamples
    # the smallest p any outcome on these units could give: every unit (item) one way; a Monte Carlo
    # p no lower than its floor
    smallest = max(2.0 ** (1 - len(sizes)), 1 / (draws + 1) if draws else 0.0)
    return PairedTest(
        delta_accuracy_ci95=interval,
        p_value=float(p),
        paired_test=test,
        permutation_draws=draws,
        p_value_at_floor=draws is not None and p <= 1 / (draws + 1) + 1e-15,
        smallest_possible_p=smallest,
        resampled_unit=unit_name,
        independent_units=int(len(sizes)),
        largest_unit_items=int(sizes.max()) if len(sizes) else 0,
        discordant=discordant,
        mcnemar_p_items=mcnemar_p,
    )


def holm(p_values):
    """Holm's step-down adjusted p-values: the family-wise error rate held at ALPHA across all of
    them."""
    p = np.asarray(p_values, float)
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    out = np.empty_like(p)
    out[order] = np.minimum(adjusted, 1.0)
    return out.tolist()


def decide_family(tests, *, family, tested=True):
    """The one rule, within one family of tests: a difference is claimed only when its 95% interval
    excludes 0 and its p-value, Holm-adjusted within the family, is below ALPHA. A family that is
    not tested (its gate is closed) claims nothing. Adds family, family_size, p_value_holm, tested,
    difference_claimed, and can_be_claimed: whether any outcome on so few units could have been
    claimed at all in a family of this size."""
    for test, adjusted in zip(tests, holm([t.p_value for t in tests]) if tests else []):
        low, high = test.delta_accuracy_ci95
        test.family, test.family_size, test.tested = family, len(tests), tested
        test.p_value_holm = adjusted
        test.difference_claimed = bool(tested and (low > 0 or high < 0) and adjusted < ALPHA)
        test.can_be_claimed = bool(test.smallest_possible_p * len(tests) < ALPHA)


def decide_claims(*, primary, secondary, reference):
    """Gatekeeping, so the question's own answer never depends on the optional tests beside it, and
    the report as a whole claims nothing false more than ALPHA of the time when the arms do not
    differ:

    primary    full fine-tune vs head-only on the headline split: decided at ALPHA on its own;
    secondary  full fine-tune vs head-only on the other splits and parts: tested only when the
               primary is claimed (a fixed sequence: the family-wise error over primary and
               secondary stays at ALPHA), Holm within;
    reference  the probe's comparisons (a reference, another question): tested only when the
               primary is claimed, Holm within a family of its own (so the probe never changes a
               full-vs-head decision).
    """
    decide_family([primary], family="primary")
    decide_family(secondary, family="secondary", tested=primary.difference_claimed)
    decide_family(reference, family="probe", tested=primary.difference_claimed)


def withhold(tests, reason, runs):
    """No claim from a broken run: every test that involves it says why (reason) and which runs
    (runs, short)."""
    for test in tests:
        test.difference_claimed, test.withheld, test.withheld_runs = False, reason, runs


def across_seeds(diffs, units, unit_name="units"):
    """The experiment's delta over N seeds: the mean of the seeds' deltas, with a 95% interval that
    carries both the seed-to-seed spread and the test set's sampling (the same items in every seed).

    diffs: seeds x items, each item's paired difference (full fine-tune right minus head-only right:
    -1, 0, 1); units: an independent-unit id per item. Two sources of error, each with its own
    margin:
      between  the seeds' deltas' variance / N, known to N - 1 degrees of freedom: margin
               t(N - 1) x its root;
      within   the unit-level variance of the mean of the seed-averaged per-item differences (the
               test set's sampling, which a shared test set does not average away): margin
               t(units - 1) x its root.
    The half-width and p-value: interval_and_p.
    """
    diffs = np.asarray(diffs, float)
    seeds, items = diffs.shape
    per_seed = diffs.mean(1)
    mean = float(per_seed.mean())
    between = float(per_seed.var(ddof=1)) / seeds if seeds > 1 else 0.0
    sums, sizes = np.bincount(units, weights=diffs.mean(0)), np.bincount(units)
    count = int(np.sum(sizes > 0))
    within = count / max(count - 1, 1) * float(np.sum((sums - sizes * mean) ** 2)) / items**2
    half, p = interval_and_p(mean, [(between, seeds - 1), (within, count - 1)])
    # an accuracy difference lies in [-1, 1]: a t interval on few units can reach past it
    return AcrossSeedsTest(
        delta_accuracy=mean,
        delta_accuracy_ci95=[max(mean - half, -1.0), min(mean + half, 1.0)],
        p_value=p,
        paired_test=f"t over {seeds} seeds and {count:,} units",
        degrees_of_freedom=[seeds - 1, count - 1],
        seeds=seeds,
        independent_units=count,
        resampled_unit=unit_name,
        seed_sd=float(per_seed.std(ddof=1)) if seeds > 1 else 0.0,
        variance_between_seeds=between,
        variance_over_units=within,
        smallest_possible_p=0.0,
    )


def interval_and_p(mean, terms):
    """The 95% half-width, each (variance, degrees of freedom) term's t margin added in quadrature,
    and the p-value: the level at which the interval's edge just reaches 0, so the claim and the
    interval never disagree. Welch-Satterthwaite would pool the terms into one t with more degrees
    of freedom than N - 1 when the between term comes out small by chance, which at 2-3 seeds is
    often (it covered 86-91% in simulation); margins added in quadrature hold 95% at 2, 3 and 5
    seeds in the simulated scenarios (docs/statistics.md), at the price of width at N = 2, where
    t(1) is 12.7."""

    def half_width(level):
        # hypot: a margin near 1e300 (t with one degree of freedom at a tiny level) must not
        # overflow when squared
        return math.hypot(
            *(student_t.isf(level / 2, df) * v**0.5 for v, df in terms if v > 0 and df > 0)
        )

    if sum(v for v, _ in terms) == 0:  # every seed and unit agree exactly
        return 0.0, float(mean == 0)
    if mean == 0:
        return half_width(ALPHA), 1.0
    # the width falls as the level rises; searched on a log scale: p can be anywhere from 1 down
    # to 1e-300
    lowest = -300.0
    if half_width(10**lowest) <= abs(mean):
        return half_width(ALPHA), 10**lowest
    edge = brentq(lambda log_level: half_width(10**log_level) - abs(mean), lowest, 0.0, xtol=1e-6)
    return half_width(ALPHA), 10**edge


def units_needed(family_size):
    """The fewest independent units on which an outcome could be claimed in a family of this size:
    all of them one way gives p = 2^(1 - units), and Holm multiplies the smallest p by the family's
    size."""
    return int(math.floor(1 + math.log2(family_size / ALPHA))) + 1


def p_text(test, *, holm=False, short=False):
    """A test's p-value (holm: its Holm-adjusted one) as it is. A Monte Carlo p-value at its floor,
    1 / (draws + 1), says only that no draw was as extreme: it is written as that, not as a bound on
    the exact p (which can sit above the floor)."""
    name, p = ("Holm p", test.p_value_holm) if holm else ("p", test.p_value)
    if test.p_value_at_floor and p < 1:
        if short:
            return f"{name} = {p:.2g} (floor)"
        if not holm:
            return (
                f"{name} = {p:.2g}, the floor of {test.permutation_draws:,} draws (none as extreme)"
            )
        return f"{name} = {p:.2g} (from that floor)"
    return f"{name} = {p:.2g}"
