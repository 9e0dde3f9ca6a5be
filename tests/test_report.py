"""The verdict's wording rules, and the files kept of a run."""

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import t as student_t

from conftest import paired_test
from sst2kit import files, results
from sst2kit.verdict import far_seeds, few_seeds, verdict_lines


def experiment(
    per_seed_outcomes,
    *,
    probe=None,
    sizes=(("validation", 300), ("test", 200)),
    records=None,
    rng_seed=11,
):
    """Results as the verdict reads them, from real comparisons: per_seed_outcomes is one dict per
    seed of {run: accuracy on every split} (the items each run gets right drawn at random), probe an
    accuracy for the probe reference; records: run -> (status, why, advice) where a run broke."""
    from conftest import answers, eval_split, trained
    from sst2kit.names import PROBE
    from sst2kit.results import class_balance
    from sst2kit.seeds import Findings

    rng = np.random.default_rng(rng_seed)
    labels = {name: rng.integers(2, size=n) for name, n in sizes}
    is_phrase = np.arange(dict(sizes)["test"]) % 3 == 0
    splits = {
        name: eval_split(
            name,
            y,
            parts={"whole_sentences": ~is_phrase, "phrases": is_phrase} if name == "test" else None,
        )
        for name, y in labels.items()
    }
    findings = Findings(splits, resamples=1000, first_seed=42)
    for seed, accuracy in enumerate(per_seed_outcomes, 42):
        probs = {
            run: {
                name: answers(y, rng.random(len(y)) < share)
                if not isinstance(share, str)
                else np.full(len(y), 0.9 if share == "positive" else 0.1)
                for name, y in labels.items()
            }
            for run, share in accuracy.items()
        }
        reference = (
            {PROBE: {name: answers(y, rng.random(len(y)) < probe) for name, y in labels.items()}}
            if probe
            else {}
        )
        findings.add(seed, trained(records), {**probs, **reference})
    return SimpleNamespace(
        findings=findings,
        eval_splits=splits,
        balance=class_balance(np.array([0, 1]), splits),
        curve=None,
    )


def verdict(*args, **kwargs):
    return verdict_lines(experiment(*args, **kwargs))


def test_the_answer_comes_first_names_its_seed_and_population_and_each_finding_its_seed():
    lines = verdict([{"head_only": 0.70, "full_finetune": 0.90}])
    assert lines[0].startswith(
        "Answer: seed 42 (one seed), on GLUE validation (300 sentences), fine-tuning the whole "
        "encoder beats training only the head by"
    )
    findings = [
        line
        for line in lines
        if " on " in line and "points" in line and not line.startswith("Answer")
    ]
    assert findings and all(line.startswith("seed 42: ") for line in findings)
    assert any("question's own test" in line for line in lines)


def test_with_several_seeds_the_answer_is_the_experiments_and_claims_are_counted_by_direction():
    """The answer is the mean over seeds with its across-seed interval, not seed 42's; a seed
    claimed ahead and a seed claimed behind are not 'a difference claimed in 2 of 3'."""
    results = experiment(
        [
            {"head_only": 0.60, "full_finetune": 0.80},
            {"head_only": 0.80, "full_finetune": 0.60},
            {"head_only": 0.70, "full_finetune": 0.71},
        ]
    )
    lines = verdict_lines(results)
    headline = results.findings.headline
    assert lines[0].startswith("Answer: over 3 seeds, on GLUE validation")
    assert headline.seeds == 3 and headline.delta_accuracy == pytest.approx(
        np.mean([s.deltas["validation"].accuracy for s in results.findings.per_seed])
    )
    low, high = headline.delta_accuracy_ci95
    assert low < headline.delta_accuracy < high and "not established" in lines[0]
    counts = next(line for line in lines if "ahead in" in line)
    assert (
        "ahead in 1, behind in 1, withheld in 0, not established in 1 of 3" in counts
        and "points (SD)" in counts
    )
    assert not any("claimed in 2 of 3" in line for line in lines)


