"""Each run's metrics on each split, its health, the deltas between runs, the majority-class floors, one seed's
whole comparison (its claims decided in three families, see significance.decide_claims), and the experiment's
answer over seeds."""
import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from sst2kit.names import LABEL_NAMES, PROBE, RUNS, headline_split
from sst2kit.significance import across_seeds, cluster_bootstrap_ci, decide_claims, paired_significance, withhold

# A run whose last logged training loss is this many times its first has diverged, even if no value was NaN:
# training that works lowers the loss; a learning rate far too high sends it up (0.68 -> 878 -> 67).
DIVERGED_LOSS_RATIO = 1.5


def predicted_labels(prob_positive):
    """The decision rule for every model: positive when P(positive) > 0.5."""
    return (np.asarray(prob_positive) > 0.5).astype(int)


def balanced_accuracy(labels, preds):
    """The mean of the recalls of the classes present: 0.5 for any constant answer, however imbalanced the split."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    recalls = [np.mean(preds[labels == label] == label) for label in (0, 1) if np.any(labels == label)]
    return float(np.mean(recalls)) if recalls else 0.0


def classification_metrics(labels, preds):
    """Accuracy, balanced accuracy, F1 of the positive class, macro-F1, the share answered positive, confusion
    matrix (rows: true, columns: predicted)."""
    return {
        "accuracy": float(accuracy_score(labels, preds)),
        "balanced_accuracy": balanced_accuracy(labels, preds),
        "f1": float(f1_score(labels, preds, pos_label=1, zero_division=0)),
        "macro_f1": float(f1_score(labels, preds, average="macro", zero_division=0)),
        "predicted_positive_share": float(np.mean(preds)) if len(preds) else 0.0,
        "confusion_matrix": confusion_matrix(labels, preds, labels=[0, 1]).tolist(),
        "report": classification_report(labels, preds, labels=[0, 1], target_names=list(LABEL_NAMES),
                                         digits=4, zero_division=0),
    }


def run_status(log_history, final_positive_share):
    """'ok', 'diverged' (its training loss ended far above where it started) or 'collapsed' (it answers one class
    to every validation item, where it did not when training started), and why, in words."""
    losses = [entry["loss"] for entry in log_history if "loss" in entry]
    if len(losses) >= 2 and losses[-1] > DIVERGED_LOSS_RATIO * losses[0]:
        return "diverged", (f"its training loss ended at {losses[-1]:.3g} after starting at {losses[0]:.3g} "
                            f"(peak {max(losses):.3g})")
    start = next((entry["eval_positive_share"] for entry in log_history if "eval_positive_share" in entry), None)
    if start is not None and 0 < start < 1 and final_positive_share in (0.0, 1.0):
        answer = LABEL_NAMES[int(final_positive_share)]
        return "collapsed", (f"it answers '{answer}' to every validation item, where it answered both at the start "
                             f"({100 * start:.0f}% positive)")
    return "ok", ""


def metric_delta(baseline, model, *, fixed, broken):
    """Model minus baseline, as differences of 0-1 scores (0.05 is 5 points), for accuracy and F1; the net
    error-rate reduction ((fixed - broken) / the baseline's errors: negative when the model breaks more than it
    fixes) and, beside it, the share of the baseline's errors the model fixes (None when it made none)."""
    total = int(np.sum(baseline["confusion_matrix"]))
    baseline_errors = total - int(np.trace(baseline["confusion_matrix"]))
    return {
        "accuracy": model["accuracy"] - baseline["accuracy"],
        "error_rate_reduction": (fixed - broken) / baseline_errors if baseline_errors else None,
        "errors_fixed_share": fixed / baseline_errors if baseline_errors else None,
        "f1": model["f1"] - baseline["f1"],
        "macro_f1": model["macro_f1"] - baseline["macro_f1"],
        "balanced_accuracy": model["balanced_accuracy"] - baseline["balanced_accuracy"],
    }


def majority_floor(labels):
    """Accuracy of always predicting this split's own most common label: what a model that learned nothing but
    a constant answer can score here, whichever class it is."""
    labels = np.asarray(labels)
    return float(max(np.mean(labels == 1), np.mean(labels == 0))) if len(labels) else 0.0


def at_floor(accuracy, floor, n):
    """No better than the majority floor: within one item or half a point of it, whichever is larger."""
    return accuracy <= floor + max(1 / max(n, 1), 0.005)


LENGTH_EDGES = (10, 20, 30, 40)  # tokens, [CLS] and [SEP] included: buckets up to 10, 11-20, ..., over 40


