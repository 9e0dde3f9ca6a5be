"""Metrics of one run, and how far to trust the difference between two runs on the same examples."""
import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from config import EVAL_SPLITS, LABEL_NAMES, RUNS


def predicted_labels(prob_positive):
    """The decision rule for both runs: positive when P(positive) > 0.5."""
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


def metric_delta(head_only, full_finetune):
    """Full fine-tune minus head-only, as a difference of 0-1 scores (0.05 is 5 points), for accuracy and F1;
    and the accuracy gain relative to head-only's, in %."""
    acc_h, acc_f = head_only["accuracy"], full_finetune["accuracy"]
    return {
        "accuracy": acc_f - acc_h,
        "accuracy_relative_pct": 100 * (acc_f - acc_h) / acc_h if acc_h else float("nan"),
        "f1": full_finetune["f1"] - head_only["f1"],
    }


def mcnemar_exact(head_correct, full_correct):
    """Two-sided exact McNemar test on paired right/wrong outcomes: only the discordant pairs carry evidence."""
    head_correct, full_correct = np.asarray(head_correct, bool), np.asarray(full_correct, bool)
    head_only_wins = int(np.sum(head_correct & ~full_correct))
    full_wins = int(np.sum(full_correct & ~head_correct))
    n = head_only_wins + full_wins
    p = 1.0 if n == 0 else binomtest(min(head_only_wins, full_wins), n, 0.5).pvalue
    return float(p), [head_only_wins, full_wins]


def bootstrap_delta_ci(head_correct, full_correct, resamples, seed):
    """Paired bootstrap 95% interval of accuracy(full) - accuracy(head-only).

    Per example the paired difference is -1, 0 or +1, so a resample's mean depends only on how many of each
    it drew: a multinomial draw with the observed shares is the same bootstrap, without n x resamples indices.
    """
    diff = np.asarray(full_correct, int) - np.asarray(head_correct, int)
    n = len(diff)
    shares = [np.mean(diff == -1), np.mean(diff == 0), np.mean(diff == 1)]
    counts = np.random.default_rng(seed).multinomial(n, shares, size=resamples)
    deltas = (counts[:, 2] - counts[:, 0]) / n
    low, high = np.percentile(deltas, [2.5, 97.5])
    return [float(low), float(high)]


def paired_significance(labels, head_preds, full_preds, resamples, seed):
    head_correct = np.asarray(head_preds) == np.asarray(labels)
    full_correct = np.asarray(full_preds) == np.asarray(labels)
    p, discordant = mcnemar_exact(head_correct, full_correct)
    return {"mcnemar_p": p, "delta_accuracy_ci95": bootstrap_delta_ci(head_correct, full_correct, resamples, seed),
            "discordant": discordant}


def compare_runs(seed, records, probs, labels, resamples):
    """One seed's comparison: each run's metrics on each split, the deltas, and paired significance.
    records: each run's training record; probs: each run's P(positive) per split; labels: per split."""
    preds = {run: {split: predicted_labels(probs[run][split]) for split in EVAL_SPLITS} for run in RUNS}
    runs = {run: {**records[run], **{split: classification_metrics(labels[split], preds[run][split])
                                     for split in EVAL_SPLITS}} for run in RUNS}
    head, full = runs["head_only"], runs["full_finetune"]
    return {"seed": seed, "runs": runs,
            "delta": metric_delta(head["test"], full["test"]),
            "delta_validation": metric_delta(head["validation"], full["validation"]),
            "significance": {split: paired_significance(labels[split], preds["head_only"][split],
                                                        preds["full_finetune"][split], resamples, seed)
                             for split in EVAL_SPLITS}}


def mean_std(values):
    values = np.asarray(values, float)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}


def summarize_seeds(per_seed):
    """Mean and sample standard deviation over seeds of each run's accuracy and F1, and of the delta."""
    summary = {run: {split: {metric: mean_std([s["runs"][run][split][metric] for s in per_seed])
                             for metric in ("accuracy", "f1")}
                     for split in EVAL_SPLITS}
               for run in RUNS}
    for key in ("delta", "delta_validation"):  # test and validation
        summary[key] = {metric: mean_std([s[key][metric] for s in per_seed]) for metric in ("accuracy", "f1")}
    return summary