def test_the_probe_decomposition_is_said_only_when_its_own_claims_support_it():
    """Head-only 85% > probe 82.8% > full 80% printed 'the gap over head-only is the head's
    training'; and a 4-item change (probe - full -0.25 vs +0.25 points, interval +-2.2) switched the
    sentence. Now it follows the claims, never the signs of unclaimed differences."""
    from sst2kit.verdict import decomposition

    lines = verdict(
        [{"head_only": 0.85, "full_finetune": 0.80}],
        probe=0.828,
        sizes=(("validation", 800), ("test", 200)),
    )
    assert not any("head's training, not the frozen encoder" in line for line in lines)
    assert any(
        "how much of the gap comes from the head's training recipe is not established" in line
        for line in lines
    )

    def entry(claimed):
        return paired_test(difference_claimed=claimed)

    said = {
        decomposition(entry(True), entry(False), entry(True), gaps=(0.10, gap, 0.10 - gap))
        for gap in (-0.0025, 0.0025)
    }
    assert (
        len(said) == 1
        and "what fine-tuning the encoder adds beyond a well-fit probe is not established"
        in said.pop()
    )
    holds = verdict(
        [{"head_only": 0.60, "full_finetune": 0.95}],
        probe=0.75,
        sizes=(("validation", 800), ("test", 200)),
    )
    assert any(
        "gap," in line and "come from how the notebook's head was trained and" in line
        for line in holds
    )


def test_every_seeds_floor_and_constant_answer_is_named():
    """3 seeds where seed 43's head-only answers 'positive' to everything: the Answer and the
    Caution name seed 43, not seed 42 (whose head-only is fine)."""
    lines = verdict(
        [
            {"head_only": 0.7, "full_finetune": 0.9},
            {"head_only": "positive", "full_finetune": 0.9},
            {"head_only": 0.72, "full_finetune": 0.9},
        ]
    )
    assert "against a head-only model that answers 'positive' to every item (seed 43)" in lines[0]
    cautions = [line for line in lines if line.startswith("Caution")]
    assert cautions and all("(seed 43)" in line for line in cautions)


def test_each_floored_seed_is_said_with_its_own_constant_answer():
    """Seeds 42 and 43 at the floor with opposite constant answers: each is named with its own, not
    both with the first one's."""
    lines = verdict(
        [
            {"head_only": "positive", "full_finetune": 0.9},
            {"head_only": "negative", "full_finetune": 0.9},
            {"head_only": 0.72, "full_finetune": 0.9},
        ]
    )
    assert "answers 'positive' to every item (seed 42)" in lines[0]
    assert "answers 'negative' to every item (seed 43)" in lines[0]


def test_what_more_seeds_buy_at_two_seeds_matches_a_simulation():
    """The 2-seed note's ratios are the expected seeds' margin t(N-1) x E[s] / sqrt(N) at 2 seeds
    over 3 and 5, checked by drawing seeds' deltas (the old note said threefold and fivefold)."""
    rng = np.random.default_rng(0)

    def margin(n):
        spread = rng.standard_normal((100_000, n)).std(1, ddof=1).mean()
        return student_t.isf(0.025, n - 1) * spread / np.sqrt(n)

    note = few_seeds(SimpleNamespace(seeds=2, variance_between_seeds=1.0, variance_over_units=0.1))
    three, five = margin(2) / margin(3), margin(2) / margin(5)
    assert f"--num_seeds 3 narrows its expected margin about {three:.1f}x" in note
    assert f"5 about {five:.1f}x" in note


def test_an_answer_not_established_says_why_and_a_withheld_one_says_withheld():
    """'+9.3 points, not established (95% CI +2.3 to +18.6)' with no reason was report.md's first
    line; a withheld result printed 'not established'; seeds_not_established counted withheld
    seeds."""
    from sst2kit.verdict import answer_line

    results = experiment(
        [{"head_only": 0.7, "full_finetune": 0.8}], sizes=(("validation", 43), ("test", 60))
    )
    test = results.findings.per_seed[0].tests["validation"]
    test.delta_accuracy_ci95, test.p_value, test.difference_claimed = [0.023, 0.186], 0.125, False
    assert "the paired test does not reach 0.05" in answer_line(results)[0]
    records = {
        "head_only": (
            "collapsed",
            "it answers 'positive' to every one of the 300",
            "give it more or larger steps: --epochs_head_only 8 (4x)",
        )
    }
    broken = experiment([{"head_only": 0.5, "full_finetune": 0.9}] * 2, records=records)
    lines = verdict_lines(broken)
    assert lines[0].startswith("Answer: none: the head-only run of seed 42 collapsed")
    assert any(
        line.startswith(
            "Fix: the head-only run of seed 42: give it more or larger steps: --epochs_head_only 8"
        )
        for line in lines
    )
    findings = [
        line for line in lines if "points" in line and "head-only" in line and "Answer" not in line
    ]
    assert findings and not any(
        "not established" in line for line in findings if "withheld" in line
    )
    assert any("withheld: the head-only run of seed 42 collapsed" in line for line in findings)
    assert (
        broken.findings.headline.seeds_withheld == 2
        and broken.findings.headline.seeds_not_established == 0
    )


