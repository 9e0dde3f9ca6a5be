"""The run's record: results.json (docs/results.md describes every key), predictions.csv and
flips.csv, rebuilt after every seed and committed together through files.py, so a later failure
loses none of the finished seeds; and report.md, the printed report kept with the run."""

import contextlib
import dataclasses
import platform
import shutil
import tempfile
from pathlib import Path

import accelerate
import datasets
import numpy as np
import pandas as pd
import sklearn
import torch
import transformers

from sst2kit.comparison import PartComparison, ProbeComparison, RunHealth, SeedComparison, Versus
from sst2kit.files import (
    WriteError,
    check_run_dir,
    write_atomic,
    write_csv,
    write_json,
    write_text,
    write_together,
)
from sst2kit.metrics import predicted_labels
from sst2kit.names import LABEL_NAMES, PROBE, RUNS, headline_split
from sst2kit.phrases import shared_items
from sst2kit.resume import check_same_data, recorded_probs
from sst2kit.seeds import directions, summarize_seeds
from sst2kit.significance import PairedTest

# Aliases of each split's delta (deltas[split]) that readers of earlier results.json files use
OLD_DELTA_KEYS = {
    "test": "delta",
    "validation": "delta_validation",
    "external_test": "delta_external_test",
}


def environment(setup):
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "accelerate": accelerate.__version__,
        "scikit-learn": sklearn.__version__,
        "device": setup.device,
        "processes": setup.processes,
    }


def predictions_frame(eval_splits, per_seed_probs):
    """One row per evaluated example and seed: its split, sentence and label, each run's prediction
    and P(positive), and whether the full fine-tune fixed ("fixed") or broke ("broken") head-only's
    answer."""
    rows = []
    for seed, probs in per_seed_probs:
        for name, split in eval_splits.items():
            frame = split.frame[["idx", "sentence", "label"]].copy()
            frame.insert(0, "split", name)
            frame.insert(0, "seed", seed)
            right = {}
            for run in RUNS:
                frame[f"{run}_pred"] = predicted_labels(probs[run][name])
                frame[f"{run}_prob_pos"] = np.asarray(probs[run][name], np.float64).round(6)
                right[run] = frame[f"{run}_pred"] == frame["label"]
            frame["change"] = np.select(
                [
                    right["full_finetune"] & ~right["head_only"],
                    right["head_only"] & ~right["full_finetune"],
                ],
                ["fixed", "broken"],
                "",
            )
            rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def flips(predictions):
    """The examples the full fine-tune fixes or breaks, the full fine-tune's surest first."""
    changed = predictions[predictions["change"] != ""].copy()
    sure = (changed["full_finetune_prob_pos"] - 0.5).abs()
    return changed.assign(full_finetune_certainty=sure).sort_values(
        "full_finetune_certainty", ascending=False, kind="stable"
    )


def class_balance(train_labels, eval_splits):
    """results.json's class_balance: train's label counts, and per evaluation split its positive
    share, whether it is close to balanced, and its majority-class floor."""
    counts = np.bincount(np.asarray(train_labels), minlength=2)
    splits = {
        name: {
            "items": len(split.labels),
            "positive_share": split.positive_share,
            "close_to_balanced": split.close_to_balanced,
            "majority_class_floor": split.majority_floor,
        }
        for name, split in eval_splits.items()
    }
    return {
        "train_label_counts": dict(zip(LABEL_NAMES, counts.tolist())),
        "train_label_shares": dict(zip(LABEL_NAMES, (counts / counts.sum()).round(4).tolist())),
        **splits,
    }


def save_results(run_dir, record, predictions):
    """results.json, predictions.csv and flips.csv, committed together."""
    flipped = flips(predictions).drop(
        columns=["head_only_pred", "full_finetune_pred", "full_finetune_certainty"]
    )
    write_together(
        [
            (run_dir / "predictions.csv", lambda path: write_csv(path, predictions)),
            (run_dir / "flips.csv", lambda path: write_csv(path, flipped)),
            (run_dir / "results.json", lambda path: write_json(path, record)),
        ]
    )


