"""What is printed, and report.md: the setup, then the card's three outputs (each run's metrics, the
confusion matrices, the accuracy delta with its evidence and the verdict), the summary over seeds
and the examples that flipped. Each part is built as lines from the run's Results by one function
and printed (on the main process) by its print_ twin; report.md is built from the same functions,
the answer first."""

import textwrap

from scipy.stats import t as student_t

from sst2kit import plots
from sst2kit.console import say, visible
from sst2kit.curve import verdict as curve_verdict
from sst2kit.names import (
    FULL_FINETUNE,
    HEAD_ONLY,
    LABEL_NAMES,
    PROBE,
    PROBE_TITLE,
    RUN_NAMES,
    RUN_TITLES,
    RUNS,
    SPLIT_TITLES,
    evaluated,
    headline_split,
)
from sst2kit.probe import probe_fit_line
from sst2kit.results import flips, save_report
from sst2kit.significance import ALPHA, p_text
from sst2kit.trackers import log_answer
from sst2kit.verdict import answer_line, caution_lines, expected_seed_margin, verdict_lines

WIDTH = 160  # the verdict's lines are wrapped to this many columns on the console
CURVE_COLUMNS = {HEAD_ONLY: "head-only", FULL_FINETUNE: "full fine-tune", PROBE: "probe"}


def shown(lines):
    for line in lines:
        say(line)
    return lines


def cut(text, most=110):
    return text if len(text) <= most else text[: most - 1] + "…"


def setup_lines(results):
    """What the run works on: the model, the splits, their label mixes, the leakage and independent
    units, where it runs."""
    cfg, balance = results.cfg, results.balance
    shares = balance["train_label_shares"].items()
    lines = [
        f"model: {visible(cfg.model_name)}",
        f"  its pretrained encoder, with a new two-label head ({len(results.new_head_tensors)} "
        "tensors, initialised as expected; named in results.json)",
        f"split '{cfg.split}': " + ", ".join(f"{name} {n:,}" for name, n in results.sizes.items()),
        "train labels: "
        + ", ".join(
            f"{k} {balance['train_label_counts'][k]:,} ({100 * v:.1f}%)" for k, v in shares
        ),
    ]
    if "external_test" in results.eval_splits:
        external = results.eval_splits["external_test"]
        lines.append(f"external test set: {len(external.labels):,} labelled sentences from")
        lines.append(f"  {visible(cfg.external_test_file)}")
        if results.external_in_validation:
            lines.append(
                f"warning: {results.external_in_validation:,} of the external test set's sentences "
                "are also GLUE validation sentences: it is meant to be a set of its own (such as "
                "the SST-2 test sentences)"
            )
    for name, split in results.eval_splits.items():
        lines += split_lines(name, split)
    return lines + curve_plan_lines(results.curve) + where_lines(results)


def curve_plan_lines(curve):
    """A learning curve's sizes before training: each size's label mix per seed, and each run's
    epochs and optimizer steps there."""
    if not curve:
        return []
    plan = curve.plan
    lines = [
        f"learning curve over {len(plan.counts)} training-set sizes, nested subsets drawn once per "
        f"seed from the {plan.available:,} re-split training examples; the evaluation sets whole "
        "at every size; each run trains its configured epochs, or enough whole epochs to reach "
        "min_steps_head_only / min_steps_full_finetune optimizer steps:"
    ]
    for size in plan.counts:
        mix = ", ".join(
            f"{100 * plan.labels[plan.subset(size, seed)].mean():.1f}%" for seed in plan.seeds
        )
        runs = ", ".join(
            f"{RUN_NAMES[run]} {plan.epochs[size][run]:g} epochs ({plan.steps(size, run):,} steps)"
            for run in RUNS
        )
        lines.append(f"  {size:>7,} examples: positive {mix}; {runs}")
    return lines


