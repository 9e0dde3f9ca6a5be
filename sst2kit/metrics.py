"""Each run's metrics on each split, its health, the deltas between runs, the majority-class floors,
one seed's whole comparison (its claims decided in three families, see significance.decide_claims),
and the experiment's answer over seeds."""

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from sst2kit.health import STATUS_VERBS
from sst2kit.names import LABEL_NAMES, PROBE, RUNS, headline_split
from sst2kit.significance import (
    across_seeds,
    cluster_bootstrap_ci,
    decide_claims,
    paired_significance,
    withhold,
)


def predicted_labels(prob_positive):
    """The decision rule for every model: positive when P(positive) > 0.5."""
    return (np.asarray(prob_positive) > 0.5).astype(int)


def balanced_accuracy(labels, preds):
    """The mean of the recalls of the classes present: 0.5 for a constant answer when both classes
    are present, however imbalanced the split; on a one-class split, that class's recall (1.0 or 0.0
    for a constant answer)."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    recalls = [
        np.mean(preds[labels == label] == label) for label in (0, 1) if np.any(labels == label)
    ]
    return float(np.mean(recalls)) if recalls else 0.0


def classification_metrics(labels, preds):
    """Accuracy, balanced accuracy, F1 of the positive class, macro-F1, the share answered positive,
    confusion matrix (rows: true, columns: predicted)."""
    return {
        "accuracy": float(accuracy_score(labels, preds)),
        "balanced_accuracy": balanced_accuracy(labels, preds),
        "f1": float(f1_score(labels, preds, pos_label=1, zero_division=0)),
        "macro_f1": float(f1_score(labels, preds, average="macro", zero_division=0)),
        "predicted_positive_share": float(np.mean(preds)) if len(preds) else 0.0,
        "confusion_matrix": confusion_matrix(labels, preds, labels=[0, 1]).tolist(),
        "report": classification_report(
            labels, preds, labels=[0, 1], target_names=list(LABEL_NAMES), digits=4, zero_division=0
        ),
    }


def metric_delta(baseline, model, *, fixed, broken):
    """Model minus baseline, as differences of 0-1 scores (0.05 is 5 points), for accuracy and F1;
    the net error-rate reduction ((fixed - broken) / the baseline's errors: negative when the model
    breaks more than it fixes) and, beside it, the share of the baseline's errors the model fixes
    (None when it made none)."""
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
    """Accuracy of always predicting this split's own most common label: what a model that learned
    nothing but a constant answer can score here, whichever class it is."""
    labels = np.asarray(labels)
    return float(max(np.mean(labels == 1), np.mean(labels == 0))) if len(labels) else 0.0


def at_floor(accuracy, floor, n):
    """No better than the majority floor: within one item or half a point of it, whichever is
    larger."""
    return accuracy <= floor + max(1 / max(n, 1), 0.005)


# tokens, [CLS] and [SEP] included: buckets up to 10, 11-20, ..., over 40
LENGTH_EDGES = (10, 20, 30, 40)
# fewer independent units in a bucket and its interval would only show noise: none is given
MIN_BUCKET_UNITS = 10


def accuracy_by_length(split, per_seed_preds, *, resamples, seed):
    """Per token-count bucket: both runs' accuracy and the paired delta (full fine-tune minus
    head-only), each averaged over the seeds given (a list of {run: predictions}), with 95%
    intervals over the bucket's independent units (None for a bucket of fewer than MIN_BUCKET_UNITS
    units), and the bucket's own majority-class floor (a constant answer's accuracy there: a 'length
    effect' can be no more than the label mix changing with length). Empty buckets are left out."""
    labels = split.labels
    bucket = np.searchsorted(LENGTH_EDGES, split.lengths, side="left")
    names = (
        [f"<={LENGTH_EDGES[0]}"]
        + [f"{lo + 1}-{hi}" for lo, hi in zip(LENGTH_EDGES, LENGTH_EDGES[1:])]
        + [f">{LENGTH_EDGES[-1]}"]
    )
    rows = []
    for b, name in enumerate(names):
        inside = bucket == b
        if not inside.any():
            continue
        right = {
            run: np.mean([preds[run][inside] == labels[inside] for preds in per_seed_preds], 0)
            for run in RUNS
        }
        units = np.unique(split.units[inside], return_inverse=True)[1]
        enough = units.max() + 1 >= MIN_BUCKET_UNITS

        def interval(values):
            return (
                cluster_bootstrap_ci(values, units, resamples=resamples, seed=seed)
                if enough
                else None
            )

        diff = right["full_finetune"] - right["head_only"]
        rows.append(
            {
                "tokens": name,
                "items": int(inside.sum()),
                "units": int(units.max() + 1),
                "majority_floor": majority_floor(labels[inside]),
                **{run: float(np.mean(right[run])) for run in RUNS},
                **{f"{run}_ci95": interval(right[run]) for run in RUNS},
                "delta": float(diff.mean()),
                "delta_ci95": interval(diff),
            }
        )
    return rows


