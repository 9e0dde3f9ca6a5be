"""The verdict: the experiment's answer first, then one finding per line, each naming its population
(and its seed) and its number with the evidence for it, claiming no more than its family's rule, the
majority-class floor, the runs' health and the seeds support. With several seeds only the
across-seed lines claim; each seed's own lines describe. docs/statistics.md describes the rule and
the families."""

import math

import numpy as np
from scipy.stats import t as student_t

from sst2kit.console import listed
from sst2kit.names import FULL_FINETUNE, HEAD_ONLY, LABEL_NAMES, PROBE, RUN_NAMES, SPLIT_TITLES
from sst2kit.significance import ALPHA, p_text, units_needed

FULL, HEAD = RUN_NAMES[FULL_FINETUNE], RUN_NAMES[HEAD_ONLY]


def points(x):
    return f"{100 * x:+.1f}"


def evidence(test):
    lo, hi = test.delta_accuracy_ci95
    said = f"95% CI {points(lo)} to {points(hi)}; {test.paired_test} {p_text(test)}"
    if test.tested and test.family_size > 1:
        return said + f", {p_text(test, holm=True)}"
    return said


def why_not_established(test):
    """Beside 'not established': which part of the rule held it back, when anything but the interval
    did."""
    lo, hi = test.delta_accuracy_ci95
    if not test.tested:
        return "; not tested, since the question's own comparison is not established"
    if not test.can_be_claimed:
        return (
            f"; with {test.independent_units:,} independent units no outcome could be "
            f"claimed here (it takes at least {units_needed(test.family_size)})"
        )
    if not (lo > 0 or hi < 0):
        return ""
    if test.p_value < ALPHA:
        return (
            "; the interval excludes 0 only before correcting for this family's "
            f"{test.family_size} tests"
        )
    return (
        f"; the interval excludes 0, but the paired test does not reach {ALPHA} (too few "
        "discordant items)"
    )


def balance_note(balanced_delta, delta, split):
    """On an imbalanced split, the balanced accuracy delta beside the accuracy one; said loudly when
    they disagree in sign (a gain in the majority class alone)."""
    if split is None or split.close_to_balanced or balanced_delta is None:
        return ""
    if balanced_delta * delta < 0:
        return (
            f"; but balanced accuracy {'falls' if balanced_delta < 0 else 'rises'} "
            f"{abs(100 * balanced_delta):.1f} points on this "
            f"{100 * split.positive_share:.0f}%-positive split"
        )
    return f"; balanced accuracy {points(balanced_delta)} points"


def finding(delta, test, *, model, baseline, claims=True, balanced=None, split=None):
    """'<model> beats <baseline> by X points (evidence)'; or that the difference is withheld (why),
    not established (and why), or, where the line only describes (claims=False), the number and its
    interval."""
    note = balance_note(balanced, delta, split)
    if test.withheld:
        return (
            f"{model} vs {baseline}: {points(delta)} points, withheld: "
            f"{test.withheld_runs} ({evidence(test)}{note})"
        )
    if not claims:
        return f"{model} − {baseline}: {points(delta)} points ({evidence(test)}{note})"
    if test.difference_claimed:
        return (
            f"{model} {'beats' if delta > 0 else 'trails'} {baseline} by {abs(100 * delta):.1f} "
            f"points ({evidence(test)}{note})"
        )
    return (
        f"{model} vs {baseline}: {points(delta)} points, not established ({evidence(test)}"
        f"{why_not_established(test)}{note})"
    )


def population(split, test, eval_splits=None):
    """What a line speaks of: the split, and its independent units with their counts."""
    whole_split = (
        eval_splits is not None and test.independent_units == eval_splits[split].unit_count
    )
    units = (
        eval_splits[split].units_said
        if whole_split
        else f"{test.independent_units:,} {test.resampled_unit}"
    )
    return f"{SPLIT_TITLES[split]} ({units})"