def test_a_gain_in_the_majority_class_alone_is_said_beside_the_accuracy():
    """+5.0 accuracy points on an 80%-positive split where balanced accuracy falls 10 points."""
    from sst2kit.verdict import finding

    split = SimpleNamespace(close_to_balanced=False, positive_share=0.8)
    entry = paired_test(delta_accuracy_ci95=[0.02, 0.08], p_value=0.001, difference_claimed=True)
    line = finding(
        0.05, entry, model="full fine-tune", baseline="head-only", balanced=-0.10, split=split
    )
    assert (
        "beats head-only by 5.0 points" in line
        and "but balanced accuracy falls 10.0 points" in line
    )


def test_balanced_accuracy_and_its_delta_are_in_the_tables():
    from sst2kit.report import delta_lines, metrics_lines

    results = experiment([{"head_only": 0.7, "full_finetune": 0.9}])
    results.predictions = results_predictions(results)
    assert all("balanced" in line for line in metrics_lines(results)[1:])
    assert sum("balanced accuracy" in line for line in delta_lines(results)) >= 2


def results_predictions(results):
    from sst2kit.results import predictions_frame

    return predictions_frame(results.eval_splits, results.findings.per_seed_probs)


def test_a_test_that_was_never_run_prints_no_p_value_for_it():
    """'Holm p <= 0.0001' for a secondary test that was never tested."""
    from sst2kit.report import interval_line
    from sst2kit.verdict import evidence, finding

    entry = paired_test(
        delta_accuracy_ci95=[0.1, 0.3],
        p_value=1e-4,
        p_value_holm=3e-4,
        family_size=3,
        p_value_at_floor=True,
        permutation_draws=9999,
        paired_test="sign-flip permutation",
        tested=False,
        independent_units=400,
        resampled_unit="units",
    )
    assert "Holm" not in evidence(entry)
    assert "not tested, since the question's own comparison" in finding(
        0.2, entry, model="full fine-tune", baseline="head-only"
    )
    assert "Holm" not in interval_line("test", entry, "full - head-only")


def test_one_stray_answer_is_not_called_100_percent():
    from sst2kit.verdict import constant_answer

    assert (
        constant_answer(SimpleNamespace(predicted_positive_share=871 / 872), 872)
        == "answers 'positive' to 871 of 872 items"
    )
    assert (
        constant_answer(SimpleNamespace(predicted_positive_share=1.0), 872)
        == "answers 'positive' to every item"
    )
    assert constant_answer(SimpleNamespace(predicted_positive_share=860 / 872), 872) is None


def test_the_glossary_defines_not_established_by_what_it_is():
    from sst2kit.report import GLOSSARY

    entry = next(line for line in GLOSSARY if "**not established**" in line)
    assert "includes 0" in entry and "excludes 0 and" not in entry
    assert any("**withheld**" in line for line in GLOSSARY)


def test_units_are_called_units_with_their_counts():
    """'4,363 source sentences' where 683 are whole sentences: the re-split test set's units, with
    what they hold."""
    from conftest import eval_split

    is_phrase = np.array([False, True, True, False, True, True])
    split = eval_split(
        "test",
        np.ones(6, int),
        units=[0, 0, 1, 2, 2, 3],
        unit_name="units",
        parts={"whole_sentences": ~is_phrase, "phrases": is_phrase},
    )
    assert split.units_said == "4 units: 2 holding a whole sentence, 2 only phrases"


def test_a_split_too_small_to_ever_be_claimed_says_so():
    """With 5 units the smallest possible p is 2^-4 = 0.0625: no result there can be claimed, and
    the line says so rather than only 'not established'."""
    from sst2kit import significance
    from sst2kit.verdict import finding

    labels = np.ones(10, int)
    entry = significance.paired_significance(
        labels, np.zeros(10, int), labels, units=np.arange(10) // 2, resamples=1000, seed=0
    )
    significance.decide_family([entry], family="primary")
    assert not entry.can_be_claimed and not entry.difference_claimed
    line = finding(1.0, entry, model="full fine-tune", baseline="head-only")
    assert "with 5 independent units no outcome could be claimed here (it takes at least 6)" in line


