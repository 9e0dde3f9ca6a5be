import dataclasses
import re
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import paired_test, trained
from sst2kit import metrics as stats
from sst2kit import significance
from sst2kit.comparison import compare_runs
from sst2kit.seeds import directions


def test_metrics_on_hand_made_predictions():
    m = stats.classification_metrics([1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 1])
    assert m.accuracy == pytest.approx(4 / 6)
    assert m.f1 == pytest.approx(2 / 3)  # precision 2/3, recall 2/3
    assert m.macro_f1 == pytest.approx(2 / 3)
    assert m.confusion_matrix == [[2, 1], [1, 2]]
    assert "positive" in m.report
    # a constant positive answer
    imbalanced = stats.classification_metrics([1] * 7 + [0] * 3, [1] * 10)
    # flattering
    assert imbalanced.accuracy == 0.7 and imbalanced.f1 == pytest.approx(14 / 17)
    assert imbalanced.balanced_accuracy == 0.5 and imbalanced.macro_f1 == pytest.approx(7 / 17)
    # one class present: balanced accuracy is that class's recall, as metrics.balanced_accuracy says
    assert (
        stats.balanced_accuracy([1] * 5, [1] * 5) == 1.0
        and stats.balanced_accuracy([1] * 5, [0] * 5) == 0.0
    )
    assert imbalanced.predicted_positive_share == 1.0


def test_the_error_rate_reduction_is_net_and_the_share_fixed_stands_beside_it():
    """Head-only wrong on 20 of 100; the full fine-tune fixes 15 of them and breaks 5 others: the
    net reduction is (15 - 5) / 20 = 50%, the share of head-only's errors it fixes 75%."""
    head = SimpleNamespace(
        accuracy=0.80,
        f1=0.7,
        macro_f1=0.7,
        balanced_accuracy=0.8,
        confusion_matrix=[[40, 10], [10, 40]],
    )
    full = SimpleNamespace(accuracy=0.90, f1=0.91, macro_f1=0.9, balanced_accuracy=0.9)
    d = stats.metric_delta(head, full, fixed=15, broken=5)
    assert d.accuracy == pytest.approx(0.10) and d.f1 == pytest.approx(0.21)
    assert d.error_rate_reduction == pytest.approx(0.5) and d.errors_fixed_share == pytest.approx(
        0.75
    )
    breaks_more = stats.metric_delta(
        head, SimpleNamespace(**{**vars(full), "accuracy": 0.7}), fixed=5, broken=15
    )
    assert (
        breaks_more.error_rate_reduction == pytest.approx(-0.5)
        and breaks_more.errors_fixed_share == 0.25
    )
    perfect = SimpleNamespace(
        **{**vars(head), "accuracy": 1.0, "confusion_matrix": [[50, 0], [0, 50]]}
    )
    assert stats.metric_delta(perfect, full, fixed=0, broken=10).error_rate_reduction is None


def test_mcnemar_exact_known_values():
    # 1 discordant pair one way, 9 the other: p = 2 * P(X <= 1), X ~ Bin(10, 0.5) = 22/1024
    head = [True] * 1 + [False] * 9 + [True] * 50
    full = [False] * 1 + [True] * 9 + [True] * 50
    p, discordant = significance.mcnemar_exact(head, full)
    assert discordant == [1, 9]
    assert p == pytest.approx(22 / 1024)
    assert significance.mcnemar_exact([True, False], [True, False]) == (1.0, [0, 0])  # all agree


def test_bootstrap_interval_covers_truth_and_narrows_with_n():
    rng = np.random.default_rng(0)

    def interval(n):
        head = rng.random(n) < 0.80
        full = rng.random(n) < 0.85  # true delta 0.05
        return significance.bootstrap_delta_ci(head, full, resamples=2000, seed=1)

    small, large = interval(500), interval(20_000)
    assert large[0] < 0.05 < large[1]
    assert large[1] - large[0] < (small[1] - small[0]) / 4
    assert significance.bootstrap_delta_ci([1, 0, 1], [1, 0, 1], resamples=500, seed=0) == [
        0.0,
        0.0,
    ]


