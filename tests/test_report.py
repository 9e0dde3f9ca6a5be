"""The verdict's wording rules, and the files kept of a run."""
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from sst2kit import files, results
from sst2kit.verdict import verdict_lines

BALANCED = {split: {"positive_share": 0.5, "close_to_balanced": True}
            for split in ("test", "validation", "external_test")}
NO_LEAKS = {split: SimpleNamespace(leakage=0.0) for split in ("test", "validation", "external_test")}


def significance(interval, p, claimed, units=872, unit="sentences", largest=1):
    return {"delta_accuracy_ci95": interval, "p_value": p, "p_value_holm": min(1.0, 3 * p),
            "paired_test": "exact McNemar", "discordant": [3, 12], "independent_units": units,
            "largest_unit_items": largest, "resampled_unit": unit, "difference_claimed": claimed, "family_size": 3}


def comparison(interval, p, claimed, head_accuracy=0.8, at_floor=()):
    runs = {run: {split: {"accuracy": acc} for split in ("test", "validation")}
            for run, acc in (("head_only", head_accuracy), ("full_finetune", 0.9))}
    delta = {"accuracy": sum(interval) / 2}
    return {"seed": 42, "runs": runs, "deltas": {"validation": delta, "test": delta},
            "significance": {"validation": significance(interval, p, claimed),
                             "test": significance(interval, p, claimed, 700, "source sentences", 12)},
            "at_majority_floor": {"head_only": list(at_floor), "full_finetune": []}, "by_kind": {}}


def verdict(result, leaks=NO_LEAKS, summary=None):
    return verdict_lines(SimpleNamespace(per_seed=[result], eval_splits=leaks, balance=BALANCED, summary=summary))


def test_the_verdict_answers_first_and_names_each_population():
    lines = verdict(comparison([0.05, 0.11], 0.001, True),
                    {**NO_LEAKS, "test": SimpleNamespace(leakage=0.88)})
    assert lines[0] == "Answer: on GLUE validation, fine-tuning the whole encoder beats training only the head by " \
                       "8.0 accuracy points (95% CI +5.0 to +11.0)."
    assert lines[1] == "on GLUE validation (872 sentences): full fine-tune beats head-only by 8.0 points " \
                       "(95% CI +5.0 " \
                       "to +11.0; exact McNemar p = 0.001, Holm p = 0.003)."
    assert lines[2].startswith("on the re-split test set (700 source sentences): full fine-tune beats")
    assert "88% of its items are phrases seen in training" in lines[3]
    assert "Holm-adjusted over the seed's 3 paired tests" in lines[-2]
    assert "conditional on one training run per arm" in lines[-1]
    unclear = verdict(comparison([0.02, 0.19], 0.12, False))
    assert "not established" in unclear[0] and not any("beats" in line for line in unclear)


def test_no_line_claims_what_its_test_does_not_support():
    """The 43-sentence case: the interval excludes 0, four discordant pairs are not evidence (p = 0.125)."""
    lines = verdict(comparison([0.023, 0.186], 0.125, False))
    assert not any("beats" in line or "trails" in line for line in lines)


def test_the_verdict_speaks_of_the_external_sentences_between_validation_and_the_phrases():
    result = comparison([0.05, 0.11], 0.001, True)
    result["deltas"] = {"validation": result["deltas"]["validation"], "external_test": {"accuracy": 0.232},
                        "test": result["deltas"]["test"]}
    result["significance"] = {"validation": result["significance"]["validation"],
                              "external_test": significance([0.2, 0.26], 0.001, True, 1821),
                              "test": result["significance"]["test"]}
    lines = verdict(result)
    assert lines[0].startswith("Answer: on the external test set, fine-tuning the whole encoder beats training "
                               "only the head by 23.2")
    assert lines[1].startswith("on the external test set (1,821 sentences): full fine-tune beats head-only by 23.2 "
                               "points (95% CI +20.0 to +26.0")
    assert lines[2].startswith("on GLUE validation")
    assert lines[3].startswith("on the re-split test set")