def constant_answer(metrics, items):
    """'answers 'positive' to every item' (or '871 of 872 items') for a run whose answers are one
    class within one item; None otherwise."""
    positive = round(metrics.predicted_positive_share * items)
    most = max(positive, items - positive)
    if items == 0 or items - most > 1 or (items - most == 1 and items < 10):
        return None
    every = "every item" if most == items else f"{most:,} of {items:,} items"
    return f"answers '{LABEL_NAMES[int(positive > items / 2)]}' to {every}"


def seeds_said(seeds):
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {listed(str(s) for s in seeds)}"


def floor_phrases(results, split):
    """', against a head-only model that answers 'positive' to every item (seed 43)' for each arm at
    its majority floor on the split, in any seed."""
    said = ""
    items = len(results.eval_splits[split].labels)
    for run, name in ((HEAD_ONLY, "a head-only model"), (FULL_FINETUNE, "a full fine-tune")):
        floored = [s for s in results.findings.per_seed if split in s.at_majority_floor[run]]
        # each seed's own answer: seeds floored by different constant answers are said apart
        by_answer = {}
        for s in floored:
            constant = constant_answer(s.metrics[run][split], items)
            what = (
                f"that {constant}"
                if constant
                else "no better than always answering the majority class"
            )
            by_answer.setdefault(what, []).append(s.seed)
        for what, seeds in by_answer.items():
            said += f", against {name} {what} ({seeds_said(seeds)})"
    return said


def covers(seeds):
    if seeds > 1:
        return (
            "the interval covers new training seeds and new sentences like these, with this "
            "training set"
        )
    return "the interval covers new sentences like these, for this one training run per arm"


def answer_line(results):
    """The experiment's answer on the headline split: across seeds when there are several; when a
    run broke, which one, why, and the exact flags to change."""
    answer, eval_splits = results.findings.headline, results.eval_splits
    headline, seeds = answer.split, answer.seeds
    over = (
        f"over {seeds} seeds, "
        if seeds > 1
        else f"seed {results.findings.first_seed.seed} (one seed), "
    )
    where = f"{SPLIT_TITLES[headline]} ({eval_splits[headline].units_said})"
    if results.curve:  # the answer is the curve's largest size's; the curve's own line follows
        over += f"trained on {results.curve.plan.counts[-1]:,} examples, "
    if answer.claim_withheld:
        return [
            f"Answer: none: {answer.claim_withheld}. A run that broke yields no finding.",
            *health_lines(results),
        ]
    delta, (lo, hi) = answer.delta_accuracy, answer.delta_accuracy_ci95
    if answer.difference_claimed:
        said = (
            f"fine-tuning the whole encoder {'beats' if delta > 0 else 'trails'} training only the "
            f"head by {abs(100 * delta):.1f} accuracy points"
        )
        reason = ""
    else:
        said = (
            f"fine-tuning the whole encoder vs training only the head: {points(delta)} points, "
            "not established"
        )
        test = headline_test(results)
        reason = why_not_established(test) + few_seeds(test)
    note = balance_note(answer.delta_balanced_accuracy, delta, eval_splits[headline])
    return [
        f"Answer: {over}on {where}, {said} (95% CI {points(lo)} to {points(hi)}{reason}{note})"
        f"{floor_phrases(results, headline)}; {covers(seeds)}{disagreeing_seeds(results)}."
    ]


FAR_SCALES = 4  # a seed's delta this many scales from the seeds' median is far from the others


def far_seeds(deltas, errors):
    """The indices of seeds whose delta lies far from the others' (N >= 3): more than FAR_SCALES
    scales from the median, the scale the larger of the robust SD of the deltas (1.4826 x their
    median absolute deviation) and the seeds' mean standard error of their own delta (below it, the
    seeds differ no more than their test set lets one measure)."""
    deltas = np.asarray(deltas, float)
    if len(deltas) < 3:
        return []
    middle = float(np.median(deltas))
    scale = max(1.4826 * float(np.median(np.abs(deltas - middle))), float(np.mean(errors)))
    return [i for i, d in enumerate(deltas) if abs(d - middle) > FAR_SCALES * scale]