def test_cluster_bootstrap_widens_for_nested_items_and_matches_items_when_independent():
    rng = np.random.default_rng(0)
    clusters = np.repeat(np.arange(200), 10)  # 2,000 items, 10 to a cluster
    # items of one cluster tend to share the outcome
    shared = rng.choice([-1, 0, 0, 1, 1], size=200)
    diff = np.where(
        rng.random(2000) < 0.8, shared[clusters], rng.choice([-1, 0, 1], size=2000)
    ).astype(float)
    head = np.ones(2000, bool)
    full = head.copy()
    full[diff < 0] = False
    head[diff > 0] = False
    item_lo, item_hi = significance.bootstrap_delta_ci(head, full, resamples=4000, seed=1)
    nested_lo, nested_hi = significance.cluster_bootstrap_ci(
        full.astype(float) - head, clusters, resamples=4000, seed=1
    )
    assert nested_hi - nested_lo > 2 * (item_hi - item_lo)
    alone_lo, alone_hi = significance.cluster_bootstrap_ci(
        full.astype(float) - head, np.arange(2000), resamples=4000, seed=1
    )
    assert alone_lo == pytest.approx(item_lo, abs=0.006) and alone_hi == pytest.approx(
        item_hi, abs=0.006
    )


def test_cluster_sign_flip_test_is_calibrated_and_detects_a_real_gain():
    rng = np.random.default_rng(2)
    clusters = np.repeat(np.arange(60), 5)
    flip = significance.cluster_sign_flip_p
    null_ps = [
        flip(
            rng.choice([-1.0, 0, 1], size=300) * rng.choice([-1, 1], size=60)[clusters],
            clusters,
            resamples=400,
            seed=s,
        )
        for s in range(200)
    ]
    assert np.mean(np.array(null_ps) < 0.05) < 0.09
    gain = rng.choice([0.0, 1.0], size=300, p=[0.7, 0.3])
    assert significance.cluster_sign_flip_p(gain, clusters, resamples=2000, seed=0) < 0.01


def test_the_verdict_rule_keeps_false_claims_at_five_percent_with_few_discordant_pairs():
    """Coverage by simulation: two equally good models on 43 sentences, disagreeing rarely. The
    interval alone claims a difference too often; interval and McNemar together do not."""
    rng = np.random.default_rng(3)
    claims, interval_only = 0, 0
    for trial in range(400):
        labels = np.ones(43, int)
        head = (rng.random(43) < 0.8).astype(int)
        full = head.copy()
        flips = rng.random(43) < 0.08  # rare disagreements, as likely either way
        full[flips] = 1 - full[flips]
        sig = significance.paired_significance(
            labels, head, full, resamples=1000, seed=trial, units=np.arange(43)
        )
        significance.decide_family([sig], family="primary")
        claims += sig.difference_claimed
        interval_only += sig.delta_accuracy_ci95[0] > 0 or sig.delta_accuracy_ci95[1] < 0
    assert claims / 400 <= 0.05
    assert interval_only > claims


def test_seeds_are_counted_by_the_direction_of_their_claims():
    """+6.0 claimed and -0.9 claimed are one seed ahead and one behind, not 'a difference claimed in
    2 of 3'; a withheld seed is counted as withheld, not as not established."""
    entries = [
        paired_test(difference_claimed=True, delta_accuracy_ci95=[0.02, 0.10]),
        paired_test(difference_claimed=True, delta_accuracy_ci95=[-0.015, -0.003]),
        paired_test(difference_claimed=False, delta_accuracy_ci95=[0.01, 0.08]),
        paired_test(delta_accuracy_ci95=[0.14, 0.46], withheld="collapsed"),
    ]
    assert directions(entries) == {
        "seeds_ahead": 1,
        "seeds_behind": 1,
        "seeds_withheld": 1,
        "seeds_not_established": 1,
    }


def test_collapse_is_judged_per_split_within_one_item_or_half_a_point():
    assert stats.at_floor(0.52, 0.51, 43)  # within one item of 43
    assert not stats.at_floor(0.54, 0.51, 43)
    assert stats.at_floor(0.514, 0.51, 5000) and not stats.at_floor(0.52, 0.51, 5000)


