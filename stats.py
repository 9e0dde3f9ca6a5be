"""Metrics of one run, and how far to trust the difference between two runs on the same examples."""
import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from config import DELTA_KEYS, LABEL_NAMES, RUNS, evaluated

ALPHA = 0.05
BLOCK = 2_000_000  # draws per chunk of resamples: bounds memory whatever the resample and unit counts


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


def mcnemar_exact(base_correct, model_correct):
    """Two-sided exact McNemar test on paired right/wrong outcomes: only the discordant pairs carry evidence."""
    base_correct, model_correct = np.asarray(base_correct, bool), np.asarray(model_correct, bool)
    base_wins = int(np.sum(base_correct & ~model_correct))
    model_wins = int(np.sum(model_correct & ~base_correct))
    n = base_wins + model_wins
    p = 1.0 if n == 0 else binomtest(min(base_wins, model_wins), n, 0.5).pvalue
    return float(p), [base_wins, model_wins]


def bootstrap_delta_ci(base_correct, model_correct, resamples, seed):
    """Paired bootstrap 95% interval of accuracy(model) - accuracy(baseline), items resampled.

    Per example the paired difference is -1, 0 or +1, so a resample's mean depends only on how many of each
    it drew: a multinomial draw with the observed shares is the same bootstrap, without n x resamples indices.
    """
    diff = np.asarray(model_correct, int) - np.asarray(base_correct, int)
    n = len(diff)
    shares = [np.mean(diff == -1), np.mean(diff == 0), np.mean(diff == 1)]
    counts = np.random.default_rng(seed).multinomial(n, shares, size=resamples)
    deltas = (counts[:, 2] - counts[:, 0]) / n
    low, high = np.percentile(deltas, [2.5, 97.5])
    return [float(low), float(high)]