def compare_runs(seed, records, *, probs, eval_splits, resamples):
    """One seed's comparison. records: each run's training record (with its status); probs: each
    model's P(positive) per split (the two runs, and the probe reference when it was fitted);
    eval_splits: name -> EvalSplit.

    Claims are decided in three families (significance.decide_claims): the headline split's full
    fine-tune vs head-only alone; the other splits and parts, tested only when that is claimed; the
    probe's comparisons. A run that diverged or collapsed makes no claim at all."""
    preds = {
        model: {name: predicted_labels(p[name]) for name in eval_splits}
        for model, p in probs.items()
    }
    runs = {
        model: {
            **(records.get(model) or {}),
            **{
                name: classification_metrics(split.labels, preds[model][name])
                for name, split in eval_splits.items()
            },
        }
        for model in probs
    }

    def versus(baseline, model):
        right = {
            m: {name: preds[m][name] == split.labels for name, split in eval_splits.items()}
            for m in (baseline, model)
        }
        return {
            "delta": {
                name: metric_delta(
                    runs[baseline][name],
                    runs[model][name],
                    fixed=int(np.sum(right[model][name] & ~right[baseline][name])),
                    broken=int(np.sum(right[baseline][name] & ~right[model][name])),
                )
                for name in eval_splits
            },
            "significance": {
                name: paired_significance(
                    split.labels,
                    preds[baseline][name],
                    preds[model][name],
                    units=split.units,
                    unit_name=split.unit_name,
                    resamples=resamples,
                    seed=seed,
                )
                for name, split in eval_splits.items()
            },
        }

    head = versus("head_only", "full_finetune")
    result = {
        "seed": seed,
        "runs": {run: runs[run] for run in RUNS},
        "deltas": head["delta"],
        "significance": head["significance"],
        "status": {
            run: {
                "status": (records.get(run) or {}).get("status", "ok"),
                "why": (records.get(run) or {}).get("status_why", ""),
                "advice": (records.get(run) or {}).get("status_advice", ""),
            }
            for run in RUNS
        },
        "at_majority_floor": {
            run: [
                name
                for name, split in eval_splits.items()
                if at_floor(runs[run][name]["accuracy"], split.majority_floor, len(split.labels))
            ]
            for run in RUNS
        },
        "accuracy_by_length": {
            name: accuracy_by_length(
                split, [{run: preds[run][name] for run in RUNS}], resamples=resamples, seed=seed
            )
            for name, split in eval_splits.items()
        },
        "by_kind": {
            name: {
                kind: compare_on_part(
                    split,
                    {run: preds[run][name] for run in RUNS},
                    part=part,
                    resamples=resamples,
                    seed=seed,
                )
                for kind, part in split.parts.items()
            }
            for name, split in eval_splits.items()
            if split.parts
        },
    }
    first = headline_split(eval_splits)
    secondary = [
        *(entry for name, entry in head["significance"].items() if name != first),
        *(
            part["significance"]
            for parts in result["by_kind"].values()
            for part in parts.values()
            if part
        ),
    ]
    # the probe's tests, and the run each one involves
    reference, involving = [], {run: [] for run in RUNS}
    if PROBE in probs:
        over_probe, probe_over_head = versus(PROBE, "full_finetune"), versus("head_only", PROBE)
        result["probe_reference"] = {
            "runs": runs[PROBE],
            **over_probe,
            "versus_head_only": probe_over_head,
        }
        involving = {
            "full_finetune": list(over_probe["significance"].values()),
            "head_only": list(probe_over_head["significance"].values()),
        }
        reference = [*involving["full_finetune"], *involving["head_only"]]
    decide_claims(primary=head["significance"][first], secondary=secondary, reference=reference)
    withhold_broken(
        [result], question=[head["significance"][first], *secondary], involving=involving
    )
    return result


def withhold_broken(per_seed, *, question, involving):
    """No claim from a run that broke: every test of the question (it involves both runs) and each
    probe test that involves the broken run says why (significance.withhold)."""
    for tests, runs in [(question, RUNS), *((tests, (run,)) for run, tests in involving.items())]:
        broken = broken_runs(per_seed, runs)
        if broken:
            withhold(
                tests,
                "; ".join(f"{name}: {why}" for name, why in broken),
                "; ".join(name for name, _ in broken),
            )


def broken_runs(per_seed, runs=RUNS):
    """Each of these seeds' runs that broke (health.py), as ('the head-only run of seed 42
    collapsed', why)."""
    names = {"head_only": "head-only", "full_finetune": "full fine-tune"}
    return [
        (
            f"the {names[run]} run of seed {s['seed']} {STATUS_VERBS[s['status'][run]['status']]}",
            s["status"][run]["why"],
        )
        for s in per_seed
        for run in runs
        if s["status"][run]["status"] != "ok"
    ]


