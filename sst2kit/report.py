"""What is printed: the setup, then the card's three outputs (each run's metrics, the confusion matrices, the
accuracy delta with its evidence and the verdict), the summary over seeds and the examples that flipped. Every
print_ function prints on the main process and returns its lines, which report.md keeps."""
import numpy as np

from sst2kit import processes
from sst2kit.console import say
from sst2kit.names import LABEL_NAMES, PROBE_TITLE, RUN_TITLES, RUNS, SPLIT_TITLES, evaluated
from sst2kit.phrases import shared_items
from sst2kit.significance import p_text
from sst2kit.verdict import verdict_lines


def shown(lines):
    for line in lines:
        say(line)
    return lines


def cut(text, most=110):
    return text if len(text) <= most else text[:most - 1] + "…"


def print_setup(cfg, run_dir, sizes, eval_splits, balance, new_head_tensors, device, precision,
                graphs_off_because, mode):
    """What the run works on: the model, the splits, their label mixes, the leakage and independent units, where
    it runs."""
    lines = [f"model: {cfg.model_name}",
             f"  its pretrained encoder, with a new two-label head ({len(new_head_tensors)} tensors, initialised as "
             "expected; named in results.json)",
             f"split '{cfg.split}': " + ", ".join(f"{name} {n:,}" for name, n in sizes.items()),
             "train labels: " + ", ".join(f"{k} {balance['train_label_counts'][k]:,} ({100 * v:.1f}%)"
                                          for k, v in balance["train_label_shares"].items())]
    if "external_test" in eval_splits:
        external = eval_splits["external_test"].frame["sentence"]
        lines.append(f"external test set: {len(external):,} labelled sentences from")
        lines.append(f"  {cfg.external_test_file}")
        shared = shared_items(external, eval_splits["validation"].frame["sentence"])
        if shared:
            lines.append(f"warning: {shared:,} of the external test set's sentences are also GLUE validation "
                         "sentences: it is meant to be a set of its own (such as the SST-2 test sentences)")
    for name, split in eval_splits.items():
        b, unit_sizes = balance[name], np.bincount(split.units)
        lines.append(f"{name}: {100 * b['positive_share']:.1f}% positive, majority-class floor "
                     f"{100 * b['majority_class_floor']:.1f}%; {len(unit_sizes):,} independent {split.unit_name}"
                     + (f" (largest {unit_sizes.max():,} items)" if unit_sizes.max() > 1 else "")
                     + f"; {100 * split.leakage:.1f}% of items are phrases of training items")
        if split.duplicated_items:
            lines.append(f"warning: {split.duplicated_items:,} of {split.title}'s items repeat another of its items "
                         "word for word: a repeat is no new evidence, so it counts in its original's unit")
        if len(split.labels) < 30 or len(set(split.labels.tolist())) < 2:
            lines.append(f"warning: {split.title} has {len(split.labels)} item(s), of {len(set(split.labels.tolist()))}"
                         " class(es): its scores and intervals say little; use more data (subset_fraction)")
    lines += [f"results go to {run_dir}",
              f"device: {device}, precision: {precision.name}, CUDA graphs: {graphs_off_because or 'on'}, "
              f"processes: {processes.count()}" + {"seeds": ", each training whole seeds alone",
                                                   "data": ", data-parallel: each trains on a shard of every batch "
                                                           f"(effective batch {cfg.per_device_train_batch_size} x "
                                                           f"{processes.count()})"}.get(mode, "")]
    if device.startswith("cpu") and cfg.subset_fraction is None:
        lines.append("warning: no GPU; a full run is slow on a CPU. Try --subset_fraction 0.05 for a quick look.")
    return shown(lines)


def print_probe_fit(fit):
    return shown([f"{PROBE_TITLE}: C = {fit['C']:.3g} chosen by {fit['folds']}-fold cross-validation on "
                  f"{fit['cross_validated_on']:,} training items, fitted on all {fit['train_items']:,} "
                  f"({fit['seconds']:.1f}s, on the CPU beside the training)"])


def print_metrics(result):
    lines = [f"\n=== metrics (seed {result['seed']}) ==="]
    for run in RUNS:
        for split in result["significance"]:
            m = result["runs"][run][split]
            lines.append(f"{RUN_TITLES[run]:27} {split:14} accuracy {m['accuracy']:.4f}  F1 {m['f1']:.4f}  "
                         f"macro-F1 {m['macro_f1']:.4f}")
    return shown(lines)


def print_confusion_matrices(result):
    lines = [f"\n=== confusion matrices (seed {result['seed']}; rows true, columns predicted: "
             f"{' / '.join(LABEL_NAMES)}) ==="]
    for run in RUNS:
        for split in result["significance"]:
            (tn, fp), (fn, tp) = result["runs"][run][split]["confusion_matrix"]
            lines.append(f"{RUN_TITLES[run]:27} {split:14} {LABEL_NAMES[0]} [{tn:6,d} {fp:6,d}]   "
                         f"{LABEL_NAMES[1]} [{fn:6,d} {tp:6,d}]")
    return shown(lines)