def cluster_bootstrap_ci(diff, clusters, resamples, seed):
    """95% interval of the mean paired difference, whole clusters resampled (items within one are not
    independent): each resample draws as many clusters as there are, with replacement."""
    sums, sizes = np.bincount(clusters, weights=diff), np.bincount(clusters)
    rng, deltas = np.random.default_rng(seed), []
    chunk = max(1, BLOCK // len(sizes))
    for start in range(0, resamples, chunk):
        # the drawn clusters' indices (5x faster than multinomial counts of them, and the same bootstrap)
        draws = rng.integers(0, len(sizes), size=(min(chunk, resamples - start), len(sizes)))
        deltas.append(sums[draws].sum(1) / sizes[draws].sum(1))
    low, high = np.percentile(np.concatenate(deltas), [2.5, 97.5])
    return [float(low), float(high)]


def cluster_sign_flip_p(diff, clusters, resamples, seed):
    """Two-sided paired permutation test that respects clusters: under 'both models are as good', each
    cluster's summed difference is as likely to have the other sign, so its signs are flipped at random."""
    sums = np.bincount(clusters, weights=diff)
    observed = abs(sums.sum())
    if observed == 0:
        return 1.0
    rng, extreme = np.random.default_rng(seed), 0
    chunk = max(1, BLOCK // len(sums))
    for start in range(0, resamples, chunk):
        signs = rng.choice([-1.0, 1.0], size=(min(chunk, resamples - start), len(sums)))
        extreme += int(np.sum(np.abs(signs @ sums) >= observed - 1e-9))
    return (1 + extreme) / (1 + resamples)


def paired_significance(labels, base_preds, model_preds, resamples, seed, clusters=None):
    """How far to trust model minus baseline on these items: a 95% interval and a paired test, over independent
    units (sentences; or, with `clusters`, groups of nested phrases), and one verdict from both: a difference
    is claimed only when the interval excludes 0 and the test rejects 'no difference' at 5%."""
    base_correct = np.asarray(base_preds) == np.asarray(labels)
    model_correct = np.asarray(model_preds) == np.asarray(labels)
    mcnemar_p, discordant = mcnemar_exact(base_correct, model_correct)
    if clusters is None:
        interval = bootstrap_delta_ci(base_correct, model_correct, resamples, seed)
        p, test, unit, units = mcnemar_p, "exact McNemar", "sentences", len(labels)
    else:
        diff = model_correct.astype(float) - base_correct
        interval = cluster_bootstrap_ci(diff, clusters, resamples, seed)
        p = cluster_sign_flip_p(diff, clusters, resamples, seed)
        test, unit, units = "cluster sign-flip permutation", "clusters of nested phrases", int(clusters.max()) + 1
    excludes_zero = interval[0] > 0 or interval[1] < 0
    return {"delta_accuracy_ci95": interval, "p_value": float(p), "paired_test": test, "resampled_unit": unit,
            "independent_units": units, "discordant": discordant, "mcnemar_p_items": mcnemar_p,
            "difference_claimed": bool(excludes_zero and p < ALPHA)}


def majority_floor(train_labels, labels):
    """Accuracy of always predicting the training set's most common label."""
    majority = np.bincount(train_labels, minlength=2).argmax()
    return float(np.mean(np.asarray(labels) == majority))


def at_floor(accuracy, floor, n):
    """No better than the majority floor: within one item or half a point of it, whichever is larger."""
    return accuracy <= floor + max(1 / max(n, 1), 0.005)


def compare_on_part(labels, preds, part, clusters, resamples, seed):
    """Both runs on a part of a split (the test set's whole sentences, or its phrases): accuracies, the delta and
    its significance, clusters renumbered within the part. None for an empty part."""
    if not part.any():
        return None
    accuracy = {run: float(np.mean(preds[run][part] == labels[part])) for run in RUNS}
    part_clusters = None if clusters is None else np.unique(clusters[part], return_inverse=True)[1]
    return {"items": int(part.sum()), "accuracy": accuracy,
            "delta_accuracy": accuracy["full_finetune"] - accuracy["head_only"],
            "significance": paired_significance(labels[part], preds["head_only"][part], preds["full_finetune"][part],
                                                resamples, seed, part_clusters)}


LENGTH_EDGES = (10, 20, 30, 40)  # tokens, [CLS] and [SEP] included: buckets up to 10, 11-20, ..., over 40


def accuracy_by_length(labels, preds, lengths):
    """Both runs' accuracy per token-count bucket (buckets with no items left out)."""
    bucket = np.searchsorted(LENGTH_EDGES, lengths, side="left")
    names = [f"<={LENGTH_EDGES[0]}"] + [f"{lo + 1}-{hi}" for lo, hi in zip(LENGTH_EDGES, LENGTH_EDGES[1:])] + \
        [f">{LENGTH_EDGES[-1]}"]
    return [{"tokens": name, "items": int((bucket == b).sum()),
             **{run: float(np.mean(preds[run][bucket == b] == labels[bucket == b])) for run in RUNS}}
            for b, name in enumerate(names) if (bucket == b).any()]


def compare_runs(seed, records, probs, labels, resamples, clusters, floors, test_phrases, lengths):
    """One seed's comparison: each run's metrics on each split, the deltas, paired significance, and which runs sit
    at their split's majority floor; and on the test set's whole sentences and phrases apart. records: each run's
    training record (None for the probe reference); probs: each model's P(positive) per split; clusters: per split,
    a cluster id per item, or None; test_phrases: per test item, whether it is a phrase of another SST-2 item;
    lengths: per split, each item's token count. The splits are the keys of labels."""
    splits = evaluated(labels)
    preds = {run: {split: predicted_labels(p[split]) for split in splits} for run, p in probs.items()}
    runs = {run: {**(records.get(run) or {}), **{split: classification_metrics(labels[split], preds[run][split])
                                                  for split in splits}} for run in probs}

    def versus(baseline):
        return {"delta": {split: metric_delta(runs[baseline][split], runs["full_finetune"][split])
                          for split in splits},
                "significance": {split: paired_significance(labels[split], preds[baseline][split],
                                                            preds["full_finetune"][split], resamples, seed,
                                                            clusters[split]) for split in splits}}

    head = versus("head_only")
    result = {"seed": seed, "runs": {run: runs[run] for run in RUNS},
              **{DELTA_KEYS[split]: head["delta"][split] for split in splits},
              "significance": head["significance"],
              "at_majority_floor": {run: [split for split in splits
                                          if at_floor(runs[run][split]["accuracy"], floors[split],
                                                      len(labels[split]))] for run in RUNS},
              "accuracy_by_length": {split: accuracy_by_length(labels[split], {run: preds[run][split] for run in RUNS},
                                                               lengths[split]) for split in splits},
              "test_by_kind": {kind: compare_on_part(labels["test"], {run: preds[run]["test"] for run in RUNS}, part,
                                                     clusters["test"], resamples, seed)
                               for kind, part in (("whole_sentences", ~test_phrases), ("phrases", test_phrases))}}
    if "probe" in probs:
        result["probe_reference"] = {"runs": runs["probe"], **versus("probe")}
    return result


def mean_std(values):
    values = np.asarray(values, float)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}


def summarize_seeds(per_seed):
    """Over seeds: mean and sample standard deviation of each run's accuracy and F1 and of the delta, every seed's
    delta, and in how many seeds a difference was claimed (interval and test agreeing)."""
    splits = evaluated(per_seed[0]["significance"])
    summary = {run: {split: {metric: mean_std([s["runs"][run][split][metric] for s in per_seed])
                             for metric in ("accuracy", "f1")}
                     for split in splits}
               for run in RUNS}
    for split in splits:
        key = DELTA_KEYS[split]
        summary[key] = {metric: mean_std([s[key][metric] for s in per_seed]) for metric in ("accuracy", "f1")}
        summary[key]["per_seed_accuracy"] = [s[key]["accuracy"] for s in per_seed]
        summary[key]["seeds_claiming_a_difference"] = sum(s["significance"][split]["difference_claimed"]
                                                          for s in per_seed)
    return summary