def split_lines(name, split):
    largest = (
        f" (largest {split.largest_unit_items:,} items)" if split.largest_unit_items > 1 else ""
    )
    lines = [
        f"{name}: {100 * split.positive_share:.1f}% positive, majority-class floor "
        f"{100 * split.majority_floor:.1f}%; {split.unit_count:,} independent {split.unit_name}"
        f"{largest}; {100 * split.leakage:.1f}% of items are phrases of training items"
    ]
    if split.duplicated_items:
        lines.append(
            f"warning: {split.duplicated_items:,} of {split.title}'s items repeat another of its "
            "items word for word: a repeat is no new evidence, so it counts in its original's unit"
        )
    classes = len(set(split.labels.tolist()))
    if len(split.labels) < 30 or classes < 2:
        lines.append(
            f"warning: {split.title} has {len(split.labels)} item(s), of {classes} class(es): its "
            "scores and intervals say little; use more data (subset_fraction)"
        )
    return lines


def where_lines(results):
    """The run folder, a resumed run's kept seeds, the device and the processes."""
    cfg, setup, lines = results.cfg, results.experiment.setup, []
    if results.curve and results.curve.resumed:
        kept = ", ".join(f"seed {seed} at {size:,}" for size, seed in results.curve.resumed)
        lines.append(
            f"resuming {visible(results.run_dir)}: cell(s) {kept} kept as recorded; the missing "
            "cells are trained now"
        )
    elif results.resumed_seeds:
        lines.append(
            f"resuming {visible(results.run_dir)}: seed(s) "
            f"{', '.join(map(str, results.resumed_seeds))} kept as recorded; the missing seeds are "
            "trained now"
        )
    parallel = {
        "seeds": ", each training whole seeds alone",
        "data": ", data-parallel: each trains on a shard of every batch "
        f"(effective batch {cfg.per_device_train_batch_size} x {setup.processes})",
    }.get(setup.parallel, "")
    lines += [
        f"results go to {visible(results.run_dir)}",
        f"device: {setup.device}, precision: {setup.precision.name}, CUDA graphs: "
        f"{setup.cuda_graphs_said}, processes: {setup.processes}{parallel}",
    ]
    if setup.device.startswith("cpu") and cfg.subset_fraction is None and not cfg.train_sizes:
        lines.append(
            "warning: no GPU; a full run takes hours on a CPU. For a quick look that still scores "
            "the whole validation set, train on fewer examples: --train_sizes 1000"
        )
    return lines + two_seeds_warning(cfg.num_seeds)


def two_seeds_warning(seeds):
    """Said before training: 2 seeds give the across-seed interval one degree of freedom, so it is
    usually wider than one seed's own interval; what 3 and 5 seeds would give."""
    if seeds != 2:
        return []
    three, five = (expected_seed_margin(2) / expected_seed_margin(n) for n in (3, 5))
    return [
        "warning: --num_seeds 2 measures the seed-to-seed spread with one degree of freedom (t = "
        f"{student_t.isf(ALPHA / 2, 1):.1f}): its interval is usually wider than one seed's. "
        f"--num_seeds 3 narrows the seeds' expected margin about {three:.1f}x, 5 about {five:.1f}x"
    ]


def print_setup(results):
    return shown(setup_lines(results))


def metrics_lines(results):
    first_seed = results.findings.first_seed
    lines = [f"\n=== metrics (seed {first_seed.seed}) ==="]
    for run in RUNS:
        for split in first_seed.splits:
            m = first_seed.metrics[run][split]
            lines.append(
                f"{RUN_TITLES[run]:27} {split:14} accuracy {m.accuracy:.4f}  balanced "
                f"{m.balanced_accuracy:.4f}  F1 {m.f1:.4f}  macro-F1 {m.macro_f1:.4f}"
            )
    return lines


def print_metrics(results):
    return shown(metrics_lines(results))


def confusion_lines(results):
    first_seed = results.findings.first_seed
    lines = [
        f"\n=== confusion matrices (seed {first_seed.seed}; rows true, columns predicted: "
        f"{' / '.join(LABEL_NAMES)}) ==="
    ]
    for run in RUNS:
        for split in first_seed.splits:
            (tn, fp), (fn, tp) = first_seed.metrics[run][split].confusion_matrix
            lines.append(
                f"{RUN_TITLES[run]:27} {split:14} {LABEL_NAMES[0]} [{tn:6,d} {fp:6,d}]   "
                f"{LABEL_NAMES[1]} [{fn:6,d} {tp:6,d}]"
            )
    return lines


