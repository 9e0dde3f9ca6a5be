"""The verdict: one finding per line, each naming its population and its number with the evidence for it, claiming
no more than the interval, the Holm-corrected paired test, the majority-class floor and the seeds support."""
from sst2kit.console import listed
from sst2kit.names import SPLIT_TITLES, headline_split
from sst2kit.significance import ALPHA, p_text

FULL, HEAD = "full fine-tune", "head-only"


def evidence(significance):
    lo, hi = (100 * x for x in significance["delta_accuracy_ci95"])
    return (f"95% CI {lo:+.1f} to {hi:+.1f}; {significance['paired_test']} {p_text(significance)}, "
            f"Holm {p_text(significance, 'p_value_holm')}")


def finding(points, significance, *, model, baseline):
    """'<model> beats <baseline> by X points (evidence)', or that the difference is not established."""
    if significance["difference_claimed"]:
        return f"{model} {'beats' if points > 0 else 'trails'} {baseline} by {abs(points):.1f} points " \
               f"({evidence(significance)})"
    return f"{model} vs {baseline}: {points:+.1f} points, not established ({evidence(significance)})"


def population(split, significance):
    """What a line speaks of: the split, and its independent units."""
    return f"{SPLIT_TITLES[split]} ({significance['independent_units']:,} {significance['resampled_unit']})"


def verdict_lines(results):
    """The verdict of one seed (the first), and over seeds when there are several."""
    result, eval_splits, balance, summary = results.per_seed[0], results.eval_splits, results.balance, results.summary
    splits, lines = list(result["significance"]), []
    first = headline_split(splits)
    head = result["significance"][first]
    points = 100 * result["deltas"][first]["accuracy"]
    lo, hi = (100 * x for x in head["delta_accuracy_ci95"])
    answer = ("fine-tuning the whole encoder " + ("beats" if points > 0 else "trails") +
              f" training only the head by {abs(points):.1f} accuracy points" if head["difference_claimed"] else
              f"fine-tuning the whole encoder vs training only the head: {points:+.1f} points, not established")
    lines.append(f"Answer: on {SPLIT_TITLES[first]}, {answer} (95% CI {lo:+.1f} to {hi:+.1f}).")
    for run, name in (("head_only", "the head-only model"), ("full_finetune", "the full fine-tune")):
        floored = result["at_majority_floor"][run]
        if floored:
            lines.append(f"Caution: {name} scores no better than always predicting one class on "
                         f"{listed(SPLIT_TITLES[s] for s in floored)}: its deltas compare against a constant guess.")
    seed = f"seed {result['seed']}: " if summary else ""
    for split in [first, *(split for split in splits if split != first)]:  # the most trustworthy first
        significance, points = result["significance"][split], 100 * result["deltas"][split]["accuracy"]
        lines.append(f"{seed}on {population(split, significance)}: "
                     f"{finding(points, significance, model=FULL, baseline=HEAD)}.")
        for kind, part in result["by_kind"].get(split, {}).items():
            if part:
                lines.append(f"{seed}  its {part['items']:,} {kind.replace('_', ' ')}: "
                             f"{finding(100 * part['delta_accuracy'], part['significance'], model=FULL, baseline=HEAD)}.")
        if eval_splits[split].leakage > 0.05:
            lines.append(f"  {100 * eval_splits[split].leakage:.0f}% of its items are phrases seen in training: its "
                         "score rewards memorising (--split grouped avoids that).")
    probe = result.get("probe_reference")
    if probe:
        significance = probe["significance"][first]
        lines.append(f"{seed}best linear probe on the frozen features, {100 * probe['runs'][first]['accuracy']:.1f}% "
                     f"on {SPLIT_TITLES[first]}: "
                     f"{finding(100 * probe['delta'][first]['accuracy'], significance, model=FULL, baseline='the probe')}.")
        versus = probe["versus_head_only"]
        gain, significance = 100 * versus["delta"][first]["accuracy"], versus["significance"][first]
        if significance["difference_claimed"] and gain > 0:
            lines.append(f"  the probe beats the head-only run by {gain:.1f} points ({evidence(significance)}):")
            lines.append("  that much of the gap comes from how the notebook's head was trained, not from freezing "
                         "the encoder.")
        else:
            lines.append(f"  {finding(gain, significance, model='the probe', baseline='head-only')}:")
            lines.append("  how much of the gap comes from the head's training recipe is not established.")
    for split in splits:
        if not balance[split]["close_to_balanced"]:
            lines.append(f"{SPLIT_TITLES[split][0].upper()}{SPLIT_TITLES[split][1:]} is imbalanced "
                         f"({100 * balance[split]['positive_share']:.0f}% positive): read its F1 and macro-F1.")
    if summary:
        n = len(summary["deltas"][first]["per_seed_accuracy"])
        for split in splits:
            d = summary["deltas"][split]
            lines.append(f"over {n} seeds (training randomness on one split), on {SPLIT_TITLES[split]}: "
                         f"{100 * d['accuracy']['mean']:+.1f} +- {100 * d['accuracy']['std']:.1f} points, "
                         f"a difference claimed in {d['seeds_claiming_a_difference']} of {n}.")
    lines.append(f"(claimed: the 95% interval excludes 0 and the p-value, Holm-adjusted over the seed's "
                 f"{head['family_size']} paired tests, is below {ALPHA};")
    lines.append(" intervals and tests are conditional on one training run per arm: seed-to-seed noise is not in "
                 "them; --num_seeds measures it)")
    return lines
