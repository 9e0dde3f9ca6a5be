"""Each run's metrics on a split: accuracy and the rest, the deltas between two runs, the
majority-class floor, and accuracy by sentence length with its intervals."""

from dataclasses import dataclass

import numpy as np

from sst2kit.names import FULL_FINETUNE, HEAD_ONLY, LABEL_NAMES, RUNS
from sst2kit.significance import cluster_bootstrap_ci


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


@dataclass
class Metrics:
    """A model's answers on one split scored."""

    accuracy: float
    balanced_accuracy: float
    f1: float  # of the positive class
    macro_f1: float
    predicted_positive_share: float
    confusion_matrix: list[list[int]]  # rows true, columns predicted
    report: str  # scikit-learn's classification_report, to the digit


@dataclass
class MetricDelta:
    """A model minus a baseline on one split, as differences of 0-1 scores (0.05 is 5 points)."""

    accuracy: float
    f1: float
    macro_f1: float
    balanced_accuracy: float
    # net: (fixed - broken) / the baseline's errors, negative when the model breaks more than it
    # fixes; None when the baseline made none
    error_rate_reduction: float | None
    errors_fixed_share: float | None  # the share of the baseline's errors the model fixes


def classification_metrics(labels, preds):
    """Accuracy, balanced accuracy, F1 of the positive class, macro-F1 (over the classes present in
    the labels or the answers), the share answered positive, the confusion matrix (rows: true,
    columns: predicted), and the per-class report. Counted from the confusion matrix:
    scikit-learn's own metric functions validate their input at ten times the cost, which thousands
    of simulated comparisons pay (tests/test_stats.py checks they agree)."""
    labels, preds = np.asarray(labels, int), np.asarray(preds, int)
    matrix = np.bincount(2 * labels + preds, minlength=4).reshape(2, 2)
    present = [c for c in (0, 1) if matrix[c, :].sum() or matrix[:, c].sum()]
    f1 = per_class_scores(matrix)[2]
    return Metrics(
        accuracy=float(np.mean(labels == preds)) if len(labels) else 0.0,
        balanced_accuracy=balanced_accuracy(labels, preds),
        f1=float(f1[1]),
        macro_f1=float(np.mean(f1[present])) if present else 0.0,
        predicted_positive_share=float(np.mean(preds)) if len(preds) else 0.0,
        confusion_matrix=matrix.tolist(),
        report=per_class_report(matrix),
    )


def divided(part, whole):
    """part / whole elementwise, 0 where whole is 0 (scikit-learn's zero_division=0)."""
    part, whole = np.asarray(part, float), np.asarray(whole, float)
    return np.divide(part, whole, out=np.zeros_like(part), where=whole != 0)


def per_class_scores(matrix):
    """Precision, recall and F1 of each class from the confusion matrix, as rows of a 3 x 2 array,
    0 where a score is undefined: F1 is 2 TP / (2 TP + FP + FN), 0 for a class never answered nor
    present."""
    right, true, answered = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
    return np.stack(
        [divided(right, answered), divided(right, true), divided(2 * right, true + answered)]
    )


def per_class_report(matrix, digits=4):
    """scikit-learn's classification_report for labels 0 and 1 (zero_division=0), the same text to
    the digit: each class's precision, recall, F1 and support, then accuracy and the macro and
    support-weighted averages, counted with its formulas from the confusion matrix. One difference:
    where no item is right, scikit-learn prints the supports as floats (2.0); here they stay 2."""
    matrix = np.asarray(matrix)
    scores, true = per_class_scores(matrix), matrix.sum(axis=1)
    items = int(true.sum())
    width = max(len("weighted avg"), *map(len, LABEL_NAMES), digits)
    head = "{:>{width}s} " + " {:>9}" * 4
    row = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
    text = head.format("", "precision", "recall", "f1-score", "support", width=width) + "\n\n"
    for label, name in enumerate(LABEL_NAMES):
        text += row.format(name, *scores[:, label], true[label], width=width, digits=digits)
    accuracy = float(divided(np.trace(matrix), items))
    text += "\n" + ("{:>{width}s} " + " {:>9}" * 2 + " {:>9.{digits}f} {:>9}\n").format(
        "accuracy", "", "", accuracy, items, width=width, digits=digits
    )
    text += row.format("macro avg", *scores.mean(axis=1), items, width=width, digits=digits)
    weighted = divided((scores * true).sum(axis=1), items)
    return text + row.format("weighted avg", *weighted, items, width=width, digits=digits)


def metric_delta(baseline, model, *, fixed, broken):
    """Model minus baseline (two Metrics); fixed and broken: the items the model answers right
    where the baseline was wrong, and the reverse."""
    baseline_errors = int(np.sum(baseline.confusion_matrix)) - int(
        np.trace(baseline.confusion_matrix)
    )
    return MetricDelta(
        accuracy=model.accuracy - baseline.accuracy,
        f1=model.f1 - baseline.f1,
        macro_f1=model.macro_f1 - baseline.macro_f1,
        balanced_accuracy=model.balanced_accuracy - baseline.balanced_accuracy,
        error_rate_reduction=(fixed - broken) / baseline_errors if baseline_errors else None,
        errors_fixed_share=fixed / baseline_errors if baseline_errors else None,
    )


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


BUCKET_NAMES = (
    [f"<={LENGTH_EDGES[0]}"]
    + [f"{lo + 1}-{hi}" for lo, hi in zip(LENGTH_EDGES, LENGTH_EDGES[1:])]
    + [f">{LENGTH_EDGES[-1]}"]
)


def accuracy_by_length(split, per_seed_preds, *, resamples, seed):
    """Per token-count bucket: both runs' accuracy and the paired delta (full fine-tune minus
    head-only), each averaged over the seeds given (a list of {run: predictions}), with 95%
    intervals over the bucket's independent units (None for a bucket of fewer than MIN_BUCKET_UNITS
    units), and the bucket's own majority-class floor (a constant answer's accuracy there: a 'length
    effect' can be no more than the label mix changing with length). Empty buckets are left out."""
    bucket = np.searchsorted(LENGTH_EDGES, split.lengths, side="left")
    return [
        bucket_row(name, split, per_seed_preds, inside=bucket == b, resamples=resamples, seed=seed)
        for b, name in enumerate(BUCKET_NAMES)
        if np.any(bucket == b)
    ]


def bucket_row(name, split, per_seed_preds, *, inside, resamples, seed):
    labels = split.labels[inside]
    right = {
        run: np.mean([preds[run][inside] == labels for preds in per_seed_preds], 0) for run in RUNS
    }
    units = np.unique(split.units[inside], return_inverse=True)[1]
    enough = units.max() + 1 >= MIN_BUCKET_UNITS

    def interval(values):
        return (
            cluster_bootstrap_ci(values, units, resamples=resamples, seed=seed) if enough else None
        )

    diff = right[FULL_FINETUNE] - right[HEAD_ONLY]
    return {
        "tokens": name,
        "items": int(inside.sum()),
        "units": int(units.max() + 1),
        "majority_floor": majority_floor(labels),
        **{run: float(np.mean(right[run])) for run in RUNS},
        **{f"{run}_ci95": interval(right[run]) for run in RUNS},
        "delta": float(diff.mean()),
        "delta_ci95": interval(diff),
    }