def print_confusion_matrices(results):
    return shown(confusion_lines(results))


def share(value, signed=True):
    return "n/a" if value is None else f"{100 * value:+.1f}%" if signed else f"{100 * value:.1f}%"


def error_columns(delta):
    """The share of the baseline's errors the model fixes, and the net error-rate reduction (fixes
    minus breaks, over the baseline's errors)."""
    fixed = share(delta.errors_fixed_share, signed=False)
    return f"{fixed:>24}{share(delta.error_rate_reduction):>26}"


ERROR_HEADER = f"{'baseline errors fixed':>24}{'net error-rate reduction':>26}"


def interval_line(split, test, comparison):
    lo, hi = (100 * x for x in test.delta_accuracy_ci95)
    if not test.tested:
        holm = "not tested"
    elif test.family_size > 1:
        holm = p_text(test, holm=True, short=True)
    else:
        holm = "alone"
    return (
        f"{comparison:22} {split:14} [{lo:+6.2f}, {hi:+6.2f}]  {test.independent_units:6,} "
        f"{test.resampled_unit:17} {test.paired_test} {p_text(test, short=True)}; {holm}"
    )


def run_table_lines(first_seed, balance):
    """Both runs' accuracy and balanced accuracy per split and part, with the delta."""
    lines = [
        f"{'':24}{'head-only':>10}{'full':>10}{'delta (points)':>16}{ERROR_HEADER}{'positive':>10}"
    ]
    for split in first_seed.splits:
        h, f = first_seed.metrics[HEAD_ONLY][split], first_seed.metrics[FULL_FINETUNE][split]
        delta = first_seed.deltas[split]
        lines.append(
            f"{split + ' accuracy':24}{h.accuracy:10.4f}{f.accuracy:10.4f}"
            f"{100 * delta.accuracy:+16.2f}{error_columns(delta)}"
            f"{100 * balance[split]['positive_share']:9.1f}%"
        )
        lines.append(
            f"{'  balanced accuracy':24}{h.balanced_accuracy:10.4f}"
            f"{f.balanced_accuracy:10.4f}{100 * delta.balanced_accuracy:+16.2f}"
        )
        for kind, part in first_seed.by_kind.get(split, {}).items():
            if part:
                lines.append(
                    f"{'  ' + kind.replace('_', ' '):24}{part.accuracy[HEAD_ONLY]:10.4f}"
                    f"{part.accuracy[FULL_FINETUNE]:10.4f}"
                    f"{100 * part.delta_accuracy:+16.2f}    ({part.items:,} items)"
                )
    return lines


def probe_table_lines(first_seed):
    probe = first_seed.probe
    lines = [f"\n{'':24}{'probe':>10}{'full':>10}{'delta (points)':>16}{ERROR_HEADER}"]
    for split in first_seed.splits:
        d = probe.full_over_probe.deltas[split]
        lines.append(
            f"{split + ' accuracy':24}{first_seed.metrics[PROBE][split].accuracy:10.4f}"
            f"{first_seed.metrics[FULL_FINETUNE][split].accuracy:10.4f}"
            f"{100 * d.accuracy:+16.2f}{error_columns(d)}"
        )
    return lines


def interval_lines(first_seed):
    """Each comparison's interval and test, split by split."""
    compared = [("full - head-only", first_seed.tests)]
    if first_seed.probe:
        compared += [
            ("full - probe", first_seed.probe.full_over_probe.tests),
            ("probe - head-only", first_seed.probe.over_head_only.tests),
        ]
    return [
        f"\n{'accuracy delta':22} {'':14} {'95% CI (points)':18}  {'over':24} paired test",
        *(interval_line(split, tests[split], name) for name, tests in compared for split in tests),
    ]


def delta_lines(results):
    """The accuracy delta per split with its interval and test, the probe reference, the summary
    over seeds, then the verdict and the examples that flipped."""
    first_seed, summary = results.findings.first_seed, results.findings.summary
    of_seeds = f", the first of {len(results.findings.per_seed)}" if summary else ""
    lines = [
        f"\n=== accuracy delta (seed {first_seed.seed}{of_seeds}) ===",
        *run_table_lines(first_seed, results.balance),
        *(probe_table_lines(first_seed) if first_seed.probe else []),
        *interval_lines(first_seed),
        *(summary_lines(summary) if summary else []),
        "\n=== verdict ===",
        *(
            wrapped
            for line in verdict_lines(results)
            for wrapped in textwrap.wrap(line, WIDTH, subsequent_indent="    ")
        ),
    ]
    return lines + flip_lines(flips(results.predictions), first_seed.seed) + curve_lines(results)