def test_two_seeds_give_every_split_an_across_seed_line_and_a_seed_averaged_length_figure():
    results = experiment(
        [{"head_only": 0.7, "full_finetune": 0.9}, {"head_only": 0.72, "full_finetune": 0.88}]
    )
    lines = verdict_lines(results)
    assert any(
        line.startswith("over 2 seeds, on GLUE validation (300 sentences): ") for line in lines
    )
    assert any(line.startswith("over 2 seeds, on the re-split test set (") for line in lines)
    seed_averaged = results.findings.summary.accuracy_by_length["validation"][0]["full_finetune"]
    per_seed = [
        s.accuracy_by_length["validation"][0]["full_finetune"] for s in results.findings.per_seed
    ]
    assert seed_averaged == pytest.approx(np.mean(per_seed)) and per_seed[0] != per_seed[1]


def test_with_several_seeds_only_the_across_seed_lines_claim():
    lines = verdict([{"head_only": 0.6, "full_finetune": 0.9}] * 3)
    per_seed = [line for line in lines if line.startswith("seed ")]
    assert per_seed and not any(" beats " in line or " trails " in line for line in per_seed)
    assert any(line.startswith("over 3 seeds") and " beats " in line for line in lines)


def test_not_established_beside_an_interval_that_excludes_zero_says_why():
    """The README's '+36.0, not established (95% CI +12.0 to +60.0 ...)' read as a contradiction."""
    from sst2kit.verdict import finding

    corrected = paired_test(
        delta_accuracy_ci95=[0.12, 0.60], p_value=0.011, p_value_holm=0.057, family_size=4
    )
    line = finding(0.36, corrected, model="full fine-tune", baseline="head-only")
    assert (
        "not established" in line
        and "excludes 0 only before correcting for this family's 4 tests" in line
    )
    few = dataclasses.replace(corrected, p_value=0.125, p_value_holm=0.125, family_size=1)
    assert "the paired test does not reach 0.05" in finding(
        0.08, few, model="full fine-tune", baseline="head-only"
    )
    gated = dataclasses.replace(corrected, tested=False)
    assert "not tested, since the question's own comparison is not established" in finding(
        0.36, gated, model="full fine-tune", baseline="head-only"
    )


def test_the_answer_says_when_head_only_answers_one_class_to_everything():
    """Head-only answering 'positive' to every item beats nothing: the Answer line itself says so,
    and the imbalance note points at macro-F1 and balanced accuracy, not at F1."""
    lines = verdict([{"head_only": "positive", "full_finetune": 0.9}])
    assert "against a head-only model that answers 'positive' to every item" in lines[0]
    assert not any("read its F1" in line for line in lines)


def test_a_broken_run_yields_no_finding_and_names_why():
    records = {
        "full_finetune": (
            "diverged",
            "its training loss ended at 67 after starting at 0.68 (peak 878)",
        )
    }
    lines = verdict([{"head_only": 0.9, "full_finetune": "positive"}], records=records)
    assert lines[0].startswith(
        "Answer: none: the full fine-tune run of seed 42 diverged: its training loss ended at 67"
    )
    assert not any(" beats " in line or " trails " in line for line in lines)


def test_an_imbalanced_split_points_at_measures_a_constant_answer_cannot_inflate():
    results = experiment([{"head_only": 0.7, "full_finetune": 0.9}])
    split = results.eval_splits["test"]
    object.__setattr__(
        split, "frame", split.frame.assign(label=np.r_[np.ones(150, int), np.zeros(50, int)])
    )
    line = next(line for line in verdict_lines(results) if "imbalanced" in line)
    assert "macro-F1 and balanced accuracy" in line


@pytest.mark.parametrize("stop", [KeyboardInterrupt, OSError])
def test_a_write_stopped_midway_leaves_the_old_file_and_no_temporary_one(tmp_path, stop):
    target = tmp_path / "results.json"
    target.write_text('{"seed": 42}')

    def half_write(path):
        path.write_text('{"seed": 4')
        raise stop("stopped while writing")

    # an OSError is one line, not a traceback
    with pytest.raises(files.WriteError if stop is OSError else stop):
        files.write_atomic(target, half_write)
    assert json.loads(target.read_text()) == {"seed": 42}
    assert list(tmp_path.iterdir()) == [target]


