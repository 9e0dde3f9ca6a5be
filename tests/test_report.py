"""The verdict's wording rules, and the files kept of a run."""
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from sst2kit import files, results
from sst2kit.verdict import verdict_lines

def experiment(per_seed_outcomes, *, probe=None, sizes=(("validation", 300), ("test", 200)), records=None):
    """Results as the verdict reads them, from real comparisons: per_seed_outcomes is one dict per seed of
    {run: accuracy on every split} (the items each run gets right drawn at random), probe an accuracy for the
    probe reference; records a run -> record override (a run's status)."""
    from conftest import answers, eval_split
    from sst2kit.metrics import compare_runs, summarize_seeds
    from sst2kit.names import PROBE
    from sst2kit.results import Results, class_balance
    rng = np.random.default_rng(11)
    labels = {name: rng.integers(2, size=n) for name, n in sizes}
    is_phrase = np.arange(dict(sizes)["test"]) % 3 == 0
    splits = {name: eval_split(name, y, parts={"whole_sentences": ~is_phrase, "phrases": is_phrase}
                               if name == "test" else None) for name, y in labels.items()}
    per_seed, per_seed_probs = [], []
    for seed, accuracy in enumerate(per_seed_outcomes, 42):
        probs = {run: {name: answers(y, rng.random(len(y)) < share) if not isinstance(share, str) else
                       np.full(len(y), 0.9 if share == "positive" else 0.1) for name, y in labels.items()}
                 for run, share in accuracy.items()}
        reference = {PROBE: {name: answers(y, rng.random(len(y)) < probe) for name, y in labels.items()}} \
            if probe else {}
        status = records or {run: {"status": "ok"} for run in ("head_only", "full_finetune")}
        per_seed.append(compare_runs(seed, status, probs={**probs, **reference}, eval_splits=splits,
                                     resamples=1000))
        per_seed_probs.append((seed, probs))
    results = SimpleNamespace(per_seed=per_seed, per_seed_probs=per_seed_probs, eval_splits=splits,
                              balance=class_balance(np.array([0, 1]), splits),
                              summary=summarize_seeds(per_seed, per_seed_probs, splits) if len(per_seed) > 1 else None)
    results.headline = Results.headline.fget(results)
    return results


def verdict(*args, **kwargs):
    return verdict_lines(experiment(*args, **kwargs))


def test_the_answer_comes_first_names_its_seed_and_population_and_each_finding_its_seed():
    lines = verdict([{"head_only": 0.70, "full_finetune": 0.90}])
    assert lines[0].startswith("Answer: seed 42 (one seed), on GLUE validation (300 sentences), fine-tuning the whole "
                               "encoder beats training only the head by")
    findings = [line for line in lines if " on " in line and "points" in line and not line.startswith("Answer")]
    assert findings and all(line.startswith("seed 42: ") for line in findings)
    assert any("question's own test" in line for line in lines)


def test_with_several_seeds_the_answer_is_the_experiments_and_claims_are_counted_by_direction():
    """The answer is the mean over seeds with its across-seed interval, not seed 42's; a seed claimed ahead and a
    seed claimed behind are not 'a difference claimed in 2 of 3'."""
    results = experiment([{"head_only": 0.60, "full_finetune": 0.80}, {"head_only": 0.80, "full_finetune": 0.60},
                          {"head_only": 0.70, "full_finetune": 0.71}])
    lines = verdict_lines(results)
    headline = results.headline
    assert lines[0].startswith("Answer: over 3 seeds, on GLUE validation")
    assert headline["seeds"] == 3 and headline["delta_accuracy"] == pytest.approx(
        np.mean([s["deltas"]["validation"]["accuracy"] for s in results.per_seed]))
    low, high = headline["delta_accuracy_ci95"]
    assert low < headline["delta_accuracy"] < high and "not established" in lines[0]
    counts = next(line for line in lines if "ahead in" in line)
    assert "ahead in 1, behind in 1, not established in 1 of 3" in counts and "points (SD)" in counts
    assert not any("claimed in 2 of 3" in line for line in lines)


