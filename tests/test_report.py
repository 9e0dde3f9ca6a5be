import json

import numpy as np
import pandas as pd
import pytest

import report
import stats

BALANCED = {split: {"positive_share": 0.5, "close_to_balanced": True} for split in ("test", "validation")}


def significance(interval, p, claimed, units=872, unit="sentences"):
    return {"delta_accuracy_ci95": interval, "p_value": p, "paired_test": "exact McNemar", "discordant": [3, 12],
            "independent_units": units, "resampled_unit": unit, "difference_claimed": claimed}


def comparison(interval, p, claimed, head_accuracy=0.8, at_floor=()):
    runs = {run: {split: {"accuracy": acc} for split in ("test", "validation")}
            for run, acc in (("head_only", head_accuracy), ("full_finetune", 0.9))}
    delta = {"accuracy": sum(interval) / 2}
    return {"seed": 42, "runs": runs, "delta": delta, "delta_validation": delta,
            "significance": {"test": significance(interval, p, claimed, 700, "clusters of nested phrases"),
                             "validation": significance(interval, p, claimed)},
            "at_majority_floor": {"head_only": list(at_floor), "full_finetune": []},
            "test_by_kind": {"whole_sentences": None, "phrases": None}}


def test_conclusion_claims_only_what_interval_and_test_support_and_names_each_population():
    clear = report.conclusion(comparison([0.05, 0.11], 0.001, True), {"test": 0.88, "validation": 0.0}, BALANCED)
    assert "On GLUE validation (872 independent sentences), full fine-tuning beats head-only by 8.0 points" in clear
    assert "On the re-split test set (700 clusters of nested phrases; 88% of its items are phrases seen in training)" \
        in clear
    assert "--split grouped" in clear
    unclear = report.conclusion(comparison([0.02, 0.19], 0.12, False), {"test": 0.0, "validation": 0.0}, BALANCED)
    assert "is not established" in unclear and "beats" not in unclear and "grouped" not in unclear


def test_the_verdict_speaks_of_the_external_sentences_between_validation_and_the_phrases():
    result = comparison([0.05, 0.11], 0.001, True)
    result["delta_external_test"] = {"accuracy": 0.232}
    result["significance"]["external_test"] = significance([0.2, 0.26], 0.001, True, 1821)
    balance = {**BALANCED, "external_test": {"positive_share": 0.5, "close_to_balanced": True}}
    text = report.conclusion(result, {"test": 0.88, "validation": 0.0, "external_test": 0.0}, balance)
    sentences = text.split(". ")
    assert sentences[0].startswith("On GLUE validation (872 independent sentences), full fine-tuning beats")
    assert sentences[1].startswith("On the external test set (1,821 independent sentences), full fine-tuning beats "
                                   "head-only by 23.2 points (95% CI +20.0 to +26.0")
    assert sentences[2].startswith("On the re-split test set (700 clusters of nested phrases")
    assert "trust GLUE validation and the external test set, or use --split grouped" in text
    leaky = report.conclusion(result, {"test": 0.0, "validation": 0.0, "external_test": 0.3}, balance)
    assert "On the external test set (1,821 independent sentences; 30% of its items are phrases seen in training)" \
        in leaky


def test_conclusion_flags_a_run_at_the_majority_floor_once_per_run():
    text = report.conclusion(comparison([0.3, 0.5], 0.001, True, 0.51, at_floor=("test", "validation")),
                             {"test": 0.0, "validation": 0.0}, BALANCED)
    assert text.count("The head-only model does no better than always predicting the majority class") == 1
    assert "on the re-split test set and GLUE validation" in text and "with a constant guess" in text


def test_small_validation_case_with_few_discordant_pairs_claims_nothing():
    """43 sentences, head-only right where the full fine-tune is wrong 0 times, the reverse 4: the bootstrap
    interval excludes 0, but four discordant pairs are not evidence (exact McNemar p = 0.125)."""
    labels = np.ones(43, int)
    head = np.r_[np.zeros(4), np.ones(30), np.zeros(9)].astype(int)
    full = np.r_[np.ones(4), np.ones(30), np.zeros(9)].astype(int)
    sig = stats.paired_significance(labels, head, full, 10_000, seed=0)
    assert sig["discordant"] == [0, 4] and sig["p_value"] == pytest.approx(0.125)
    assert sig["delta_accuracy_ci95"][0] > 0  # the interval alone would have claimed a win
    assert sig["difference_claimed"] is False
    result = comparison(sig["delta_accuracy_ci95"], sig["p_value"], sig["difference_claimed"])
    assert "beats" not in report.conclusion(result, {"test": 0.0, "validation": 0.0}, BALANCED)