def test_a_collapsed_run_is_said_at_the_top_for_its_splits_only():
    lines = verdict(comparison([0.3, 0.5], 0.001, True, 0.51, at_floor=("test",)))
    assert lines[1] == "Caution: the head-only model scores no better than always predicting one class on the " \
                       "re-split test set: its deltas compare against a constant guess."
    assert sum("Caution" in line for line in lines) == 1


def test_the_verdict_speaks_of_whole_sentences_and_phrases_apart():
    result = comparison([0.05, 0.11], 0.001, True)
    result["by_kind"] = {"test": {
        "whole_sentences": {"items": 120, "delta_accuracy": 0.2,
                            "significance": significance([0.1, 0.3], 0.001, True, 95, "source sentences")},
        "phrases": {"items": 6600, "delta_accuracy": 0.01,
                    "significance": significance([-0.01, 0.03], 0.3, False, 600, "source sentences")}}}
    text = "\n".join(verdict(result))
    assert "its 120 whole sentences: full fine-tune beats head-only by 20.0 points" in text
    assert "its 6,600 phrases: full fine-tune vs head-only: +1.0 points, not established" in text


@pytest.mark.parametrize("claimed", [True, False])
def test_the_heads_recipe_is_credited_only_when_its_own_test_says_so(claimed):
    """'Points of the gap come from how the head was trained' needs the probe-vs-head-only difference claimed."""
    result = comparison([0.05, 0.11], 0.001, True)
    probe_runs = {split: {"accuracy": 0.85} for split in ("validation", "test")}
    over_probe = {"delta": {s: {"accuracy": 0.05} for s in probe_runs},
                  "significance": {s: significance([0.02, 0.08], 0.01, True) for s in probe_runs}}
    versus_head = {"delta": {s: {"accuracy": 0.05} for s in probe_runs},
                   "significance": {s: significance([0.01, 0.09] if claimed else [-0.01, 0.1],
                                                    0.01 if claimed else 0.2, claimed) for s in probe_runs}}
    result["probe_reference"] = {"runs": probe_runs, **over_probe, "versus_head_only": versus_head}
    text = "\n".join(verdict(result))
    assert ("comes from how the notebook's head was trained" in text) == claimed
    assert ("comes from the head's training recipe is not established" in text) == (not claimed)


def test_multi_seed_verdict_speaks_for_every_seed():
    summary = {"deltas": {"validation": {"accuracy": {"mean": 0.1, "std": 0.02}, "per_seed_accuracy": [0.08, 0.1, 0.12],
                                         "seeds_claiming_a_difference": 3},
                          "test": {"accuracy": {"mean": 0.05, "std": 0.01}, "per_seed_accuracy": [0.04, 0.05, 0.06],
                                   "seeds_claiming_a_difference": 2}}}
    text = "\n".join(verdict(comparison([0.05, 0.11], 0.001, True), summary=summary))
    assert "seed 42: on GLUE validation" in text
    assert "over 3 seeds (training randomness on one split), on GLUE validation: +10.0 +- 2.0 points, a difference " \
           "claimed in 3 of 3." in text
    assert "claimed in 2 of 3" in text


@pytest.mark.parametrize("stop", [KeyboardInterrupt, OSError])
def test_a_write_stopped_midway_leaves_the_old_file_and_no_temporary_one(tmp_path, stop):
    target = tmp_path / "results.json"
    target.write_text('{"seed": 42}')

    def half_write(path):
        path.write_text('{"seed": 4')
        raise stop("stopped while writing")

    with pytest.raises(files.WriteError if stop is OSError else stop):  # an OSError is one line, not a traceback
        files.write_atomic(target, half_write)
    assert json.loads(target.read_text()) == {"seed": 42}
    assert list(tmp_path.iterdir()) == [target]


def splits_of(frame):
    return {name: SimpleNamespace(frame=frame) for name in ("validation", "test")}