def test_the_probe_decomposition_is_said_only_when_it_holds():
    """Probe 80%, full fine-tune 74%, head-only 70%: the probe beats both, so 'that much of the gap comes from how
    the head was trained' would be false; the line says the probe matches or beats the full fine-tune."""
    lines = verdict([{"head_only": 0.70, "full_finetune": 0.74}], probe=0.80, sizes=(("validation", 800),
                                                                                      ("test", 200)))
    assert not any("comes from how the notebook's head was trained" in line for line in lines)
    assert any("the probe matches or beats the full fine-tune here" in line for line in lines)
    holds = verdict([{"head_only": 0.60, "full_finetune": 0.95}], probe=0.75, sizes=(("validation", 800),
                                                                                      ("test", 200)))
    assert any("of the" in line and "gap comes from how the notebook's head was trained" in line for line in holds)


def test_not_established_beside_an_interval_that_excludes_zero_says_why():
    """The README's '+36.0, not established (95% CI +12.0 to +60.0 ...)' read as a contradiction."""
    from sst2kit.verdict import finding
    corrected = {"delta_accuracy_ci95": [0.12, 0.60], "p_value": 0.011, "p_value_holm": 0.057, "family_size": 4,
                 "paired_test": "exact McNemar", "difference_claimed": False, "tested": True}
    line = finding(0.36, corrected, model="full fine-tune", baseline="head-only")
    assert "not established" in line and "excludes 0 only before correcting for this family's 4 tests" in line
    few = {**corrected, "p_value": 0.125, "p_value_holm": 0.125, "family_size": 1}
    assert "the paired test does not reach 0.05" in finding(0.08, few, model="full fine-tune", baseline="head-only")
    gated = {**corrected, "tested": False}
    assert "not tested, since the primary comparison is not established" in finding(
        0.36, gated, model="full fine-tune", baseline="head-only")


def test_the_answer_says_when_head_only_answers_one_class_to_everything():
    """Head-only answering 'positive' to every item beats nothing: the Answer line itself says so, and the
    imbalance note points at macro-F1 and balanced accuracy, not at F1."""
    lines = verdict([{"head_only": "positive", "full_finetune": 0.9}])
    assert "against a head-only model that answers 'positive' to every item" in lines[0]
    assert not any("read its F1" in line for line in lines)


def test_a_broken_run_yields_no_finding_and_names_why():
    records = {"head_only": {"status": "ok"},
               "full_finetune": {"status": "diverged", "status_why": "its training loss ended at 67 after starting "
                                                                     "at 0.68 (peak 878)"}}
    lines = verdict([{"head_only": 0.9, "full_finetune": "positive"}], records=records)
    assert lines[0].startswith("Answer: none: the full fine-tune run of seed 42 diverged: its training loss ended "
                               "at 67")
    assert not any(" beats " in line or " trails " in line for line in lines)


def test_an_imbalanced_split_points_at_measures_a_constant_answer_cannot_inflate():
    results = experiment([{"head_only": 0.7, "full_finetune": 0.9}])
    split = results.eval_splits["test"]
    object.__setattr__(split, "frame", split.frame.assign(label=np.r_[np.ones(150, int), np.zeros(50, int)]))
    line = next(line for line in verdict_lines(results) if "imbalanced" in line)
    assert "macro-F1 and balanced accuracy" in line


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


def test_leakage_is_blamed_on_the_re_split_only_where_the_re_split_can_fix_it():
    import dataclasses
    results = experiment([{"head_only": 0.70, "full_finetune": 0.90}],
                         sizes=(("validation", 300), ("external_test", 100), ("test", 200)))
    results.eval_splits = {name: dataclasses.replace(split, leakage=0.0 if name == "validation" else 0.3)
                           for name, split in results.eval_splits.items()}
    leak = [line for line in verdict_lines(results) if "word spans of training items" in line]
    assert len(leak) == 2
    external, test = leak  # in the order of the findings: the external set leads when it is given
    assert "--split grouped" not in external and "remove those items from the file" in external
    assert "--split grouped" in test