def test_the_probe_reference_fits_what_an_under_trained_head_misses():
    import torch

    from sst2kit.features import FirstTokenStates
    from sst2kit.probe import best_linear_probe

    rng = np.random.default_rng(0)

    def separable(n):
        labels = rng.integers(2, size=n)
        states = rng.normal(size=(n, 16)) * 5  # loud, uninformative directions
        # one faint, decisive one
        states[:, 0] = (2 * labels - 1) * 0.003 + rng.normal(scale=0.0005, size=n)
        return FirstTokenStates(torch.as_tensor(states, dtype=torch.float32), labels)

    features = {"train": separable(2000), "test": separable(500), "validation": separable(500)}
    probs, fit = best_linear_probe(features, seed=0)
    accuracy = np.mean(
        stats.predicted_labels(probs["validation"]) == features["validation"].labels.numpy()
    )
    assert accuracy > 0.97 and fit["train_items"] == 2000 and fit["cross_validated_on"] == 2000
    assert set(probs) == {"test", "validation"}
    # a head that has not found the decisive direction
    under_trained = features["validation"].states[:, 1]
    assert np.mean((under_trained.numpy() > 0) == features["validation"].labels.numpy()) < 0.6


def test_the_probe_standardises_inside_its_folds_and_keeps_the_chosen_penalty_per_item(monkeypatch):
    """A scaler fitted on every row before the folds let the held-out rows shape their own features;
    C chosen on a fold's items and refitted unchanged on more items is a weaker penalty per item."""
    import torch
    from sklearn.preprocessing import StandardScaler

    from sst2kit import probe
    from sst2kit.features import FirstTokenStates

    rng = np.random.default_rng(1)
    labels = rng.integers(2, size=1500)
    states = rng.normal(size=(1500, 8)) + labels[:, None] * 0.3
    features = {
        name: FirstTokenStates(torch.as_tensor(states, dtype=torch.float32), labels)
        for name in ("train", "validation")
    }
    monkeypatch.setattr(probe, "CV_ITEMS", 1000)  # chosen on 1,000 items, fitted on all 1,500
    fitted_rows, fit = [], StandardScaler.fit
    monkeypatch.setattr(
        StandardScaler, "fit", lambda self, x, *a, **k: fitted_rows.append(len(x)) or fit(self, x)
    )
    _, record = probe.best_linear_probe(features, seed=0)
    assert fitted_rows.count(800) == probe.FOLDS * probe.REPEATS and fitted_rows.count(1000) == 0
    assert record["fold_items"] == 800
    assert record["C"] == pytest.approx(record["C_on_folds"] * 800 / 1500)