def reduction(delta):
    share = delta["error_rate_reduction"]
    return f"{100 * share:+.1f}%" if share is not None else "n/a"


def interval_line(split, s, comparison):
    lo, hi = (100 * x for x in s["delta_accuracy_ci95"])
    return (f"{comparison:22} {split:14} [{lo:+6.2f}, {hi:+6.2f}]  {s['independent_units']:6,} "
            f"{s['resampled_unit']:17} {s['paired_test']} {p_text(s)}, Holm {p_text(s, 'p_value_holm')}")


def print_delta(result, eval_splits, balance, summary=None):
    """The accuracy delta per split with its interval and test, the probe reference, then the verdict."""
    runs, splits = result["runs"], list(result["significance"])
    first = f", the first of {len(summary['deltas'][splits[0]]['per_seed_accuracy'])}" if summary else ""
    lines = [f"\n=== accuracy delta (seed {result['seed']}{first}) ===",
             f"{'':24}{'head-only':>10}{'full':>10}{'delta (points)':>16}{'error-rate reduction':>22}{'positive':>10}"]
    for split in splits:
        h, f, delta = runs["head_only"][split], runs["full_finetune"][split], result["deltas"][split]
        lines.append(f"{split + ' accuracy':24}{h['accuracy']:10.4f}{f['accuracy']:10.4f}"
                     f"{100 * delta['accuracy']:+16.2f}{reduction(delta):>22}"
                     f"{100 * balance[split]['positive_share']:9.1f}%")
        for kind, part in result["by_kind"].get(split, {}).items():
            if part:
                lines.append(f"{'  ' + kind.replace('_', ' '):24}{part['accuracy']['head_only']:10.4f}"
                             f"{part['accuracy']['full_finetune']:10.4f}{100 * part['delta_accuracy']:+16.2f}"
                             f"    ({part['items']:,} items)")
    probe = result.get("probe_reference")
    if probe:
        lines.append(f"\n{'':24}{'probe':>10}{'full':>10}{'delta (points)':>16}{'error-rate reduction':>22}")
        for split in splits:
            d = probe["delta"][split]
            lines.append(f"{split + ' accuracy':24}{probe['runs'][split]['accuracy']:10.4f}"
                         f"{runs['full_finetune'][split]['accuracy']:10.4f}{100 * d['accuracy']:+16.2f}"
                         f"{reduction(d):>22}")
    lines.append(f"\n{'accuracy delta':22} {'':14} {'95% CI (points)':18}  {'over':24} paired test")
    for split in splits:
        lines.append(interval_line(split, result["significance"][split], "full - head-only"))
    if probe:
        for split in splits:
            lines.append(interval_line(split, probe["significance"][split], "full - probe"))
        for split in splits:
            lines.append(interval_line(split, probe["versus_head_only"]["significance"][split],
                                       "probe - head-only"))
    lines.append("\n=== verdict ===")
    return shown(lines + verdict_lines(result, eval_splits, balance, summary))


def print_summary(summary):
    lines = ["\nover seeds (mean +- std; the split is the same, so the spread is training randomness):"]
    splits = list(summary[RUNS[0]])
    for run in RUNS:
        for split in splits:
            m = summary[run][split]
            lines.append(f"  {run:14} {split:13} accuracy {m['accuracy']['mean']:.4f} +- {m['accuracy']['std']:.4f}"
                         f"  F1 {m['f1']['mean']:.4f} +- {m['f1']['std']:.4f}")
    for split in splits:
        d = summary["deltas"][split]
        lines.append(f"  delta {split:13} {100 * d['accuracy']['mean']:+.2f} +- {100 * d['accuracy']['std']:.2f} "
                     f"points; per seed {', '.join(f'{100 * x:+.2f}' for x in d['per_seed_accuracy'])}")
    return shown(lines)


def print_flips(flipped, seed, most=5):
    flipped, lines = flipped[flipped["seed"] == seed], []
    for change, what in (("fixed", "fixes (head-only wrong, full fine-tune right)"),
                         ("broken", "breaks (head-only right, full fine-tune wrong)")):
        rows = flipped[flipped["change"] == change]
        counts = rows["split"].value_counts()
        per_split = ", ".join(f"{split} {counts[split]:,}" for split in evaluated(counts.index))
        lines.append(f"\nseed {seed}: the full fine-tune {what}: {len(rows):,} examples"
                     + (f" ({per_split}); the {min(most, len(rows))} it is surest of:" if len(rows) else "."))
        for row in rows.head(most).itertuples():
            lines.append(f"  [{row.split}, {LABEL_NAMES[row.label]}] P(positive) head-only "
                         f"{row.head_only_prob_pos:.2f}, full {row.full_finetune_prob_pos:.2f}: {cut(row.sentence)}")
    return shown(lines)


def classification_reports(result):
    """scikit-learn's per-class precision, recall and F1 for each run and split: kept in report.md only."""
    return [f"{RUN_TITLES[run]} on {SPLIT_TITLES[split]}:\n{result['runs'][run][split]['report']}"
            for run in RUNS for split in result["significance"]]