class Results:
    """One run's results.json, predictions.csv and flips.csv, rewritten after every seed
    (results.json says `"complete": false` until the last seed is in), and what the report needs to
    print them."""

    def __init__(
        self,
        experiment,
        eval_splits,
        *,
        train_labels,
        new_head_tensors,
        data_fingerprint,
        stopped=None,
    ):
        self.experiment, self.cfg, self.run_dir = experiment, experiment.cfg, experiment.run_dir
        self.eval_splits, self.new_head_tensors = eval_splits, new_head_tensors
        self.balance = class_balance(train_labels, eval_splits)
        self.sizes = {
            "train": len(train_labels),
            **{name: len(split.labels) for name, split in eval_splits.items()},
        }
        self.static = {
            "config": dataclasses.asdict(self.cfg),
            "class_balance": self.balance,
            "sizes": self.sizes,
            **data_record(eval_splits),
            "newly_initialised_tensors": new_head_tensors,
            "speed": experiment.setup.record(),
            "data_fingerprint": data_fingerprint,
        }
        self.external_in_validation = external_in_validation(eval_splits)
        self.per_seed, self.per_seed_probs, self.record, self.predictions = [], [], None, None
        self.probe_fit, self.summary, self.resumed_seeds = None, None, []
        if stopped:
            self.restore(stopped)

    def restore(self, stopped):
        """The seeds a stopped run finished (resume.py), kept as they were recorded."""
        check_same_data(stopped, self.static["data_fingerprint"])
        self.per_seed = [seed_from_record(record) for record in recorded_seeds(stopped.record)]
        self.per_seed_probs = recorded_probs(stopped, self.eval_splits)
        self.resumed_seeds = stopped.seeds

    @property
    def first_seed(self):
        """The lowest seed's comparison: the one the tables and confusion matrices show."""
        return self.per_seed[0]

    @property
    def headline(self):
        """results.json's `headline`: the experiment's answer on the headline split. With several
        seeds, the mean delta over them with an interval across seeds and units; with one, that
        seed's delta and interval."""
        return headline_record(headline_split(self.eval_splits), self.per_seed, self.summary)

    def add_seed(self, comparison, probs, *, probe_fit, timings):
        """One seed's comparison in; every file rewritten with every seed so far (main process
        only)."""
        self.per_seed.append(comparison)
        self.per_seed_probs.append((comparison.seed, probs))
        self.update(
            reference={PROBE: probs[PROBE]} if PROBE in probs else {},
            probe_fit=probe_fit,
            timings=timings,
        )

    def update(self, *, reference, probe_fit, timings):
        """Every file rewritten with every seed so far, in seed order: the probe's P(positive) (the
        same in every seed: it is fitted once) given to seeds restored without it."""
        for _, probs in self.per_seed_probs:
            probs.update({key: value for key, value in reference.items() if key not in probs})
        self.per_seed.sort(key=lambda s: s.seed)
        self.per_seed_probs.sort(key=lambda pair: pair[0])
        self.probe_fit = self.probe_fit or probe_fit
        if len(self.per_seed) > 1:
            self.summary = summarize_seeds(
                self.per_seed,
                self.per_seed_probs,
                self.eval_splits,
                resamples=self.cfg.bootstrap_resamples,
                seed=self.cfg.seed,
            )
        self.record = self.recorded(timings)
        self.predictions = predictions_frame(self.eval_splits, self.per_seed_probs)
        self.save()

    def recorded(self, timings):
        """results.json (docs/results.md): the setup, the answer, the first seed's comparison at
        the top level; with several seeds every seed's and the summary."""
        first_seed = seed_record(self.first_seed)
        del first_seed["seed"]
        probe = first_seed.pop("probe_reference", None)
        record = {
            "complete": len(self.per_seed) == self.cfg.num_seeds,
            **self.static,
            "headline": self.headline,
            **first_seed,
            **{OLD_DELTA_KEYS[split]: delta for split, delta in first_seed["deltas"].items()},
            "test_by_kind": first_seed["by_kind"].get("test"),  # an alias of by_kind["test"]
            "timings_seconds": timings,
            "environment": environment(self.experiment.setup),
        }
        if self.resumed_seeds:
            record["resumed_seeds"] = self.resumed_seeds
        if probe:
            record["probe_reference"] = {**probe, "fit": self.probe_fit}
        if len(self.per_seed) > 1:
            record["seeds"] = [seed_record(s) for s in self.per_seed]
            record["summary"] = summary_record(self.summary)
        return record

    def finish(self, timings):
        """results.json rewritten once the report is out, its timings then holding every stage of
        the run (the seeds, and so predictions.csv and flips.csv, are unchanged)."""
        self.record["timings_seconds"] = timings
        write_atomic(self.run_dir / "results.json", lambda path: write_json(path, self.record))

    def save(self):
        check_run_dir(self.run_dir)
        save_results(self.run_dir, self.record, self.predictions)

    @contextlib.contextmanager
    def rescued_on_write_error(self):
        """A write error while the seeds run (a full disk, the run folder gone): the finished seeds
        are written to a new folder in the system's temporary directory where one can be made, and
        the one line says where (or that they could not be kept)."""
        try:
            yield
        except WriteError as err:
            if not self.per_seed:  # nothing finished: nothing to keep
                raise
            raise WriteError(f"{err}; {self.rescue()}") from None

    def rescue(self):
        """The finished seeds written to a new temporary folder: where, or why they could not be."""
        rescue = None
        try:
            rescue = Path(tempfile.mkdtemp(prefix=f"sst2_compare-{self.run_dir.name}-"))
            save_results(rescue, self.record, self.predictions)
        except (OSError, WriteError) as err:
            if rescue is not None:
                # no empty or half-written folder left behind
                shutil.rmtree(rescue, ignore_errors=True)
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            return (
                f"the {len(self.per_seed)} finished seed(s) could not be written elsewhere "
                f"either ({reason})"
            )
        return f"the {len(self.per_seed)} finished seed(s) were written to {rescue} instead"


