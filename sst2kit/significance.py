"""How far to trust the difference between two models scored on the same items: a 95% interval and a paired test
over independent units, one rule that decides a claim, and the Holm correction across one seed's tests.

Units: a unit is a group of items that are not independent evidence (a sentence listed twice; a source sentence
and the phrases cut from it). When every item is its own unit the interval is an item bootstrap and the test exact
McNemar; otherwise whole units are resampled and the test flips the sign of each unit's summed difference.
"""
import numpy as np
from scipy.stats import binomtest

ALPHA = 0.05
# A Monte Carlo p-value is at least 1 / (resamples + 1). Holm multiplies the smallest by the family's size (at most
# 6: the probe's comparisons on three splits), and that must stay well below ALPHA (under ALPHA / 2) for a claim to
# be possible at all, whatever the effect.
LARGEST_FAMILY = 6
MIN_RESAMPLES = 1_000
# The cluster tests cost units x resamples draws each; far past here the interval and p-value no longer move.
MAX_RESAMPLES = 1_000_000
BLOCK = 2_000_000  # draws per chunk of resamples: bounds memory whatever the resample and unit counts


def mcnemar_exact(base_correct, model_correct):
    """Two-sided exact McNemar test on paired right/wrong outcomes: only the discordant pairs carry evidence."""
    base_correct, model_correct = np.asarray(base_correct, bool), np.asarray(model_correct, bool)
    base_wins = int(np.sum(base_correct & ~model_correct))
    model_wins = int(np.sum(model_correct & ~base_correct))
    n = base_wins + model_wins
    p = 1.0 if n == 0 else binomtest(min(base_wins, model_wins), n, 0.5).pvalue
    return float(p), [base_wins, model_wins]


def bootstrap_delta_ci(base_correct, model_correct, *, resamples, seed):
    """Paired bootstrap 95% interval of accuracy(model) - accuracy(baseline), items resampled.

    Per example the paired difference is -1, 0 or +1, so a resample's mean depends only on how many of each
    it drew: a multinomial draw with the observed shares is the same bootstrap, without n x resamples indices.
    """
    diff = np.asarray(model_correct, int) - np.asarray(base_correct, int)
    n = len(diff)
    shares = [np.mean(diff == -1), np.mean(diff == 0), np.mean(diff == 1)]
    counts = np.random.default_rng(seed).multinomial(n, shares, size=resamples)
    deltas = (counts[:, 2] - counts[:, 0]) / n
    low, high = np.percentile(deltas, [2.5, 97.5])
    return [float(low), float(high)]


def cluster_bootstrap_ci(diff, units, *, resamples, seed):
    """95% interval of the mean paired difference, whole units resampled: each resample draws as many units as
    there are, with replacement."""
    sums, sizes = np.bincount(units, weights=diff), np.bincount(units)
    rng, deltas = np.random.default_rng(seed), []
    chunk = max(1, BLOCK // len(sizes))
    for start in range(0, resamples, chunk):
        draws = rng.integers(0, len(sizes), size=(min(chunk, resamples - start), len(sizes)))
        deltas.append(sums[draws].sum(1) / sizes[draws].sum(1))
    low, high = np.percentile(np.concatenate(deltas), [2.5, 97.5])
    return [float(low), float(high)]


def cluster_sign_flip_p(diff, units, *, resamples, seed):
    """Two-sided paired permutation test over units: under 'both models are as good', each unit's summed
    difference is as likely to have the other sign, so its signs are flipped at random. A Monte Carlo p-value:
    its smallest possible value is 1 / (resamples + 1)."""
    sums = np.bincount(units, weights=diff)
    observed = abs(sums.sum())
    if observed == 0:
        return 1.0
    rng, extreme = np.random.default_rng(seed), 0
    chunk = max(1, BLOCK // len(sums))
    for start in range(0, resamples, chunk):
        signs = rng.choice([-1.0, 1.0], size=(min(chunk, resamples - start), len(sums)))
        extreme += int(np.sum(np.abs(signs @ sums) >= observed - 1e-9))
    return (1 + extreme) / (1 + resamples)


def paired_significance(labels, base_preds, model_preds, *, units, resamples, seed, unit_name="sentences"):
    """model minus baseline on these items: a 95% interval and a paired test over independent units (an id per
    item). The claim itself is decided across the seed's family of tests, by decide_claims."""
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
    return {"delta_accuracy_ci95": interval, "p_value": float(p), "paired_test": test,
            "permutation_draws": draws, "p_value_at_floor": draws is not None and p <= 1 / (draws + 1) + 1e-15,
            "resampled_unit": unit_name, "independent_units": int(len(sizes)),
            "largest_unit_items": int(sizes.max()) if len(sizes) else 0, "discordant": discordant,
            "mcnemar_p_items": mcnemar_p}


def holm(p_values):
    """Holm's step-down adjusted p-values: the family-wise error rate held at ALPHA across all of them."""
    p = np.asarray(p_values, float)
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    out = np.empty_like(p)
    out[order] = np.minimum(adjusted, 1.0)
    return out.tolist()


def decide_claims(entries):
    """The one verdict rule, over one seed's family of tests: a difference is claimed only when its 95% interval
    excludes 0 and its Holm-adjusted p-value is below ALPHA. Adds p_value_holm, family_size, difference_claimed."""
    for entry, adjusted in zip(entries, holm([e["p_value"] for e in entries])):
        low, high = entry["delta_accuracy_ci95"]
        entry.update(p_value_holm=adjusted, family_size=len(entries),
                     difference_claimed=bool((low > 0 or high < 0) and adjusted < ALPHA))


def p_text(entry, key="p_value"):
    """A p-value as it is: a Monte Carlo p-value at its floor is only known to lie below it."""
    if entry.get("p_value_at_floor") and key == "p_value":
        return f"p < {1 / (entry['permutation_draws'] + 1):.2g}"
    return f"p = {entry[key]:.2g}"
