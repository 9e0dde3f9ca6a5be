"""Each run's metrics on each split, the deltas between runs, the majority-class floors, one seed's whole
comparison, and the summary over seeds."""
import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from sst2kit.names import LABEL_NAMES, PROBE, RUNS
from sst2kit.significance import decide_claims, paired_significance


def predicted_labels(prob_positive):
    """The decision rule for every model: positive when P(positive) > 0.5."""
    return (np.asarray(prob_positive) > 0.5).astype(int)


def classification_metrics(labels, preds):
    """Accuracy, F1 of the positive class, macro-F1, confusion matrix (rows: true, columns: predicted)."""
    return {
        "accuracy": float(accuracy_score(labels, preds)),
        "f1": float(f1_score(labels, preds, pos_label=1, zero_division=0)),
        "macro_f1": float(f1_score(labels, preds, average="macro", zero_division=0)),
        "confusion_matrix": confusion_matrix(labels, preds, labels=[0, 1]).tolist(),
        "report": classification_report(labels, preds, labels=[0, 1], target_names=list(LABEL_NAMES),
                                         digits=4, zero_division=0),
    }


def metric_delta(baseline, model):
    """Model minus baseline, as differences of 0-1 scores (0.05 is 5 points), for accuracy and F1; and the
    error-rate reduction: the share of the baseline's errors that the model removes (None when it made none)."""
    errors = 1 - baseline["accuracy"]
    return {
        "accuracy": model["accuracy"] - baseline["accuracy"],
        "error_rate_reduction": (model["accuracy"] - baseline["accuracy"]) / errors if errors > 0 else None,
        "f1": model["f1"] - baseline["f1"],
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


def accuracy_by_length(labels, preds, lengths):
    """Both runs' accuracy per token-count bucket, and the bucket's own majority-class floor (a constant answer's
    accuracy there: a 'length effect' can be no more than the label mix changing with length). Empty buckets are
    left out."""
    bucket = np.searchsorted(LENGTH_EDGES, lengths, side="left")
    names = [f"<={LENGTH_EDGES[0]}"] + [f"{lo + 1}-{hi}" for lo, hi in zip(LENGTH_EDGES, LENGTH_EDGES[1:])] + \
        [f">{LENGTH_EDGES[-1]}"]
    return [{"tokens": name, "items": int((bucket == b).sum()), "majority_floor": majority_floor(labels[bucket == b]),
             **{run: float(np.mean(preds[run][bucket == b] == labels[bucket == b])) for run in RUNS}}
            for b, name in enumerate(names) if (bucket == b).any()]


def compare_runs(seed, records, *, probs, eval_splits, resamples):
    """One seed's comparison. records: each run's training record; probs: each model's P(positive) per split
    (the two runs, and the probe reference when it was fitted); eval_splits: name -> EvalSplit.

    Every paired test of the seed (full fine-tune vs head-only per split and per part of a split; full fine-tune
    vs the probe; the probe vs head-only) is one family: claims are decided together, Holm-corrected."""
    preds = {model: {name: predicted_labels(p[name]) for name in eval_splits} for model, p in probs.items()}
    runs = {model: {**(records.get(model) or {}),
                    **{name: classification_metrics(split.labels, preds[model][name])
                       for name, split in eval_splits.items()}} for model in probs}

    def versus(baseline, model):
        return {"delta": {name: metric_delta(runs[baseline][name], runs[model][name]) for name in eval_splits},
                "significance": {name: paired_significance(split.labels, preds[baseline][name], preds[model][name],
                                                           units=split.units, unit_name=split.unit_name,
                                                           resamples=resamples, seed=seed)
                                 for name, split in eval_splits.items()}}

    head = versus("head_only", "full_finetune")
    result = {"seed": seed, "runs": {run: runs[run] for run in RUNS}, "deltas": head["delta"],
              "significance": head["significance"],
              "at_majority_floor": {run: [name for name, split in eval_splits.items()
                                          if at_floor(runs[run][name]["accuracy"], split.majority_floor,
                                                      len(split.labels))] for run in RUNS},
              "accuracy_by_length": {name: accuracy_by_length(split.labels, {run: preds[run][name] for run in RUNS},
                                                              split.lengths) for name, split in eval_splits.items()},
              "by_kind": {name: {kind: compare_on_part(split, {run: preds[run][name] for run in RUNS}, part=part,
                                                       resamples=resamples, seed=seed)
                                 for kind, part in split.parts.items()}
                          for name, split in eval_splits.items() if split.parts}}
    family = [*head["significance"].values(),
              *(part["significance"] for parts in result["by_kind"].values() for part in parts.values() if part)]
    if PROBE in probs:
        over_probe, probe_over_head = versus(PROBE, "full_finetune"), versus("head_only", PROBE)
        result["probe_reference"] = {"runs": runs[PROBE], **over_probe, "versus_head_only": probe_over_head}
        family += [*over_probe["significance"].values(), *probe_over_head["significance"].values()]
    decide_claims(family)
    return result


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


def summarize_seeds(per_seed):
    """Over seeds: mean and sample standard deviation of each run's accuracy and F1 and of the delta, every seed's
    delta, and in how many seeds a difference was claimed."""
    splits = list(per_seed[0]["significance"])
    summary = {run: {split: {metric: mean_std([s["runs"][run][split][metric] for s in per_seed])
                             for metric in ("accuracy", "f1")} for split in splits} for run in RUNS}
    summary["deltas"] = {split: {**{metric: mean_std([s["deltas"][split][metric] for s in per_seed])
                                    for metric in ("accuracy", "f1")},
                                 "per_seed_accuracy": [s["deltas"][split]["accuracy"] for s in per_seed],
                                 "seeds_claiming_a_difference": sum(s["significance"][split]["difference_claimed"]
                                                                    for s in per_seed)}
                         for split in splits}
    return summary
