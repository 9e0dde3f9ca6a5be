import numpy as np
import pytest

import stats


def test_metrics_on_hand_made_predictions():
    m = stats.classification_metrics([1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 1])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["f1"] == pytest.approx(2 / 3)  # precision 2/3, recall 2/3
    assert m["macro_f1"] == pytest.approx(2 / 3)
    assert m["confusion_matrix"] == [[2, 1], [1, 2]]
    assert "positive" in m["report"]


def test_delta_is_full_minus_head_only():
    d = stats.metric_delta({"accuracy": 0.80, "f1": 0.70}, {"accuracy": 0.90, "f1": 0.91})
    assert d["accuracy"] == pytest.approx(0.10)
    assert d["accuracy_relative_pct"] == pytest.approx(12.5)
    assert d["f1"] == pytest.approx(0.21)


def test_mcnemar_exact_known_values():
    # 1 discordant pair one way, 9 the other: p = 2 * P(X <= 1), X ~ Bin(10, 0.5) = 22/1024
    head = [True] * 1 + [False] * 9 + [True] * 50
    full = [False] * 1 + [True] * 9 + [True] * 50
    p, discordant = stats.mcnemar_exact(head, full)
    assert discordant == [1, 9]
    assert p == pytest.approx(22 / 1024)
    assert stats.mcnemar_exact([True, False], [True, False]) == (1.0, [0, 0])  # all agree


def test_bootstrap_interval_covers_truth_and_narrows_with_n():
    rng = np.random.default_rng(0)

    def interval(n):
        head = rng.random(n) < 0.80
        full = rng.random(n) < 0.85  # true delta 0.05
        return stats.bootstrap_delta_ci(head, full, 2000, seed=1)

    small, large = interval(500), interval(20_000)
    assert large[0] < 0.05 < large[1]
    assert large[1] - large[0] < (small[1] - small[0]) / 4
    assert stats.bootstrap_delta_ci([1, 0, 1], [1, 0, 1], 500, 0) == [0.0, 0.0]


def test_summary_over_seeds():
    def seed_result(head_acc, full_acc):
        run = lambda acc: {split: {"accuracy": acc, "f1": acc} for split in ("test", "validation")}  # noqa: E731
        delta = {"accuracy": full_acc - head_acc, "f1": full_acc - head_acc}
        return {"runs": {"head_only": run(head_acc), "full_finetune": run(full_acc)},
                "delta": delta, "delta_validation": delta}

    summary = stats.summarize_seeds([seed_result(0.80, 0.90), seed_result(0.82, 0.88)])
    assert summary["head_only"]["test"]["accuracy"]["mean"] == pytest.approx(0.81)
    assert summary["head_only"]["test"]["accuracy"]["std"] == pytest.approx(np.std([0.80, 0.82], ddof=1))
    assert summary["delta"]["accuracy"]["mean"] == pytest.approx(0.08)
    assert summary["delta_validation"]["accuracy"]["std"] == pytest.approx(np.std([0.10, 0.06], ddof=1))