def compare_on_part(split, preds, *, part, resamples, seed):
    """Both runs on a part of a split (its whole sentences, or its phrases): accuracies, the delta
    and its significance, units renumbered within the part. None for an empty part."""
    if not part.any():
        return None
    labels = split.labels[part]
    accuracy = {run: float(np.mean(preds[run][part] == labels)) for run in RUNS}
    units = np.unique(split.units[part], return_inverse=True)[1]
    return {
        "items": int(part.sum()),
        "accuracy": accuracy,
        "delta_accuracy": accuracy["full_finetune"] - accuracy["head_only"],
        "significance": paired_significance(
            labels,
            preds["head_only"][part],
            preds["full_finetune"][part],
            units=units,
            unit_name=split.unit_name,
            resamples=resamples,
            seed=seed,
        ),
    }


def mean_std(values):
    values = np.asarray(values, float)
    return {
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
    }


SEED_COUNTS = ("seeds_ahead", "seeds_behind", "seeds_withheld", "seeds_not_established")


def directions(entries):
    """How the seeds' own tests came out, by direction: full fine-tune ahead (claimed, positive),
    behind (claimed, negative), withheld (a run broke), not established (the rest)."""
    ahead = sum(1 for e in entries if e["difference_claimed"] and e["delta_accuracy_ci95"][0] > 0)
    behind = sum(1 for e in entries if e["difference_claimed"] and e["delta_accuracy_ci95"][1] < 0)
    withheld = sum(1 for e in entries if e.get("withheld"))
    return {
        "seeds_ahead": ahead,
        "seeds_behind": behind,
        "seeds_withheld": withheld,
        "seeds_not_established": len(entries) - ahead - behind - withheld,
    }


def summarize_seeds(per_seed, per_seed_probs, eval_splits, *, resamples, seed):
    """The experiment's answer over N seeds. Per run and split, the mean and sample SD of accuracy,
    balanced accuracy, F1 and macro-F1; per split and part, the mean delta with an interval across
    seeds and units (significance.across_seeds), every seed's delta, and how the seeds' own tests
    came out by direction; the probe's comparisons across seeds the same way. The across-seed claims
    are decided like one seed's: the headline split alone, the rest and the probe gated on it, and
    nothing claimed from a run that broke."""
    splits = list(eval_splits)
    metrics = ("accuracy", "balanced_accuracy", "f1", "macro_f1")
    summary = {
        run: {
            split: {
                metric: mean_std([s["runs"][run][split][metric] for s in per_seed])
                for metric in metrics
            }
            for split in splits
        }
        for run in RUNS
    }

    def across(split, model="full_finetune", baseline="head_only", mask=slice(None)):
        """model minus baseline over every seed, on a split (or a part of it: mask)."""
        labels, units = eval_splits[split].labels[mask], eval_splits[split].units[mask]
        diffs = np.array(
            [
                (predicted_labels(probs[model][split][mask]) == labels).astype(float)
                - (predicted_labels(probs[baseline][split][mask]) == labels)
                for _, probs in per_seed_probs
            ]
        )
        return {
            **across_seeds(diffs, np.unique(units, return_inverse=True)[1]),
            "resampled_unit": eval_splits[split].unit_name,
        }

    summary["deltas"] = {}
    for split in splits:
        summary["deltas"][split] = {
            **{
                metric: mean_std([s["deltas"][split][metric] for s in per_seed])
                for metric in ("accuracy", "balanced_accuracy", "f1")
            },
            "per_seed_accuracy": [s["deltas"][split]["accuracy"] for s in per_seed],
            **directions([s["significance"][split] for s in per_seed]),
            "across_seeds": across(split),
        }
    summary["by_kind"] = {}
    for split in splits:
        for kind, part in eval_splits[split].parts.items():
            if part.any():
                summary["by_kind"].setdefault(split, {})[kind] = {
                    "items": int(part.sum()),
                    **directions([s["by_kind"][split][kind]["significance"] for s in per_seed]),
                    "across_seeds": across(split, mask=part),
                }
    summary["accuracy_by_length"] = {
        split: accuracy_by_length(
            eval_splits[split],
            [
                {run: predicted_labels(probs[run][split]) for run in RUNS}
                for _, probs in per_seed_probs
            ],
            resamples=resamples,
            seed=seed,
        )
        for split in splits
    }
    reference = {}
    if all(PROBE in probs for _, probs in per_seed_probs):
        summary["probe_reference"] = {
            "full_over_probe": {split: across(split, baseline=PROBE) for split in splits},
            "probe_over_head_only": {split: across(split, model=PROBE) for split in splits},
        }
        reference = summary["probe_reference"]
    first = headline_split(eval_splits)
    primary = summary["deltas"][first]["across_seeds"]
    secondary = [
        *(summary["deltas"][split]["across_seeds"] for split in splits if split != first),
        *(part["across_seeds"] for parts in summary["by_kind"].values() for part in parts.values()),
    ]
    probe_tests = {
        "full_finetune": list(reference.get("full_over_probe", {}).values()),
        "head_only": list(reference.get("probe_over_head_only", {}).values()),
    }
    decide_claims(
        primary=primary,
        secondary=secondary,
        reference=[*probe_tests["full_finetune"], *probe_tests["head_only"]],
    )
    withhold_broken(per_seed, question=[primary, *secondary], involving=probe_tests)
    return summary