def print_delta(results):
    return shown(delta_lines(results))


def curve_lines(results):
    """A learning curve's answer: per size the arms' accuracy on the headline split (mean over the
    seeds, with its interval), the delta with its interval, the p-value Holm-adjusted over the
    sizes and the claim; then one verdict across the sizes."""
    if not results.curve:
        return []
    points, split = results.curve.points, headline_split(results.eval_splits)
    models = [*RUNS, *([PROBE] if points and PROBE in points[0].accuracy else [])]
    lines = [
        f"\n=== learning curve: {SPLIT_TITLES[split]} accuracy by training-set size ===",
        f"{'examples':>9} {'seeds':>5} "
        + "".join(f"{CURVE_COLUMNS[m]:>15}" for m in models)
        + f"  {'delta (points)':>14} {'95% CI':>17} {'p (Holm)':>9}  claim",
    ]
    for point in points:
        low, high = (100 * x for x in point.delta_accuracy_ci95)
        holm_p = point.p_value_holm_over_sizes
        lines.append(
            f"{point.size:>9,} {point.seeds:>5} "
            + "".join(f"{point.accuracy[m]['mean']:>15.4f}" for m in models)
            + (
                f"  {'-':>14} {'-':>17} "  # a broken run's delta is no finding: not a number
                if point.withheld
                else f"  {100 * point.delta_accuracy:>+14.1f} {f'[{low:+.1f}, {high:+.1f}]':>17} "
            )
            + f"{'-' if holm_p is None else f'{holm_p:.2g}':>9}  "
            + ("withheld: a run broke (its warning above)" if point.withheld else point.status)
        )
    wrapped = textwrap.wrap(
        "across sizes: " + curve_verdict(points), WIDTH, subsequent_indent="    "
    )
    return lines + ["", *wrapped]


def summary_lines(summary):
    lines = [
        "\nover seeds (mean ± SD across seeds; the test sets are the same, so the SD is training "
        "randomness):"
    ]
    splits = list(summary.deltas)
    for run in RUNS:
        for split in splits:
            m = summary.metrics[run][split]
            lines.append(
                f"  {run:14} {split:13} accuracy {m['accuracy']['mean']:.4f} ± "
                f"{m['accuracy']['std']:.4f}  balanced {m['balanced_accuracy']['mean']:.4f} ± "
                f"{m['balanced_accuracy']['std']:.4f}"
                f"  macro-F1 {m['macro_f1']['mean']:.4f} ± {m['macro_f1']['std']:.4f}"
            )
    for split, over in summary.deltas.items():
        lo, hi = over.test.delta_accuracy_ci95
        accuracy, balanced = over.accuracy, over.balanced_accuracy
        lines.append(
            f"  delta {split:13} {100 * accuracy['mean']:+.2f} ± {100 * accuracy['std']:.2f} "
            f"points (95% CI across seeds and units {100 * lo:+.2f} to {100 * hi:+.2f}); balanced "
            f"{100 * balanced['mean']:+.2f} ± {100 * balanced['std']:.2f}; "
            f"per seed {', '.join(f'{100 * x:+.2f}' for x in over.per_seed_accuracy)}"
        )
    return lines


def flip_lines(flipped, seed, most=5):
    flipped, lines = flipped[flipped["seed"] == seed], []
    for change, what in (
        ("fixed", "fixes (head-only wrong, full fine-tune right)"),
        ("broken", "breaks (head-only right, full fine-tune wrong)"),
    ):
        rows = flipped[flipped["change"] == change]
        counts = rows["split"].value_counts()
        per_split = ", ".join(f"{split} {counts[split]:,}" for split in evaluated(counts.index))
        lines.append(
            f"\nseed {seed}: the full fine-tune {what}: {len(rows):,} examples"
            + (f" ({per_split}); the {min(most, len(rows))} it is surest of:" if len(rows) else ".")
        )
        for row in rows.head(most).itertuples():
            lines.append(
                f"  [{row.split}, {LABEL_NAMES[row.label]}] P(positive) head-only "
                f"{row.head_only_prob_pos:.2f}, full {row.full_finetune_prob_pos:.2f}: "
                f"{cut(visible(row.sentence))}"
            )
    return lines