def test_multi_seed_verdict_speaks_for_every_seed():
    summary = {"delta": {"accuracy": {"mean": 0.05, "std": 0.01}, "per_seed_accuracy": [0.04, 0.05, 0.06],
                         "seeds_claiming_a_difference": 2},
               "delta_validation": {"accuracy": {"mean": 0.1, "std": 0.02}, "per_seed_accuracy": [0.08, 0.1, 0.12],
                                    "seeds_claiming_a_difference": 3}}
    text = report.conclusion(comparison([0.05, 0.11], 0.001, True), {"test": 0.0, "validation": 0.0}, BALANCED,
                             summary)
    assert text.startswith("In seed 42, on GLUE validation")
    assert "Over 3 seeds (training randomness on one split), the delta on GLUE validation is +10.0 +- 2.0 points, " \
           "a difference claimed in 3 of 3." in text
    assert "claimed in 2 of 3" in text


@pytest.mark.parametrize("stop", [KeyboardInterrupt, OSError])
def test_a_write_stopped_midway_leaves_the_old_file_and_no_temporary_one(tmp_path, stop):
    target = tmp_path / "results.json"
    target.write_text('{"seed": 42}')

    def half_write(path):
        path.write_text('{"seed": 4')
        raise stop("stopped while writing")

    with pytest.raises(stop):
        report.write_atomic(target, half_write)
    assert json.loads(target.read_text()) == {"seed": 42}
    assert list(tmp_path.iterdir()) == [target]


def test_results_json_is_strict_json(tmp_path):
    frame = pd.DataFrame({"idx": [0], "sentence": ["a film"], "label": [1]})
    probs = {run: {split: np.array([0.9]) for split in ("test", "validation")}
             for run in ("head_only", "full_finetune")}
    predictions = report.predictions_frame({"test": frame, "validation": frame}, [(42, probs)])
    report.save_results(tmp_path, {"delta": float("nan"), "runs": [float("inf"), 0.5]}, predictions)
    text = (tmp_path / "results.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"delta": None, "runs": [None, 0.5]}


def test_predictions_csv_cells_never_run_as_spreadsheet_formulas():
    frame = pd.DataFrame({"idx": [0, 1, 2, 3], "label": [1, 0, 1, 0],
                          "sentence": ["=HYPERLINK(\"x\")", "-- dull", "@SUM(A1)", "a fine film"]})
    probs = {run: {split: np.array([0.9, 0.1, 0.8, 0.4]) for split in ("test", "validation")}
             for run in ("head_only", "full_finetune")}
    predictions = report.predictions_frame({"test": frame, "validation": frame}, [(42, probs)])
    assert predictions["sentence"].tolist()[:4] == ["'=HYPERLINK(\"x\")", "'-- dull", "'@SUM(A1)", "a fine film"]


def test_flips_are_the_changed_answers_surest_first():
    frame = pd.DataFrame({"idx": [0, 1, 2, 3, 4], "sentence": list("abcde"), "label": [1, 1, 0, 0, 1]})
    head = np.array([0.2, 0.4, 0.3, 0.9, 0.8])  # wrong, wrong, right, wrong, right
    full = np.array([0.7, 0.99, 0.6, 0.1, 0.9])  # right, right, wrong, right, right
    probs = {"head_only": {"test": head, "validation": head}, "full_finetune": {"test": full, "validation": full}}
    predictions = report.predictions_frame({"test": frame, "validation": frame}, [(42, probs)])
    flipped = report.flips(predictions[predictions["split"] == "test"])
    assert flipped["idx"].tolist() == [1, 3, 0, 2]  # by the full fine-tune's certainty
    assert flipped["change"].tolist() == ["fixed", "fixed", "fixed", "broken"]


def test_a_collapse_on_test_only_is_flagged_for_test_only():
    text = report.conclusion(comparison([0.05, 0.11], 0.001, True, at_floor=("test",)),
                             {"test": 0.0, "validation": 0.0}, BALANCED)
    assert "no better than always predicting the majority class on the re-split test set:" in text


def test_the_verdict_speaks_of_whole_sentences_and_phrases_apart():
    result = comparison([0.05, 0.11], 0.001, True)
    result["test_by_kind"] = {
        "whole_sentences": {"items": 120, "delta_accuracy": 0.2,
                            "significance": significance([0.1, 0.3], 0.001, True, 95, "clusters of nested phrases")},
        "phrases": {"items": 6600, "delta_accuracy": 0.01,
                    "significance": significance([-0.01, 0.03], 0.3, False, 600, "clusters of nested phrases")}}
    text = report.conclusion(result, {"test": 0.0, "validation": 0.0}, BALANCED)
    assert "Within it, on its 120 whole sentences, full fine-tuning beats head-only by 20.0 points" in text
    assert "on its 6,600 phrases, the difference from head-only (+1.0 points) is not established" in text
