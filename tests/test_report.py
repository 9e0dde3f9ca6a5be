import json

import pytest

import report


def comparison(delta_ci, head_val_acc):
    runs = {"head_only": {"validation": {"accuracy": head_val_acc}}, "full_finetune": {"validation": {"accuracy": 0.9}}}
    significance = {"mcnemar_p": 0.01, "delta_accuracy_ci95": delta_ci, "discordant": [3, 12]}
    delta = {"accuracy": sum(delta_ci) / 2}
    return {"runs": runs, "delta": delta, "delta_validation": delta,
            "significance": {"test": significance, "validation": significance}}


def test_conclusion_claims_only_what_the_interval_supports():
    floors = {"test": 0.5, "validation": 0.5}
    clear = report.conclusion(comparison([0.05, 0.11], 0.8), {"test": 0.88, "validation": 0.0}, floors)
    assert "On GLUE validation, full fine-tuning beats head-only by 8.0 points" in clear
    assert "88% of whose items are phrases seen in training" in clear and "--split grouped" in clear
    unclear = report.conclusion(comparison([-0.01, 0.03], 0.8), {"test": 0.0, "validation": 0.0}, floors)
    assert "not distinguishable from zero" in unclear and "beats" not in unclear and "grouped" not in unclear


def test_conclusion_flags_a_run_stuck_at_the_majority_class():
    text = report.conclusion(comparison([0.3, 0.5], 0.51), {"test": 0.0, "validation": 0.0},
                             {"test": 0.57, "validation": 0.51})
    assert "The head-only model does no better on GLUE validation than always predicting the majority class" in text


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
    import pandas as pd
    report.save_results(tmp_path, {"delta": float("nan"), "runs": [float("inf"), 0.5]}, pd.DataFrame({"a": [1]}))
    text = (tmp_path / "results.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"delta": None, "runs": [None, 0.5]}


def test_predictions_csv_cells_never_run_as_spreadsheet_formulas():
    import numpy as np
    import pandas as pd
    frames = {"test": pd.DataFrame({"idx": [0, 1, 2, 3], "label": [1, 0, 1, 0],
                                    "sentence": ["=HYPERLINK(\"x\")", "-- dull", "@SUM(A1)", "a fine film"]})}
    probs = {run: {"test": np.array([0.9, 0.1, 0.8, 0.4])} for run in ("head_only", "full_finetune")}
    sentences = report.predictions_frame(frames, [(42, probs)])["sentence"].tolist()
    assert sentences == ["'=HYPERLINK(\"x\")", "'-- dull", "'@SUM(A1)", "a fine film"]