def disagreeing_seeds(results):
    """'; seed 44's delta (-2.1 points) lies far from the others' (median +9.8): ...' or ''."""
    headline, per_seed = results.findings.headline.split, results.findings.per_seed
    deltas = [s.deltas[headline].accuracy for s in per_seed]
    errors = [np.diff(s.tests[headline].delta_accuracy_ci95)[0] / 2 / 1.96 for s in per_seed]
    far = far_seeds(deltas, errors)
    if not far:
        return ""
    said = listed(f"seed {per_seed[i].seed}'s ({points(deltas[i])} points)" for i in far)
    return (
        f"; {'the delta of ' if len(far) == 1 else 'the deltas of '}{said} "
        f"{'lies' if len(far) == 1 else 'lie'} far from the others' (median "
        f"{points(float(np.median(deltas)))}): the interval assumes the seeds share one spread, "
        f"which a rare bad run breaks; more seeds (--num_seeds {max(10, 2 * len(per_seed))}) show "
        "how often it happens"
    )


def headline_test(results):
    """The test behind the answer: across seeds when there are several, else the one seed's."""
    headline = results.findings.headline.split
    if results.findings.summary:
        return results.findings.summary.deltas[headline].test
    return results.findings.first_seed.tests[headline]


def expected_seed_margin(seeds):
    """The seeds' expected margin for a seed-to-seed SD of 1: t(N - 1) x E[s] / sqrt(N), where
    E[s] = c4(N), the sample SD's mean."""
    c4 = math.sqrt(2 / (seeds - 1)) * math.exp(
        math.lgamma(seeds / 2) - math.lgamma((seeds - 1) / 2)
    )
    return student_t.isf(ALPHA / 2, seeds - 1) * c4 / math.sqrt(seeds)


def few_seeds(test):
    """At 2 seeds the seeds' margin takes t with one degree of freedom (12.7): what more seeds would
    buy."""
    if test.seeds == 2 and test.variance_between_seeds > test.variance_over_units:
        three, five = (expected_seed_margin(2) / expected_seed_margin(n) for n in (3, 5))
        return (
            "; at 2 seeds the seeds' spread is known to one degree of freedom (t = 12.7): "
            f"--num_seeds 3 narrows its expected margin about {three:.1f}x, 5 about {five:.1f}x"
        )
    return ""


def health_lines(results):
    """Each run that broke, in every seed: what happened and the exact flags to change (report.md
    keeps them)."""
    return [
        f"Fix: the {RUN_NAMES[run]} run of seed {s.seed}: {s.status[run].advice}."
        for s in results.findings.per_seed
        for run in RUN_NAMES
        if s.status[run].broken and s.status[run].advice
    ]


def caution_lines(results):
    """Every seed's runs at a split's majority-class floor, by run."""
    lines = []
    for run in RUN_NAMES:
        name = "the head-only model" if run == HEAD_ONLY else "the full fine-tune"
        for s in results.findings.per_seed:
            if s.at_majority_floor[run]:
                lines.append(
                    f"Caution: {name} (seed {s.seed}) scores no better than always answering one "
                    f"class on {listed(SPLIT_TITLES[x] for x in s.at_majority_floor[run])}: its "
                    "deltas compare against a constant guess."
                )
    return lines


def seed_lines(comparison, results, *, details=True, claims=True):
    """One seed's findings, each labelled with its seed: the headline split, then (with details) the
    other splits, their parts and their leakage. claims=False (several seeds): the lines describe;
    the across-seed ones claim."""
    eval_splits, lines, seed = results.eval_splits, [], f"seed {comparison.seed}: "
    headline = results.findings.headline.split
    others = [split for split in comparison.splits if split != headline and details]
    for split in [headline, *others]:
        test, delta = comparison.tests[split], comparison.deltas[split]
        said = finding(
            delta.accuracy,
            test,
            model=FULL,
            baseline=HEAD,
            claims=claims,
            balanced=delta.balanced_accuracy,
            split=eval_splits[split],
        )
        lines.append(f"{seed}on {population(split, test, eval_splits)}: {said}.")
        for kind, part in comparison.by_kind.get(split, {}).items():
            if part:
                said = finding(
                    part.delta_accuracy, part.test, model=FULL, baseline=HEAD, claims=claims
                )
                lines.append(f"{seed}  its {part.items:,} {kind.replace('_', ' ')}: {said}.")
        lines += leakage_lines(split, eval_splits[split].leakage)
    return lines