def accuracy_by_length(split, preds, *, resamples, seed):
    """Per token-count bucket: both runs' accuracy, the paired delta (full fine-tune minus head-only) with a 95%
    interval over the bucket's independent units, and the bucket's own majority-class floor (a constant answer's
    accuracy there: a 'length effect' can be no more than the label mix changing with length). Empty buckets
    are left out."""
    labels = split.labels
    bucket = np.searchsorted(LENGTH_EDGES, split.lengths, side="left")
    names = [f"<={LENGTH_EDGES[0]}"] + [f"{lo + 1}-{hi}" for lo, hi in zip(LENGTH_EDGES, LENGTH_EDGES[1:])] + \
        [f">{LENGTH_EDGES[-1]}"]
    rows = []
    for b, name in enumerate(names):
        inside = bucket == b
        if not inside.any():
            continue
        right = {run: preds[run][inside] == labels[inside] for run in RUNS}
        diff = right["full_finetune"].astype(float) - right["head_only"]
        units = np.unique(split.units[inside], return_inverse=True)[1]
        rows.append({"tokens": name, "items": int(inside.sum()), "majority_floor": majority_floor(labels[inside]),
                     **{run: float(np.mean(right[run])) for run in RUNS}, "delta": float(diff.mean()),
                     "delta_ci95": cluster_bootstrap_ci(diff, units, resamples=resamples, seed=seed)})
    return rows


def compare_runs(seed, records, *, probs, eval_splits, resamples):
    """One seed's comparison. records: each run's training record (with its status); probs: each model's
    P(positive) per split (the two runs, and the probe reference when it was fitted); eval_splits: name ->
    EvalSplit.

    Claims are decided in three families (significance.decide_claims): the headline split's full fine-tune vs
    head-only alone; the other splits and parts, tested only when that is claimed; the probe's comparisons. A
    run that diverged or collapsed makes no claim at all."""
    preds = {model: {name: predicted_labels(p[name]) for name in eval_splits} for model, p in probs.items()}
    runs = {model: {**(records.get(model) or {}),
                    **{name: classification_metrics(split.labels, preds[model][name])
                       for name, split in eval_splits.items()}} for model in probs}

    def versus(baseline, model):
        right = {m: {name: preds[m][name] == split.labels for name, split in eval_splits.items()}
                 for m in (baseline, model)}
        return {"delta": {name: metric_delta(runs[baseline][name], runs[model][name],
                                             fixed=int(np.sum(right[model][name] & ~right[baseline][name])),
                                             broken=int(np.sum(right[baseline][name] & ~right[model][name])))
                          for name in eval_splits},
                "significance": {name: paired_significance(split.labels, preds[baseline][name], preds[model][name],
                                                           units=split.units, unit_name=split.unit_name,
                                                           resamples=resamples, seed=seed)
                                 for name, split in eval_splits.items()}}

    head = versus("head_only", "full_finetune")
    result = {"seed": seed, "runs": {run: runs[run] for run in RUNS}, "deltas": head["delta"],
              "significance": head["significance"],
              "status": {run: {"status": (records.get(run) or {}).get("status", "ok"),
                               "why": (records.get(run) or {}).get("status_why", "")} for run in RUNS},
              "at_majority_floor": {run: [name for name, split in eval_splits.items()
                                          if at_floor(runs[run][name]["accuracy"], split.majority_floor,
                                                      len(split.labels))] for run in RUNS},
              "accuracy_by_length": {name: accuracy_by_length(split, {run: preds[run][name] for run in RUNS},
                                                              resamples=resamples, seed=seed)
                                     for name, split in eval_splits.items()},
              "by_kind": {name: {kind: compare_on_part(split, {run: preds[run][name] for run in RUNS}, part=part,
                                                       resamples=resamples, seed=seed)
                                 for kind, part in split.parts.items()}
                          for name, split in eval_splits.items() if split.parts}}
    first = headline_split(eval_splits)
    secondary = [*(entry for name, entry in head["significance"].items() if name != first),
                 *(part["significance"] for parts in result["by_kind"].values() for part in parts.values() if part)]
    reference, involving = [], {run: [] for run in RUNS}  # the probe's tests, and the run each one involves
    if PROBE in probs:
        over_probe, probe_over_head = versus(PROBE, "full_finetune"), versus("head_only", PROBE)
        result["probe_reference"] = {"runs": runs[PROBE], **over_probe, "versus_head_only": probe_over_head}
        involving = {"full_finetune": list(over_probe["significance"].values()),
                     "head_only": list(probe_over_head["significance"].values())}
        reference = [*involving["full_finetune"], *involving["head_only"]]
    decide_claims(primary=head["significance"][first], secondary=secondary, reference=reference)
    if broken_runs([result]):  # the question's tests involve both runs
        withhold([head["significance"][first], *secondary], broken_runs([result]))
    for run, entries in involving.items():
        if broken_runs([result], runs=(run,)):
            withhold(entries, broken_runs([result], runs=(run,)))
    return result