def save_report(run_dir, text):
    """report.md: the run's report, readable later without its terminal."""
    write_atomic(run_dir / "report.md", lambda path: write_text(path, text))


def headline_record(split, per_seed, summary):
    """The answer on the headline split: over the seeds when there are several, else the one
    seed's."""
    if summary:
        over = summary.deltas[split]
        test, value = over.test, over.test.delta_accuracy
        balanced, counts = over.balanced_accuracy["mean"], over.counts
        interval = (
            f"mean of {len(per_seed)} seeds' deltas; margins for the seeds' spread (t, "
            f"{len(per_seed) - 1} df) and for {test.independent_units:,} {test.resampled_unit} "
            "added in quadrature; covers new training seeds and new sentences like these, with "
            "this training set"
        )
    else:
        first_seed = per_seed[0]
        test, value = first_seed.tests[split], first_seed.deltas[split]["accuracy"]
        balanced, counts = first_seed.deltas[split]["balanced_accuracy"], directions([test])
        interval = (
            f"one seed ({first_seed.seed}); {test.paired_test} over {test.independent_units:,} "
            f"{test.resampled_unit}"
        )
    return {
        "split": split,
        "seeds": len(per_seed),
        "delta_accuracy": value,
        "delta_balanced_accuracy": balanced,
        "delta_accuracy_ci95": test.delta_accuracy_ci95,
        "interval": interval,
        "p_value": test.p_value,
        "p_value_holm": test.p_value_holm,
        "difference_claimed": test.difference_claimed,
        "claim_withheld": test.withheld,
        **counts,
    }


def test_record(test):
    """A test as results.json keeps it: every field, the withheld ones only when it is withheld."""
    kept = dataclasses.asdict(test)
    if test.withheld is None:
        del kept["withheld"], kept["withheld_runs"]
    return kept


def versus_record(versus):
    tests = {split: test_record(test) for split, test in versus.tests.items()}
    return {"delta": versus.deltas, "significance": tests}


def part_record(part):
    if part is None:
        return None
    kept = {key: getattr(part, key) for key in ("items", "accuracy", "delta_accuracy")}
    return {**kept, "significance": test_record(part.test)}