def leakage_lines(split, leakage):
    if leakage <= 0.05:
        return []
    fix = (
        "--split grouped re-splits so that none is"
        if split == "test"
        else "the re-split cannot change that: remove those items from the file to score unseen "
        "text only"
    )
    return [
        f"  {100 * leakage:.0f}% of its items are word spans of training items: its score rewards "
        f"memorising ({fix})."
    ]


def decomposition(question, full_over_probe, probe_over_head, *, gaps):
    """What the probe says of the full-vs-head gap, said only where the claims support it. gaps: the
    three deltas (full - head, full - probe, probe - head)."""
    full_gap, over_probe, probe_gap = gaps
    ahead = question.difference_claimed and full_gap > 0
    probe_ahead = probe_over_head.difference_claimed and probe_gap > 0
    beats_probe = full_over_probe.difference_claimed and over_probe > 0
    trails_probe = full_over_probe.difference_claimed and over_probe < 0
    if ahead and probe_ahead and beats_probe:
        return (
            f"  so of the {100 * full_gap:.1f}-point gap, {100 * probe_gap:.1f} come from how the "
            f"notebook's head was trained and {100 * over_probe:.1f} from fine-tuning the encoder "
            "itself."
        )
    if ahead and probe_ahead and trails_probe:
        return (
            "  the probe beats the full fine-tune: the gap over head-only is the head's training, "
            "not the frozen encoder."
        )
    if ahead and probe_ahead:
        return (
            f"  so at least part of the {100 * full_gap:.1f}-point gap comes from how the "
            "notebook's head was trained; what fine-tuning the encoder adds beyond a well-fit "
            "probe is not established."
        )
    if ahead and beats_probe:
        return (
            "  the full fine-tune beats a well-fit probe on the same frozen features too: "
            "fine-tuning the encoder itself is worth more than the best head."
        )
    return "  how much of the gap comes from the head's training recipe is not established."


def probe_tests(results, headline):
    """The probe's two tests and the question's on the headline split, with the three deltas: over
    the seeds when there are several (the claims), else the one seed's."""
    summary, first_seed = results.findings.summary, results.findings.first_seed
    if summary and summary.full_over_probe is not None:
        over_probe = summary.full_over_probe[headline]
        over_head = summary.probe_over_head_only[headline]
        question = summary.deltas[headline].test
        gaps = (question.delta_accuracy, over_probe.delta_accuracy, over_head.delta_accuracy)
        return (
            question,
            over_probe,
            over_head,
            gaps,
            f"over {len(results.findings.per_seed)} seeds: ",
        )
    probe = first_seed.probe
    over_probe = probe.full_over_probe.tests[headline]
    over_head = probe.over_head_only.tests[headline]
    gaps = (
        first_seed.deltas[headline].accuracy,
        probe.full_over_probe.deltas[headline].accuracy,
        probe.over_head_only.deltas[headline].accuracy,
    )
    return first_seed.tests[headline], over_probe, over_head, gaps, f"seed {first_seed.seed}: "


def probe_lines(results):
    """The probe reference on the headline split, and what it says of the gap only where that
    holds."""
    probe = results.findings.first_seed.probe
    if not probe:
        return []
    headline = results.findings.headline.split
    question, over_probe, over_head, gaps, label = probe_tests(results, headline)
    return [
        f"{label}best linear probe on the frozen features, "
        f"{100 * results.findings.first_seed.metrics[PROBE][headline].accuracy:.1f}% on "
        f"{SPLIT_TITLES[headline]}: "
        f"{finding(gaps[1], over_probe, model=FULL, baseline='the probe')}.",
        f"  {finding(gaps[2], over_head, model='the probe', baseline=HEAD)}.",
        decomposition(question, over_probe, over_head, gaps=gaps),
    ]