def splits_of(frame):
    return {name: SimpleNamespace(frame=frame) for name in ("validation", "test")}


def test_results_json_is_strict_json(tmp_path):
    frame = pd.DataFrame({"idx": [0], "sentence": ["a film"], "label": [1]})
    probs = {
        run: {split: np.array([0.9]) for split in ("test", "validation")}
        for run in ("head_only", "full_finetune")
    }
    predictions = results.predictions_frame(splits_of(frame), [(42, probs)])
    results.save_results(
        tmp_path, {"delta": float("nan"), "runs": [float("inf"), 0.5]}, predictions
    )
    text = (tmp_path / "results.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"delta": None, "runs": [None, 0.5]}


def test_csv_cells_never_run_as_formulas_and_the_guard_can_be_undone(tmp_path):
    """In predictions.csv a formula-like sentence gets a leading apostrophe, and so does one that
    really starts with an apostrophe (dropping one leading apostrophe gives every sentence back);
    the console shows the text."""
    from sst2kit.report import flip_lines

    sentences = ['=HYPERLINK("x")', "-- dull", "@SUM(A1)", "'tis a fine film", "a fine film"]
    frame = pd.DataFrame({"idx": range(5), "label": [1, 0, 1, 1, 0], "sentence": sentences})
    probs = {
        "head_only": {s: np.array([0.1, 0.9, 0.1, 0.1, 0.9]) for s in ("test", "validation")},
        "full_finetune": {s: np.array([0.9, 0.1, 0.9, 0.9, 0.1]) for s in ("test", "validation")},
    }
    predictions = results.predictions_frame(splits_of(frame), [(42, probs)])
    results.save_results(tmp_path, {}, predictions)
    written = pd.read_csv(tmp_path / "predictions.csv", keep_default_na=False)["sentence"].tolist()[
        :5
    ]
    assert written == [
        '\'=HYPERLINK("x")',
        "'-- dull",
        "'@SUM(A1)",
        "''tis a fine film",
        "a fine film",
    ]
    assert [text[1:] if text.startswith("'") else text for text in written] == sentences
    out = "\n".join(flip_lines(results.flips(predictions), 42)) + "\n"
    assert ": -- dull\n" in out and "'-- dull" not in out
    assert "(validation 5, test 5)" in out  # the counts say their splits


def test_flips_are_the_changed_answers_surest_first():
    frame = pd.DataFrame(
        {"idx": [0, 1, 2, 3, 4], "sentence": list("abcde"), "label": [1, 1, 0, 0, 1]}
    )
    head = np.array([0.2, 0.4, 0.3, 0.9, 0.8])  # wrong, wrong, right, wrong, right
    full = np.array([0.7, 0.99, 0.6, 0.1, 0.9])  # right, right, wrong, right, right
    probs = {
        "head_only": {"test": head, "validation": head},
        "full_finetune": {"test": full, "validation": full},
    }
    predictions = results.predictions_frame(splits_of(frame), [(42, probs)])
    flipped = results.flips(predictions[predictions["split"] == "test"])
    assert flipped["idx"].tolist() == [1, 3, 0, 2]  # by the full fine-tune's certainty
    assert flipped["change"].tolist() == ["fixed", "fixed", "fixed", "broken"]


@pytest.mark.parametrize("reader", ["pandas", "csv"])
def test_any_line_break_inside_a_sentence_stays_inside_its_cell(tmp_path, reader):
    """A bare carriage return, CR LF, LF, U+2028 and U+0085 in sentences: predictions.csv and
    flips.csv read back as the same rows and cells, in pandas and in Python's csv module (pandas
    alone quotes a field only for a comma, a quote or a newline: a lone \\r would split the row for
    most readers)."""
    import csv

    breaks = ["a\rb", "c\r\nd", "e\nf", "g\u2028h", "i\x85j", "plain"]
    frame = pd.DataFrame({"idx": range(6), "label": [1, 0, 1, 0, 1, 0], "sentence": breaks})
    probs = {
        "head_only": {s: np.full(6, 0.1) for s in ("test", "validation")},
        "full_finetune": {s: np.full(6, 0.9) for s in ("test", "validation")},
    }
    predictions = results.predictions_frame(splits_of(frame), [(42, probs)])
    results.save_results(tmp_path, {}, predictions)
    for name, rows in (("predictions.csv", 12), ("flips.csv", 12)):
        if reader == "pandas":
            back = pd.read_csv(tmp_path / name, keep_default_na=False)
            sentences, seeds = back["sentence"].tolist(), back["seed"].tolist()
        else:
            with open(tmp_path / name, newline="", encoding="utf-8") as handle:
                table = list(csv.DictReader(handle))
            sentences, seeds = (
                [row["sentence"] for row in table],
                [int(float(row["seed"])) for row in table],
            )
        assert len(sentences) == rows and set(seeds) == {42}
        assert sorted(sentences) == sorted(breaks * 2)


def test_leakage_is_blamed_on_the_re_split_only_where_the_re_split_can_fix_it():
    import dataclasses

    results = experiment(
        [{"head_only": 0.70, "full_finetune": 0.90}],
        sizes=(("validation", 300), ("external_test", 100), ("test", 200)),
    )
    results.eval_splits = {
        name: dataclasses.replace(split, leakage=0.0 if name == "validation" else 0.3)
        for name, split in results.eval_splits.items()
    }
    leak = [line for line in verdict_lines(results) if "word spans of training items" in line]
    assert len(leak) == 2
    external, test = leak  # in the order of the findings: the external set leads when it is given
    assert "--split grouped" not in external and "remove those items from the file" in external
    assert "--split grouped" in test


def test_a_seed_far_from_the_others_is_named_in_the_answer():
    """Four seeds with the full fine-tune 30 points ahead and one where it is level: the Answer
    names that seed, says what the interval assumes, and asks for more seeds."""
    lines = verdict(
        [{"head_only": 0.6, "full_finetune": 0.9}] * 4 + [{"head_only": 0.6, "full_finetune": 0.6}]
    )
    assert (
        "the delta of seed 46's (" in lines[0] and "lies far from the others' (median +" in lines[0]
    )
    assert "the interval assumes the seeds share one spread" in lines[0]
    assert "--num_seeds 10" in lines[0]
    ordinary = verdict([{"head_only": 0.6, "full_finetune": 0.9}] * 5)
    assert "far from the others" not in ordinary[0]


def test_the_far_seed_rule_names_a_bad_seed_and_rarely_a_good_one():
    """Simulated seeds' deltas (SD 1 point, each seed's own standard error 1.3 points, GLUE
    validation's): one seed in five 10 points worse is named in at least 90% of draws; five ordinary
    seeds are named in at most 1%. With only the deltas' robust SD as the scale (no floor at the
    seeds' own standard error), 3-5 ordinary seeds are named about 6% of the time."""
    rng = np.random.default_rng(3)
    named = ordinary = 0
    for _ in range(2000):
        deltas = rng.normal(0.10, 0.01, 5)
        ordinary += bool(far_seeds(deltas, [0.013] * 5))
        deltas[0] -= 0.10
        named += 0 in far_seeds(deltas, [0.013] * 5)
    assert named / 2000 >= 0.90 and ordinary / 2000 <= 0.01


def test_a_seeds_comparison_reads_back_from_results_json_as_it_was_written():
    """--resume rebuilds each recorded seed from results.json through the one generic mapping: what
    it reads equals what was written, field for field, for every kind of record a seed holds."""
    from sst2kit.comparison import SeedComparison
    from sst2kit.records import from_json, to_json

    written = experiment(
        [{"head_only": 0.7, "full_finetune": 0.85}, {"head_only": 0.72, "full_finetune": 0.8}],
        probe=0.8,
    ).findings.per_seed
    stored = json.loads(json.dumps(files.strict_json(to_json(written)), allow_nan=False))
    assert from_json(list[SeedComparison], stored) == written
    assert written[0].probe is not None and written[0].by_kind["test"]["phrases"] is not None


def test_two_seeds_are_warned_of_before_training_with_what_three_would_give():
    """At 2 seeds the across-seed interval takes t with one degree of freedom (12.7): usually wider
    than one seed's. Said in the setup lines, printed before anything trains."""
    from sst2kit.report import two_seeds_warning

    (warning,) = two_seeds_warning(2)
    assert "one degree of freedom (t = 12.7)" in warning
    assert "--num_seeds 3 narrows the seeds' expected margin about 3.3x, 5 about 6.1x" in warning
    assert two_seeds_warning(1) == two_seeds_warning(3) == []