def broken_runs(per_seed, runs=RUNS):
    """Why no claim can be drawn from these seeds' runs ('' when every one is healthy): each run that diverged
    or collapsed, with its seed and what happened."""
    names = {"head_only": "head-only", "full_finetune": "full fine-tune"}
    return "; ".join(f"the {names[run]} run of seed {s['seed']} {s['status'][run]['status']}: "
                     f"{s['status'][run]['why']}"
                     for s in per_seed for run in runs if s["status"][run]["status"] != "ok")


def compare_on_part(split, preds, *, part, resamples, seed):
    """Both runs on a part of a split (its whole sentences, or its phrases): accuracies, the delta and its
    significance, units renumbered within the part. None for an empty part."""
    if not part.any():
        return None
    labels = split.labels[part]
    accuracy = {run: float(np.mean(preds[run][part] == labels)) for run in RUNS}
    units = np.unique(split.units[part], return_inverse=True)[1]
    return {"items": int(part.sum()), "accuracy": accuracy,
            "delta_accuracy": accuracy["full_finetune"] - accuracy["head_only"],
            "significance": paired_significance(labels, preds["head_only"][part], preds["full_finetune"][part],
                                                units=units, unit_name=split.unit_name, resamples=resamples,
                                                seed=seed)}


def mean_std(values):
    values = np.asarray(values, float)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}


def directions(per_seed, entries):
    """How the seeds' own tests came out, by direction: full fine-tune ahead (claimed, positive), behind
    (claimed, negative), not established (anything else, including withheld claims)."""
    ahead = sum(1 for s, e in zip(per_seed, entries) if e["difference_claimed"] and e["delta_accuracy_ci95"][0] > 0)
    behind = sum(1 for s, e in zip(per_seed, entries) if e["difference_claimed"] and e["delta_accuracy_ci95"][1] < 0)
    return {"seeds_ahead": ahead, "seeds_behind": behind, "seeds_not_established": len(entries) - ahead - behind}


def summarize_seeds(per_seed, per_seed_probs, eval_splits):
    """The experiment's answer over N seeds. Per run and split, the mean and sample SD of accuracy, balanced
    accuracy, F1 and macro-F1; per split and part, the mean delta with an interval across seeds and units
    (significance.across_seeds), every seed's delta, and how the seeds' own tests came out by direction. The
    across-seed claims are decided like one seed's: the headline split alone, the rest gated on it, and nothing
    claimed when any seed's run diverged or collapsed."""
    splits = list(eval_splits)
    metrics = ("accuracy", "balanced_accuracy", "f1", "macro_f1")
    summary = {run: {split: {metric: mean_std([s["runs"][run][split][metric] for s in per_seed])
                             for metric in metrics} for split in splits} for run in RUNS}

    def diffs(split, mask=slice(None)):
        labels = eval_splits[split].labels[mask]
        return np.array([(predicted_labels(probs["full_finetune"][split][mask]) == labels).astype(float)
                         - (predicted_labels(probs["head_only"][split][mask]) == labels)
                         for _, probs in per_seed_probs])

    summary["deltas"] = {}
    for split in splits:
        summary["deltas"][split] = {
            **{metric: mean_std([s["deltas"][split][metric] for s in per_seed]) for metric in ("accuracy", "f1")},
            "per_seed_accuracy": [s["deltas"][split]["accuracy"] for s in per_seed],
            **directions(per_seed, [s["significance"][split] for s in per_seed]),
            "across_seeds": {**across_seeds(diffs(split), eval_splits[split].units),
                             "resampled_unit": eval_splits[split].unit_name}}
    summary["by_kind"] = {}
    for split in splits:
        for kind, part in eval_splits[split].parts.items():
            if part.any():
                units = np.unique(eval_splits[split].units[part], return_inverse=True)[1]
                summary["by_kind"].setdefault(split, {})[kind] = {
                    "items": int(part.sum()), **directions(per_seed, [s["by_kind"][split][kind]["significance"]
                                                                      for s in per_seed]),
                    "across_seeds": {**across_seeds(diffs(split, part), units),
                                     "resampled_unit": eval_splits[split].unit_name}}
    first = headline_split(eval_splits)
    primary = summary["deltas"][first]["across_seeds"]
    secondary = [*(summary["deltas"][split]["across_seeds"] for split in splits if split != first),
                 *(part["across_seeds"] for parts in summary["by_kind"].values() for part in parts.values())]
    decide_claims(primary=primary, secondary=secondary, reference=[])
    broken = broken_runs(per_seed)
    if broken:
        withhold([primary, *secondary], broken)
    return summary