def classification_reports(first_seed):
    """The per-class precision, recall and F1 for each run and split: kept in report.md only."""
    return [
        f"{RUN_TITLES[run]} on {SPLIT_TITLES[split]}:\n{first_seed.metrics[run][split].report}"
        for run in RUNS
        for split in first_seed.splits
    ]


GLOSSARY = [
    "- **positive share**: the share of a split's items labelled positive. Far from 50%, a model "
    "that always answers the majority class already scores that share: its *majority-class floor*.",
    "- **units**: the independent pieces of evidence an interval resamples. A sentence listed "
    "twice is one unit; in "
    "the re-split test set a unit is a source sentence with the phrases cut from it (a phrase "
    "found in several sentences is a unit alone).",
    "- **largest unit**: the most items any one unit holds; the larger, the less independent the "
    "items.",
    "- **not established**: no difference is claimed: its 95% interval includes 0, or its "
    "(corrected) test does "
    "not reach 0.05, or it was not tested because the question's own comparison was not "
    "established. It does not "
    "mean the two are equal: read the interval for how large a difference the data still allow.",
    "- **withheld**: a run broke (diverged, was unstable, collapsed or did not learn), so nothing "
    "is claimed from the comparisons that involve it, whatever their numbers.",
]


def partial_lines(results):
    """report.md's first line while seeds (or a curve's cells) are still to come."""
    if results.curve:
        finished, wanted = results.curve.done, results.curve.plan.cell_count
        unit = "cells (seed and size)"
    else:
        finished, wanted, unit = len(results.findings.per_seed), results.cfg.num_seeds, "seeds"
    if finished == wanted:
        return []
    return [
        f"**Partial: {finished} of {wanted} {unit} finished** (the run stopped, or is still "
        "running; `--resume` goes on with it).",
        "",
    ]


def markdown(results, figures):
    """report.md: the answer and any caution in plain words first, a short glossary, then every
    detail the console printed, scikit-learn's classification reports and the figures."""
    curve = (
        [f"\n**Learning curve:** {curve_verdict(results.curve.points)}."] if results.curve else []
    )
    # the answer first, with every broken run's fix
    answer = [*partial_lines(results), *answer_line(results), *caution_lines(results), *curve]
    probe = (
        [f"\n=== {PROBE_TITLE} ===", probe_fit_line(results.probe_fit)] if results.probe_fit else []
    )
    details = [
        *setup_lines(results),
        *probe,
        *metrics_lines(results),
        *confusion_lines(results),
        *delta_lines(results),
    ]
    sections = [
        ["# sst2-compare report", "", *answer],
        ["## Words used here", "", *GLOSSARY],
        ["## The run in detail", "", "```", *details, "```"],
        [
            "## Classification reports",
            "",
            "```",
            *classification_reports(results.findings.first_seed),
            "```",
        ],
        ["## Figures", "", *(f"![{figure.stem}]({figure.name})" for figure in figures), ""],
    ]
    return "\n\n".join("\n".join(section) for section in sections)


def write(results):
    """report.md and the figures, rewritten from every seed so far (after each seed, and at the
    end): a run stopped after its first seed keeps its report. Returns the figures' paths."""
    figures = plots.save_figures(results)
    save_report(results.run_dir, markdown(results, figures))
    return figures


def save(results):
    """report.md and the figures in the run folder, the answer to the trackers that keep one
    (--report_to), and a line naming every file written."""
    figures = write(results)
    log_answer(
        results.cfg.report_to,
        results.run_dir,
        headline=results.findings.headline,
        answer=answer_line(results)[0],
    )
    say(
        f"\nwrote to {results.run_dir}:\n  report.md, results.json, predictions.csv, flips.csv, "
        f"trainer_log.jsonl, {', '.join(f.name for f in figures)}"
    )
