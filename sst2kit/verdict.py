"""The verdict: the experiment's answer first, then one finding per line, each naming its population (and its seed)
and its number with the evidence for it, claiming no more than its family's rule, the majority-class floor, the
runs' health and the seeds support. docs/statistics.md describes the rule and the families."""
from sst2kit.console import listed
from sst2kit.names import LABEL_NAMES, SPLIT_TITLES, headline_split
from sst2kit.significance import ALPHA, p_text

FULL, HEAD = "full fine-tune", "head-only"


def points(x):
    return f"{100 * x:+.1f}"


def evidence(significance):
    lo, hi = significance["delta_accuracy_ci95"]
    holm = f", Holm {p_text(significance, 'p_value_holm')}" if significance.get("family_size", 1) > 1 else ""
    return f"95% CI {points(lo)} to {points(hi)}; {significance['paired_test']} {p_text(significance)}{holm}"


def why_not_established(significance):
    """Beside 'not established', when its interval excludes 0: which part of the rule held it back."""
    lo, hi = significance["delta_accuracy_ci95"]
    if significance.get("withheld"):
        return "; withheld: a run broke (see the Answer line)"
    if not (lo > 0 or hi < 0):
        return ""
    if not significance.get("tested", True):
        return "; not tested, since the primary comparison is not established"
    if significance["p_value"] < ALPHA:
        return (f"; the interval excludes 0 only before correcting for this family's {significance['family_size']} "
                "tests")
    return f"; the interval excludes 0, but the paired test does not reach {ALPHA} (too few discordant items)"


def finding(delta, significance, *, model, baseline):
    """'<model> beats <baseline> by X points (evidence)', or that the difference is not established, and why."""
    if significance["difference_claimed"]:
        return (f"{model} {'beats' if delta > 0 else 'trails'} {baseline} by {abs(100 * delta):.1f} points "
                f"({evidence(significance)})")
    return (f"{model} vs {baseline}: {points(delta)} points, not established ({evidence(significance)}"
            f"{why_not_established(significance)})")


def population(split, significance):
    """What a line speaks of: the split, and its independent units."""
    return f"{SPLIT_TITLES[split]} ({significance['independent_units']:,} {significance['resampled_unit']})"


def constant_answer(metrics):
    """'answers 'positive' to every item' for a run whose answers are (nearly) one class; None otherwise."""
    share = metrics["predicted_positive_share"]
    if share >= 0.99 or share <= 0.01:
        every = "every item" if share in (0.0, 1.0) else f"{100 * max(share, 1 - share):.0f}% of items"
        return f"answers '{LABEL_NAMES[int(share >= 0.5)]}' to {every}"
    return None


def answer_line(results):
    """The experiment's answer on the headline split: across seeds when there are several."""
    headline, first = results.headline, results.per_seed[0]
    split = headline["split"]
    over = (f"over {headline['seeds']} seeds, " if headline["seeds"] > 1 else f"seed {first['seed']} (one seed), ")
    significance = first["significance"][split]
    where = f"{SPLIT_TITLES[split]} ({significance['independent_units']:,} {significance['resampled_unit']})"
    lo, hi = headline["delta_accuracy_ci95"]
    if headline["claim_withheld"]:
        return [f"Answer: none: {headline['claim_withheld']}. A run that diverged or collapsed yields no finding: "
                "the warning printed when it finished says which setting to change."]
    delta = headline["delta_accuracy"]
    if headline["difference_claimed"]:
        said = (f"fine-tuning the whole encoder {'beats' if delta > 0 else 'trails'} training only the head by "
                f"{abs(100 * delta):.1f} accuracy points")
    else:
        said = f"fine-tuning the whole encoder vs training only the head: {points(delta)} points, not established"
    floored = [(run, name) for run, name in (("head_only", "a head-only model"), ("full_finetune", "a full fine-tune"))
               if split in first["at_majority_floor"][run]]
    against = ""
    for run, name in floored:
        constant = constant_answer(first["runs"][run][split])
        against += (f", against {name} that {constant}" if constant else
                    f", against {name} no better than always answering the majority class")
    return [f"Answer: {over}on {where}, {said} (95% CI {points(lo)} to {points(hi)}){against}."]


def caution_lines(results):
    lines = []
    for s in results.per_seed[:1]:
        for run, name in (("head_only", "the head-only model"), ("full_finetune", "the full fine-tune")):
            floored = s["at_majority_floor"][run]
            if floored:
                lines.append(f"Caution: {name} (seed {s['seed']}) scores no better than always answering one class "
                             f"on {listed(SPLIT_TITLES[x] for x in floored)}: its deltas compare against a constant "
                             "guess.")
    return lines


def seed_lines(result, eval_splits, *, details=True):
    """One seed's findings, each labelled with its seed: the headline split, then (with details) the other splits,
    their parts and their leakage."""
    splits, lines, seed = list(result["significance"]), [], f"seed {result['seed']}: "
    first = headline_split(splits)
    for split in [first, *(split for split in splits if split != first and details)]:
        significance = result["significance"][split]
        lines.append(f"{seed}on {population(split, significance)}: "
                     f"{finding(result['deltas'][split]['accuracy'], significance, model=FULL, baseline=HEAD)}.")
        for kind, part in result["by_kind"].get(split, {}).items():
            if part:
                lines.append(f"{seed}  its {part['items']:,} {kind.replace('_', ' ')}: "
                             f"{finding(part['delta_accuracy'], part['significance'], model=FULL, baseline=HEAD)}.")
        if eval_splits[split].leakage > 0.05:
            fix = ("--split grouped re-splits so that none is" if split == "test" else
                   "the re-split cannot change that: remove those items from the file to score unseen text only")
            lines.append(f"  {100 * eval_splits[split].leakage:.0f}% of its items are word spans of training items: "
                         f"its score rewards memorising ({fix}).")
    return lines