def across_seed_lines(results):
    """Over N seeds: each split's mean delta with its across-seed interval (the claims), how the
    seeds' own tests came out by direction, and the spread of their deltas."""
    summary, answer, eval_splits = (
        results.findings.summary,
        results.findings.headline,
        results.eval_splits,
    )
    n, headline = answer.seeds, answer.split
    sd = summary.deltas[headline].test.seed_sd
    lines = [
        f"over {n} seeds, on {SPLIT_TITLES[headline]}: each seed's own test has the full fine-tune "
        f"ahead in {answer.seeds_ahead}, behind in {answer.seeds_behind}, withheld in "
        f"{answer.seeds_withheld}, not established in {answer.seeds_not_established} of "
        f"{n} (all share one test set, so they are not {n} replications); the seeds' deltas "
        f"spread by {100 * sd:.1f} points (SD)."
    ]
    for split in [headline, *(split for split in summary.deltas if split != headline)]:
        over = summary.deltas[split]
        said = finding(
            over.test.delta_accuracy,
            over.test,
            model=FULL,
            baseline=HEAD,
            balanced=over.balanced_accuracy["mean"],
            split=eval_splits[split],
        )
        lines.append(f"over {n} seeds, on {population(split, over.test, eval_splits)}: {said}.")
        for kind, part in summary.by_kind.get(split, {}).items():
            said = finding(part.test.delta_accuracy, part.test, model=FULL, baseline=HEAD)
            lines.append(f"  its {part.items:,} {kind.replace('_', ' ')}: {said}.")
    return lines


def rule_lines(results):
    answer, first_seed = results.findings.headline, results.findings.first_seed
    secondary = len(first_seed.splits) - 1 + len(first_seed.parts())
    lines = [
        f"(claimed: the 95% interval excludes 0 and the p-value is below {ALPHA}. The question's "
        f"own test, full fine-tune vs head-only on {SPLIT_TITLES[answer.split]}, is decided "
        f"alone; the other splits and parts ({secondary} tests) and the probe's comparisons are "
        "tested only when it is claimed, each a Holm-corrected family: the report claims a false "
        "difference in at most 5% of runs where the arms are equal. docs/statistics.md.)"
    ]
    if answer.seeds > 1:
        lines.append(
            f"(over seeds: the mean of {answer.seeds} seeds' deltas; its interval adds a margin "
            "for the seed-to-seed spread and one for the test set's sampling. Each seed's own "
            "lines describe: only the across-seed lines claim.)"
        )
    else:
        lines.append(
            "(one seed: its interval and test are conditional on one training run per arm; "
            "seed-to-seed noise is not in them; --num_seeds 3 measures it)"
        )
    return lines


def imbalance_lines(results):
    lines = []
    for name, split in results.eval_splits.items():
        if not split.close_to_balanced:
            title = SPLIT_TITLES[name]
            lines.append(
                f"{title[0].upper()}{title[1:]} is imbalanced ({100 * split.positive_share:.0f}% "
                "positive): read its macro-F1 and balanced accuracy, which a constant answer "
                "cannot inflate (F1 of the positive class can)."
            )
    return lines


def verdict_lines(results):
    """The answer, its cautions, the across-seed findings (several seeds), the first seed's findings
    (every seed's headline line with several), the probe reference, the imbalance notes and the
    rule."""
    per_seed, several = results.findings.per_seed, len(results.findings.per_seed) > 1
    lines = [*answer_line(results), *caution_lines(results)]
    if results.findings.summary:
        lines += across_seed_lines(results)
    for comparison in per_seed:  # the first seed in full; the others' headline lines
        lines += seed_lines(
            comparison, results, details=comparison is per_seed[0], claims=not several
        )
    lines += probe_lines(results)
    return lines + imbalance_lines(results) + rule_lines(results)