def test_results_json_is_strict_json(tmp_path):
    frame = pd.DataFrame({"idx": [0], "sentence": ["a film"], "label": [1]})
    probs = {run: {split: np.array([0.9]) for split in ("test", "validation")}
             for run in ("head_only", "full_finetune")}
    predictions = results.predictions_frame(splits_of(frame), [(42, probs)])
    results.save_results(tmp_path, {"delta": float("nan"), "runs": [float("inf"), 0.5]}, predictions)
    text = (tmp_path / "results.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"delta": None, "runs": [None, 0.5]}


def test_csv_cells_never_run_as_formulas_and_the_guard_can_be_undone(tmp_path):
    """In predictions.csv a formula-like sentence gets a leading apostrophe, and so does one that really starts
    with an apostrophe (dropping one leading apostrophe gives every sentence back); the console shows the text."""
    from sst2kit.report import flip_lines
    sentences = ["=HYPERLINK(\"x\")", "-- dull", "@SUM(A1)", "'tis a fine film", "a fine film"]
    frame = pd.DataFrame({"idx": range(5), "label": [1, 0, 1, 1, 0], "sentence": sentences})
    probs = {"head_only": {s: np.array([0.1, 0.9, 0.1, 0.1, 0.9]) for s in ("test", "validation")},
             "full_finetune": {s: np.array([0.9, 0.1, 0.9, 0.9, 0.1]) for s in ("test", "validation")}}
    predictions = results.predictions_frame(splits_of(frame), [(42, probs)])
    results.save_results(tmp_path, {}, predictions)
    written = pd.read_csv(tmp_path / "predictions.csv", keep_default_na=False)["sentence"].tolist()[:5]
    assert written == ["'=HYPERLINK(\"x\")", "'-- dull", "'@SUM(A1)", "''tis a fine film", "a fine film"]
    assert [text[1:] if text.startswith("'") else text for text in written] == sentences
    out = "\n".join(flip_lines(results.flips(predictions), 42)) + "\n"
    assert ": -- dull\n" in out and "'-- dull" not in out
    assert "(validation 5, test 5)" in out  # the counts say their splits


def test_flips_are_the_changed_answers_surest_first():
    frame = pd.DataFrame({"idx": [0, 1, 2, 3, 4], "sentence": list("abcde"), "label": [1, 1, 0, 0, 1]})
    head = np.array([0.2, 0.4, 0.3, 0.9, 0.8])  # wrong, wrong, right, wrong, right
    full = np.array([0.7, 0.99, 0.6, 0.1, 0.9])  # right, right, wrong, right, right
    probs = {"head_only": {"test": head, "validation": head}, "full_finetune": {"test": full, "validation": full}}
    predictions = results.predictions_frame(splits_of(frame), [(42, probs)])
    flipped = results.flips(predictions[predictions["split"] == "test"])
    assert flipped["idx"].tolist() == [1, 3, 0, 2]  # by the full fine-tune's certainty
    assert flipped["change"].tolist() == ["fixed", "fixed", "fixed", "broken"]


@pytest.mark.parametrize("reader", ["pandas", "csv"])
def test_any_line_break_inside_a_sentence_stays_inside_its_cell(tmp_path, reader):
    """A bare carriage return, CR LF, LF, U+2028 and U+0085 in sentences: predictions.csv and flips.csv read back as
    the same rows and cells, in pandas and in Python's csv module (pandas alone quotes a field only for a comma,
    a quote or a newline: a lone \\r would split the row for most readers)."""
    import csv
    breaks = ["a\rb", "c\r\nd", "e\nf", "g\u2028h", "i\x85j", "plain"]
    frame = pd.DataFrame({"idx": range(6), "label": [1, 0, 1, 0, 1, 0], "sentence": breaks})
    probs = {"head_only": {s: np.full(6, 0.1) for s in ("test", "validation")},
             "full_finetune": {s: np.full(6, 0.9) for s in ("test", "validation")}}
    predictions = results.predictions_frame(splits_of(frame), [(42, probs)])
    results.save_results(tmp_path, {}, predictions)
    for name, rows in (("predictions.csv", 12), ("flips.csv", 12)):
        if reader == "pandas":
            back = pd.read_csv(tmp_path / name, keep_default_na=False)
            sentences, seeds = back["sentence"].tolist(), back["seed"].tolist()
        else:
            with open(tmp_path / name, newline="", encoding="utf-8") as handle:
                table = list(csv.DictReader(handle))
            sentences, seeds = [row["sentence"] for row in table], [int(float(row["seed"])) for row in table]
        assert len(sentences) == rows and set(seeds) == {42}
        assert sorted(sentences) == sorted(breaks * 2)