def test_each_fold_of_the_probe_gets_one_blas_thread(monkeypatch):
    """Five fold threads each running a multi-threaded OpenBLAS took a 2-core machine 60 s for a fit
    that takes 2.5 s with one BLAS thread per fold (docs/speed.md): the folds must see one."""
    import torch
    from threadpoolctl import threadpool_info

    from sst2kit import probe
    from sst2kit.features import FirstTokenStates

    rng = np.random.default_rng(2)
    labels = rng.integers(2, size=300)
    states = torch.as_tensor(rng.normal(size=(300, 4)) + labels[:, None], dtype=torch.float32)
    features = {name: FirstTokenStates(states, labels) for name in ("train", "validation")}
    blas_threads, fold_scores = [], probe.fold_scores

    def counted(*args, **kwargs):
        blas_threads.extend(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
        return fold_scores(*args, **kwargs)

    monkeypatch.setattr(probe, "fold_scores", counted)
    probe.best_linear_probe(features, seed=0)
    assert blas_threads and set(blas_threads) == {1}


def test_accuracy_by_length_buckets_give_the_paired_delta_with_its_interval():
    from types import SimpleNamespace

    split = SimpleNamespace(
        lengths=np.array([5, 10, 11, 25, 25, 60]),
        labels=np.array([1, 1, 0, 0, 1, 1]),
        units=np.arange(6),
    )
    preds = {
        "head_only": np.array([1, 0, 0, 1, 1, 0]),
        "full_finetune": np.array([1, 1, 0, 0, 1, 1]),
    }
    buckets = stats.accuracy_by_length(split, [preds], resamples=1000, seed=0)
    assert [(b["tokens"], b["items"]) for b in buckets] == [
        ("<=10", 2),
        ("11-20", 1),
        ("21-30", 2),
        (">40", 1),
    ]
    assert [b["head_only"] for b in buckets] == [0.5, 1.0, 0.5, 0.0]
    assert all(b["full_finetune"] == 1.0 for b in buckets)
    # the paired difference, bucket by bucket
    assert [b["delta"] for b in buckets] == [0.5, 0.0, 0.5, 1.0]
    # a 2-item bucket printed [100, 100]: too few units for any interval, none is given
    assert all(b["delta_ci95"] is None and b["head_only_ci95"] is None for b in buckets)


def test_by_length_intervals_count_units_not_items_and_average_the_seeds():
    """40 units of 5 items each, the items of a unit answered alike: an interval over items would be
    about sqrt(5) too narrow. Two seeds are averaged, not the first one drawn."""
    from types import SimpleNamespace

    rng = np.random.default_rng(3)
    units = np.repeat(np.arange(40), 5)
    split = SimpleNamespace(lengths=np.full(200, 8), labels=np.ones(200, int), units=units)
    unit_right = rng.random(40) < 0.6
    first = {"head_only": np.zeros(200, int), "full_finetune": unit_right[units].astype(int)}
    second = {"head_only": np.zeros(200, int), "full_finetune": np.ones(200, int)}
    [bucket] = stats.accuracy_by_length(split, [first, second], resamples=2000, seed=0)
    assert bucket["full_finetune"] == pytest.approx((unit_right.mean() + 1) / 2)
    low, high = bucket["full_finetune_ci95"]
    as_items = SimpleNamespace(lengths=split.lengths, labels=split.labels, units=np.arange(200))
    [itemwise] = stats.accuracy_by_length(as_items, [first, second], resamples=2000, seed=0)
    assert high - low > 1.8 * (
        itemwise["full_finetune_ci95"][1] - itemwise["full_finetune_ci95"][0]
    )


def test_the_majority_floor_is_each_splits_own_majority():
    """A model that always answers 'negative' on a mostly negative split learned nothing, whatever
    train's majority is."""
    labels = np.array([0] * 70 + [1] * 30)
    assert stats.majority_floor(labels) == pytest.approx(0.7)
    assert stats.at_floor(float(np.mean(labels == 0)), stats.majority_floor(labels), len(labels))


def test_holm_adjusts_step_down_and_keeps_order():
    assert significance.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert significance.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    entries = [paired_test(p_value=p, delta_accuracy_ci95=[0.01, 0.2]) for p in (0.011, 0.02, 0.04)]
    significance.decide_family(entries, family="secondary")
    assert [e.difference_claimed for e in entries] == [True, True, True]  # 0.033, 0.04, 0.04
    entries.append(paired_test(p_value=0.03, delta_accuracy_ci95=[0.01, 0.2]))
    significance.decide_family(entries, family="secondary")
    # 0.044, then 0.06s
    assert [e.difference_claimed for e in entries] == [True, False, False, False]
    assert entries[0].family_size == 4


def test_a_monte_carlo_p_value_at_its_floor_is_printed_as_a_bound():
    diff = np.ones(200)
    units = np.arange(200) // 2  # 100 units: the sign-flip test, with 999 draws
    entry = significance.paired_significance(
        np.ones(200), np.zeros(200), diff, resamples=999, seed=0, units=units
    )
    assert entry.paired_test == "sign-flip permutation" and entry.p_value == pytest.approx(1 / 1000)
    assert entry.p_value_at_floor and entry.permutation_draws == 999
    # what it is: no draw as extreme. Not a bound on the exact p, which can sit above the floor
    assert significance.p_text(entry) == "p = 0.001, the floor of 999 draws (none as extreme)"
    significance.decide_family(
        [entry, dataclasses.replace(entry, p_value_at_floor=False, p_value=0.2)], family="secondary"
    )
    assert significance.p_text(entry, holm=True) == "Holm p = 0.002 (from that floor)"
    exact = significance.paired_significance(
        np.ones(200), np.zeros(200), diff, resamples=999, seed=0, units=np.arange(200)
    )
    assert exact.paired_test == "exact McNemar" and significance.p_text(exact).startswith("p = ")


def test_repeated_sentences_are_one_unit_and_add_no_evidence():
    """30 sentences where the full fine-tune is right on 7 more than head-only is not evidence; the
    same 30 repeated 20 times must not become evidence either."""
    from sst2kit.phrases import duplicate_units

    rng = np.random.default_rng(0)
    sentences = [f"sentence {i}" for i in range(30)]
    labels = rng.integers(2, size=30)
    head, full = labels.copy(), labels.copy()
    head[:9] = 1 - head[:9]
    full[9:11] = 1 - full[9:11]  # discordant: 9 for full, 2 for head-only
    once = significance.paired_significance(
        labels, head, full, resamples=2000, seed=0, units=duplicate_units(sentences)
    )
    twenty = significance.paired_significance(
        np.tile(labels, 20),
        np.tile(head, 20),
        np.tile(full, 20),
        resamples=2000,
        seed=0,
        units=duplicate_units(sentences * 20),
    )
    significance.decide_family([once], family="primary")
    significance.decide_family([twenty], family="primary")
    assert twenty.independent_units == 30 and twenty.largest_unit_items == 20
    assert not once.difference_claimed and not twenty.difference_claimed
    assert twenty.p_value > 0.05


def source_sentence_trials(trials, rng):
    """SST-2-shaped test sets where two models are equally good: source sentences with a few phrases
    each, whose outcomes move together, plus short phrases found in many sentences. Yields (diff,
    item-level units, source units) per trial."""
    from sst2kit.phrases import is_phrase_and_source

    vocabulary = [f"w{i}" for i in range(400)]
    for _ in range(trials):
        common = ["the film", "a movie"]  # each inside half of the sentences
        sources = [
            " ".join(rng.choice(vocabulary, size=8, replace=False)) + f" {common[s % 2]}"
            for s in range(80)
        ]
        items, source_of = [], []
        for s, sentence in enumerate(sources):
            words = sentence.split()
            for start in range(0, 6, 2):
                items.append(" ".join(words[start:]) if start else sentence)
                source_of.append(s)
        units = is_phrase_and_source(items + common, sources)[1]
        # each sentence's shared lean, symmetric: no effect
        tilt = rng.choice([-1.0, 0.0, 1.0], size=len(sources))
        noise = rng.choice([-1.0, 0.0, 1.0], size=len(items), p=[0.1, 0.8, 0.1])
        diff = np.r_[
            np.where(rng.random(len(items)) < 0.7, tilt[source_of], noise),
            rng.choice([-1.0, 1.0], 2),
        ]
        yield diff, np.arange(len(diff)), units


def test_source_sentence_units_keep_the_interval_calibrated():
    """Coverage by simulation: over source-sentence units the 95% interval of an equal-models
    difference covers 0 about 95% of the time; treating each phrase as independent covers it far
    less often."""
    rng = np.random.default_rng(4)
    covered = {"items": 0, "sources": 0}
    for trial, (diff, items, sources) in enumerate(source_sentence_trials(150, rng)):
        for name, units in (("items", items), ("sources", sources)):
            low, high = significance.cluster_bootstrap_ci(diff, units, resamples=400, seed=trial)
            covered[name] += low <= 0 <= high
    assert 0.9 <= covered["sources"] / 150 <= 1.0
    assert covered["items"] / 150 < 0.85


def test_the_verdict_rule_keeps_false_claims_at_five_percent_over_clustered_units():
    """The rule over units: equally good models whose disagreements come in source-sentence
    clumps."""
    rng = np.random.default_rng(5)
    claims = 0
    for trial, (diff, _, sources) in enumerate(source_sentence_trials(150, rng)):
        labels = np.ones(len(diff), int)
        # right (1) or wrong (0) per model, giving these differences; both right where they agree
        full, head = (
            np.where(diff == 0, 1, diff > 0).astype(int),
            np.where(diff == 0, 1, diff < 0).astype(int),
        )
        entry = significance.paired_significance(
            labels,
            head,
            full,
            resamples=400,
            seed=trial,
            units=sources,
            unit_name="source sentences",
        )
        significance.decide_family([entry], family="primary")
        claims += entry.difference_claimed
    assert claims / 150 <= 0.06


def simulated_experiments(scenario, seeds, trials, *, items=300, seed=6):
    """Across-seed data where seeds matter: a test set of `items` sentences drawn from a population,
    items differing in difficulty; each seed shifts each arm's skill at random (training
    randomness), and in 'bad seeds' one seed in five loses 0.8 logits of the full fine-tune's skill
    (about 12 points). 'null': the arms are equal. Yields (diffs seeds x items, the experiment's
    true delta over the population and over seeds)."""
    rng = np.random.default_rng(seed)
    population = 20_000
    difficulty = rng.normal(1.0, 1.2, population)  # logit of head-only being right
    gain = rng.normal(0.6, 0.8, population) if scenario != "null" else np.zeros(population)
    spread = {"large": (0.6, 0.3), "bad seeds": (0.1, 0.1), "null": (0.3, 0.3)}[scenario]

    def shifts(n):
        full, head = rng.normal(0, spread[0], n), rng.normal(0, spread[1], n)
        return full - 0.8 * (rng.random(n) < 0.2) * (scenario == "bad seeds"), head

    def sigmoid(x):
        return 1 / (1 + np.exp(-x))

    full, head = shifts(300)
    truth = float(
        np.mean(
            sigmoid(difficulty[:, None] + gain[:, None] + full)
            - sigmoid(difficulty[:, None] + head)
        )
    )
    for _ in range(trials):
        chosen = rng.choice(population, size=items, replace=False)
        full, head = shifts(seeds)
        right_full = rng.random((seeds, items)) < sigmoid(
            difficulty[chosen] + gain[chosen] + full[:, None]
        )
        right_head = rng.random((seeds, items)) < sigmoid(difficulty[chosen] + head[:, None])
        yield right_full.astype(float) - right_head, truth


@pytest.mark.parametrize("scenario", ["large", "bad seeds"])
@pytest.mark.parametrize("seeds", [2, 3, 5])
def test_the_interval_across_seeds_covers_the_experiments_delta(scenario, seeds):
    """Coverage by simulation of significance.across_seeds where the seed term matters: few seeds
    and a large seed-to-seed spread, or a bad seed in five. Welch-Satterthwaite covered 86-91% at
    2-3 seeds; dropping the between-seed term covers about half. The truth is the experiment's
    delta, over the population and seeds."""
    covered = sum(
        low <= truth <= high
        for diffs, truth in simulated_experiments(scenario, seeds, 400)
        for low, high in [significance.across_seeds(diffs, np.arange(300)).delta_accuracy_ci95]
    )
    assert covered / 400 >= 0.93


def test_a_difference_far_beyond_doubt_gets_a_tiny_p_not_an_error():
    """The p-value is where the interval's edge reaches 0: a search over levels down to 1e-300 that
    failed to converge (a RuntimeError mid-report) when p was that small."""
    full = np.ones((3, 872))
    full[:, :20] = 0  # three seeds that agree: 97.7% right against 20% for head-only
    head = (np.arange(872) % 5 == 0).astype(float)[None].repeat(3, 0)
    entry = significance.across_seeds(full - head, np.arange(872))
    assert 0 < entry.p_value < 1e-100 and entry.delta_accuracy_ci95[0] > 0.7


@pytest.mark.parametrize("seeds", [2, 3])
def test_with_equal_arms_the_across_seed_answer_claims_a_difference_at_most_5_percent_of_runs(
    seeds,
):
    claims = 0
    for diffs, _ in simulated_experiments("null", seeds, 400, seed=12):
        entry = significance.across_seeds(diffs, np.arange(300))
        significance.decide_family([entry], family="primary")
        claims += entry.difference_claimed
        low, high = entry.delta_accuracy_ci95
        assert (entry.p_value < 0.05) == (low > 0 or high < 0)  # the test and the interval agree
    assert claims / 400 <= 0.05 + 2 * (0.05 * 0.95 / 400) ** 0.5


@pytest.mark.slow
def test_under_the_global_null_a_three_seed_report_says_beats_or_trails_at_most_5_percent():
    """Head-only, full fine-tune and the probe equally good on two splits, 3 seeds: runs whose
    verdict prints any 'beats' or 'trails' (a claim). Per-seed lines at their own level, and the
    probe's family beside the primary, printed such a line in 11.7% of runs."""
    from test_report import experiment

    from sst2kit.verdict import verdict_lines

    false_claims, trials = 0, 160
    for trial in range(trials):
        results = experiment(
            [{"head_only": 0.75, "full_finetune": 0.75}] * 3,
            probe=0.75,
            sizes=(("validation", 120), ("test", 90)),
            rng_seed=trial,
        )
        false_claims += any(
            " beats " in line or " trails " in line for line in verdict_lines(results)
        )
    assert false_claims / trials <= 0.05 + 2 * (0.05 * 0.95 / trials) ** 0.5


def test_the_gatekeeping_families_keep_the_error_rate_of_the_main_question_at_five_percent():
    """Equally good models on the headline split and on three others: a false claim anywhere among
    the primary test and the gated secondary family in at most 5% of trials (binomial slack for 600
    trials)."""
    rng = np.random.default_rng(7)
    any_claim = 0
    for trial in range(600):
        entries = []
        for n in (150, 200, 120, 80):
            # right is 1: both models right on about 80% of items, independently
            labels = np.ones(n, int)
            head, full = (rng.random(n) < 0.8).astype(int), (rng.random(n) < 0.8).astype(int)
            entries.append(
                significance.paired_significance(
                    labels, head, full, resamples=1000, seed=trial, units=np.arange(n)
                )
            )
        significance.decide_claims(primary=entries[0], secondary=entries[1:], reference=[])
        any_claim += any(e.difference_claimed for e in entries)
    assert any_claim / 600 <= 0.05 + 2 * (0.05 * 0.95 / 600) ** 0.5


def test_the_secondary_family_is_tested_only_when_the_primary_is_claimed():
    primary = paired_test(p_value=0.2, delta_accuracy_ci95=[-0.01, 0.1])
    secondary = [paired_test(p_value=1e-6, delta_accuracy_ci95=[0.1, 0.3])]
    significance.decide_claims(primary=primary, secondary=secondary, reference=[])
    assert secondary[0].tested is False and not secondary[0].difference_claimed
    primary.p_value, primary.delta_accuracy_ci95 = 0.01, [0.01, 0.1]
    significance.decide_claims(primary=primary, secondary=secondary, reference=[])
    assert primary.family_size == 1 and secondary[0].difference_claimed


def test_turning_the_probe_on_or_off_changes_no_full_versus_head_only_decision():
    """The README's case: with the probe's tests in one family the whole-sentence line was not
    claimed (Holm 0.057), without them it was (0.022). Now the probe is a family of its own."""
    from conftest import answers, eval_split
    from sst2kit.names import PROBE

    rng = np.random.default_rng(8)
    labels = {name: rng.integers(2, size=n) for name, n in (("validation", 200), ("test", 160))}
    is_phrase = np.arange(160) % 4 == 0
    splits = {
        "validation": eval_split("validation", labels["validation"]),
        "test": eval_split(
            "test", labels["test"], parts={"whole_sentences": ~is_phrase, "phrases": is_phrase}
        ),
    }
    probs = {
        run: {name: answers(y, rng.random(len(y)) < accuracy) for name, y in labels.items()}
        for run, accuracy in (("head_only", 0.7), ("full_finetune", 0.8), (PROBE, 0.78))
    }
    records = trained()
    with_probe = compare_runs(42, records, probs=probs, eval_splits=splits, resamples=1000)
    without = compare_runs(
        42,
        records,
        probs={k: v for k, v in probs.items() if k != PROBE},
        eval_splits=splits,
        resamples=1000,
    )
    assert with_probe.tests == without.tests
    assert with_probe.by_kind == without.by_kind
    assert with_probe.probe.full_over_probe.tests["validation"].family == "probe"


def test_the_resample_floor_lets_the_largest_family_reach_a_claim():
    """With the fewest draws allowed, Holm's largest adjustment of the smallest Monte Carlo p stays
    under ALPHA / 2: a clustered split can always be claimed when the effect is there."""
    assert significance.LARGEST_FAMILY / (significance.MIN_RESAMPLES + 1) < significance.ALPHA / 2


def test_a_broken_run_makes_no_claim_in_its_seed():
    from conftest import answers, eval_split

    rng = np.random.default_rng(9)
    labels = rng.integers(2, size=300)
    splits = {"validation": eval_split("validation", labels)}
    probs = {
        "head_only": {"validation": answers(labels, rng.random(300) < 0.85)},
        # 'positive' to everything
        "full_finetune": {"validation": answers(labels, labels == 1)},
    }
    records = trained({"full_finetune": ("diverged", "its training loss ended at 67 after 0.68")})
    result = compare_runs(42, records, probs=probs, eval_splits=splits, resamples=1000)
    entry = result.tests["validation"]
    # the interval excludes 0
    assert entry.delta_accuracy_ci95[1] < 0 and not entry.difference_claimed
    assert (
        "the full fine-tune run of seed 42 diverged: its training loss ended at 67"
        in entry.withheld
    )


def test_a_broken_run_withholds_only_the_probe_tests_that_involve_it():
    """Head-only collapsed: every full-vs-head test and the probe-vs-head test are withheld; the
    full fine-tune against the probe compares two healthy models and stands."""
    from conftest import answers, eval_split
    from sst2kit.names import PROBE

    rng = np.random.default_rng(10)
    labels = rng.integers(2, size=400)
    splits = {"validation": eval_split("validation", labels)}
    probs = {
        "head_only": {"validation": np.full(400, 0.9)},  # 'positive' to everything
        "full_finetune": {"validation": answers(labels, rng.random(400) < 0.95)},
        PROBE: {"validation": answers(labels, rng.random(400) < 0.75)},
    }
    records = trained(
        {"head_only": ("collapsed", "it answers 'positive' to every validation item")}
    )
    result = compare_runs(42, records, probs=probs, eval_splits=splits, resamples=1000)
    assert result.tests["validation"].withheld
    assert result.probe.over_head_only.tests["validation"].withheld
    over_probe = result.probe.full_over_probe.tests["validation"]
    assert over_probe.withheld is None and over_probe.difference_claimed


def test_the_metrics_counted_from_the_confusion_matrix_equal_scikit_learns():
    """classification_metrics counts accuracy, F1 and the per-class report itself (for speed): on
    random, one-class and constant answers alike it must give scikit-learn's numbers and text
    exactly."""
    from sklearn.metrics import accuracy_score, classification_report, f1_score

    rng = np.random.default_rng(3)
    for _ in range(300):
        n = int(rng.integers(1, 40))
        labels = rng.integers(0, 2, n) * (rng.random() < 0.9)
        preds = rng.integers(0, 2, n) * (rng.random() < 0.8)
        metrics = stats.classification_metrics(labels, preds)
        assert metrics.accuracy == accuracy_score(labels, preds)
        assert metrics.f1 == f1_score(labels, preds, zero_division=0)
        assert metrics.macro_f1 == f1_score(labels, preds, average="macro", zero_division=0)
        sklearn_report = classification_report(
            labels,
            preds,
            labels=[0, 1],
            target_names=["negative", "positive"],
            digits=4,
            zero_division=0,
        )
        # where no item is right, scikit-learn prints each support as a float (2.0), ours as 2
        assert metrics.report == re.sub(r"(\d+)\.0$", r"  \1", sklearn_report, flags=re.M)