def probe_lines(result):
    """The probe reference on the headline split, and what it says of the gap only where that holds."""
    probe = result.get("probe_reference")
    if not probe:
        return []
    first, seed = headline_split(result["significance"]), f"seed {result['seed']}: "
    accuracy = probe["runs"][first]["accuracy"]
    over_probe, versus = probe["significance"][first], probe["versus_head_only"]["significance"][first]
    full_gap, probe_gap = result["deltas"][first]["accuracy"], probe["versus_head_only"]["delta"][first]["accuracy"]
    full_over_probe = probe["delta"][first]["accuracy"]
    lines = [f"{seed}best linear probe on the frozen features, {100 * accuracy:.1f}% on {SPLIT_TITLES[first]}: "
             f"{finding(full_over_probe, over_probe, model=FULL, baseline='the probe')}.",
             f"  {finding(probe_gap, versus, model='the probe', baseline=HEAD)}."]
    if full_over_probe <= 0:
        lines.append("  the probe matches or beats the full fine-tune here: a well-fit head on the frozen encoder "
                     + ("does better than fine-tuning it" if over_probe["difference_claimed"] else
                        "is not told apart from fine-tuning it") + ", so the gap over head-only is the head's "
                     "training, not the frozen encoder.")
    elif (result["significance"][first]["difference_claimed"] and versus["difference_claimed"]
          and 0 <= probe_gap <= full_gap):
        lines.append(f"  so {100 * probe_gap:.1f} of the {100 * full_gap:.1f}-point gap comes from how the notebook's "
                     "head was trained, not from freezing the encoder.")
    else:
        lines.append("  how much of the gap comes from the head's training recipe is not established.")
    return lines


def across_seed_lines(results):
    """Over N seeds: how the seeds' own tests came out, by direction, and each other split's mean delta with its
    across-seed interval."""
    summary, headline = results.summary, results.headline
    n = headline["seeds"]
    first = headline["split"]
    sd = summary["deltas"][first]["across_seeds"]["seed_sd"]
    lines = [f"over {n} seeds, on {SPLIT_TITLES[first]}: the full fine-tune is ahead in {headline['seeds_ahead']}, "
             f"behind in {headline['seeds_behind']}, not established in {headline['seeds_not_established']} "
             f"of {n} (each seed's own test; all share one test set, so they are not {n} replications); "
             f"the seeds' deltas spread by {100 * sd:.1f} points (SD)."]
    for split, delta in summary["deltas"].items():
        if split == first:
            continue
        entry = delta["across_seeds"]
        lines.append(f"over {n} seeds, on {population(split, entry)}: "
                     f"{finding(entry['delta_accuracy'], entry, model=FULL, baseline=HEAD)}.")
        for kind, part in summary["by_kind"].get(split, {}).items():
            entry = part["across_seeds"]
            lines.append(f"  its {part['items']:,} {kind.replace('_', ' ')}: "
                         f"{finding(entry['delta_accuracy'], entry, model=FULL, baseline=HEAD)}.")
    return lines


def rule_lines(results):
    headline, first = results.headline, results.per_seed[0]
    split = headline["split"]
    families = {}
    for entry in [*first["significance"].values(),
                  *(p["significance"] for parts in first["by_kind"].values() for p in parts.values() if p),
                  *(first.get("probe_reference", {}).get("significance", {}).values()),
                  *(first.get("probe_reference", {}).get("versus_head_only", {}).get("significance", {}).values())]:
        families[entry["family"]] = entry["family_size"]
    lines = [f"(claimed: the 95% interval excludes 0 and the p-value is below {ALPHA}. The question's own test, full "
             f"fine-tune vs head-only on {SPLIT_TITLES[split]}, is decided alone; the other splits and parts "
             f"({families.get('secondary', 0)} tests) are tested only when it is claimed, Holm-corrected among "
             "themselves" + (f"; the probe's {families['probe']} comparisons are a family of their own"
                             if "probe" in families else "") + ": docs/statistics.md.)"]
    if headline["seeds"] > 1:
        lines.append(f"(over seeds: the mean of {headline['seeds']} seeds' deltas; its interval carries both the "
                     "seed-to-seed spread and the test set's sampling. A seed's own interval carries only the latter.)")
    else:
        lines.append("(one seed: its interval and test are conditional on one training run per arm; seed-to-seed "
                     "noise is not in them; --num_seeds 3 measures it)")
    return lines


def imbalance_lines(results):
    lines = []
    for name, split in results.eval_splits.items():
        if not split.close_to_balanced:
            title = SPLIT_TITLES[name]
            lines.append(f"{title[0].upper()}{title[1:]} is imbalanced ({100 * split.positive_share:.0f}% positive): "
                         "read its macro-F1 and balanced accuracy, which a constant answer cannot inflate (F1 of the "
                         "positive class can).")
    return lines


def verdict_lines(results):
    """The answer, its cautions, the first seed's findings (every seed's with several), the probe reference, the
    answer's spread over seeds, the imbalance notes and the rule."""
    per_seed = results.per_seed
    lines = [*answer_line(results), *caution_lines(results)]
    if results.summary:
        lines += across_seed_lines(results)
    for result in per_seed:  # the first seed in full; the others' headline lines
        lines += seed_lines(result, results.eval_splits, details=result is per_seed[0])
    lines += probe_lines(per_seed[0])
    return lines + imbalance_lines(results) + rule_lines(results)