def seed_record(comparison):
    """One seed's comparison as results.json keeps it (docs/results.md)."""
    kept = {
        "seed": comparison.seed,
        "runs": comparison.runs,
        "deltas": comparison.deltas,
        "significance": {split: test_record(test) for split, test in comparison.tests.items()},
        "status": {run: dataclasses.asdict(h) for run, h in comparison.status.items()},
        "at_majority_floor": comparison.at_majority_floor,
        "accuracy_by_length": comparison.accuracy_by_length,
        "by_kind": {
            split: {kind: part_record(part) for kind, part in parts.items()}
            for split, parts in comparison.by_kind.items()
        },
    }
    probe = comparison.probe
    if probe:
        kept["probe_reference"] = {
            "runs": probe.runs,
            **versus_record(probe.full_over_probe),
            "versus_head_only": versus_record(probe.over_head_only),
        }
    return kept


def summary_record(summary):
    """The summary over seeds as results.json keeps it."""
    kept = {
        **summary.metrics,
        "deltas": {
            split: {
                **{key: getattr(over, key) for key in ("accuracy", "balanced_accuracy", "f1")},
                "per_seed_accuracy": over.per_seed_accuracy,
                **over.counts,
                "across_seeds": test_record(over.test),
            }
            for split, over in summary.deltas.items()
        },
        "by_kind": {
            split: {
                kind: {"items": part.items, **part.counts, "across_seeds": test_record(part.test)}
                for kind, part in parts.items()
            }
            for split, parts in summary.by_kind.items()
        },
        "accuracy_by_length": summary.accuracy_by_length,
    }
    if summary.full_over_probe is not None:
        kept["probe_reference"] = {
            "full_over_probe": {s: test_record(t) for s, t in summary.full_over_probe.items()},
            "probe_over_head_only": {
                s: test_record(t) for s, t in summary.probe_over_head_only.items()
            },
        }
    return kept


def recorded_seeds(record):
    """Each seed's comparison as a results.json holds it: in `seeds` with several, else at the
    top level."""
    if "seeds" in record:
        return record["seeds"]
    keys = ("runs", "deltas", "significance", "status", "at_majority_floor", "by_kind")
    first_seed = {key: record[key] for key in (*keys, "accuracy_by_length")}
    if "probe_reference" in record:
        first_seed["probe_reference"] = {
            k: v for k, v in record["probe_reference"].items() if k != "fit"
        }
    return [{"seed": record["config"]["seed"], **first_seed}]


def versus_from_record(deltas, tests):
    return Versus(deltas, {split: PairedTest(**test) for split, test in tests.items()})


def part_from_record(part):
    if part is None:
        return None
    kept = {key: part[key] for key in ("items", "accuracy", "delta_accuracy")}
    return PartComparison(**kept, test=PairedTest(**part["significance"]))


def seed_from_record(record):
    """One seed's comparison back from results.json (a stopped run's finished seeds)."""
    probe = record.get("probe_reference")
    return SeedComparison(
        seed=record["seed"],
        runs=record["runs"],
        versus=versus_from_record(record["deltas"], record["significance"]),
        status={run: RunHealth(**health) for run, health in record["status"].items()},
        at_majority_floor=record["at_majority_floor"],
        accuracy_by_length=record["accuracy_by_length"],
        by_kind={
            split: {kind: part_from_record(part) for kind, part in parts.items()}
            for split, parts in record["by_kind"].items()
        },
        probe=probe
        and ProbeComparison(
            probe["runs"],
            versus_from_record(probe["delta"], probe["significance"]),
            versus_from_record(
                probe["versus_head_only"]["delta"], probe["versus_head_only"]["significance"]
            ),
        ),
    )


def data_record(eval_splits):
    """results.json's leakage and independence: each split's share of training phrases, and its
    independent units."""
    return {
        "leakage": {
            f"{name}_items_inside_train_fraction": split.leakage
            for name, split in eval_splits.items()
        },
        "independence": {
            name: {
                "unit": split.unit_name,
                "units": split.unit_count,
                "largest_unit_items": split.largest_unit_items,
                "duplicated_items": split.duplicated_items,
            }
            for name, split in eval_splits.items()
        },
    }


def external_in_validation(eval_splits):
    """How many of the external test set's sentences are GLUE validation sentences too (0 without
    an external test set)."""
    if "external_test" not in eval_splits:
        return 0
    external = eval_splits["external_test"].frame["sentence"]
    return shared_items(external, eval_splits["validation"].frame["sentence"])
