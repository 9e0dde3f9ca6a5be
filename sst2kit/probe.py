"""A reference for the head-only run: the best linear probe on the same frozen-encoder features.

The head-only run is the notebook's recipe (its head, learning rate and two epochs), which can leave
a frozen encoder's features under-used. A logistic regression on the standardised features, its
regularisation chosen by cross-validation on train, shows what a well-fit classifier on the frozen
encoder reaches: the gap from it to the full fine-tune is what freezing the encoder costs, the gap
from the head-only run to it what the recipe costs.

Its regularisation is chosen by 5-fold cross-validation, the folds drawn three times over, on at
most 10,000 training items (each fold standardised on its own training part), and the chosen probe
is then fitted on every training item at the same penalty per item: a probe fitted on a subset would
overstate the gap over it (bench/probe_size.py measures by how much). The fit runs on the CPU while
the GPU trains both runs, on a background thread, its folds on threads of their own: no worker
process exists that a stop signal would have to wait for or could leave behind.
"""

import threading
import time
import warnings
from concurrent.futures import Future

import numpy as np
import torch
from joblib import Parallel, delayed, parallel_backend
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import RepeatedStratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sst2kit import processes
from sst2kit.console import say
from sst2kit.names import PROBE, PROBE_TITLE, evaluated

# items the regularisation is chosen on: more moves the choice little and costs minutes
CV_ITEMS = 10_000
# 3 folds would cost 3/5 of the CPU time, but chose C = 1 instead of 0.01 for MiniLM on full SST-2
FOLDS = 5
# One 5-fold split's choice of C moved between 0.01 and 0.1 with the order of the rows (MiniLM, full
# SST-2): the folds are drawn afresh REPEATS times and the scores averaged, so the choice depends on
# the data, not one shuffle.
REPEATS = 3


# The regularisation grid, as C for the items a fold trains on; half-decade steps from very strong
# to weak.
CS = np.logspace(-4, 2, 13)


def best_linear_probe(features, seed):
    """P(positive) per evaluation split from a logistic regression on the standardised cached
    features, its C chosen by cross-validation, fitted on every training item; and what was fit (C,
    items, seconds).

    Each fold standardises with its own training part alone (a scaler fitted on every row first
    would let the held-out rows shape the features they are scored on). scikit-learn's C multiplies
    a sum of per-item losses, so the same C is a weaker penalty on more items: the chosen C is
    rescaled from a fold's training size to the full training set, keeping the penalty per item the
    one the folds chose."""
    started = time.perf_counter()
    train = features["train"]
    states, labels = train.states.numpy(), train.labels.numpy()
    rows = np.random.default_rng(seed).permutation(len(train))[:CV_ITEMS]
    # one BLAS thread per fold thread: OpenBLAS's own threads inside five fold threads took 60 s on
    # 2 cores for a 2.5 s fit (docs/speed.md); the limit is the process's while it lasts
    with warnings.catch_warnings(), parallel_backend("threading"), threadpool_limits(1, "blas"):
        # scikit-learn announces changes of defaults that do not touch this fit
        warnings.simplefilter("ignore", FutureWarning)
        # a learning curve's smallest subsets hold fewer of a class than there are folds: the
        # folds are still stratified as far as they can be, and the warning would say it per fit
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        chosen, fold_items = cross_validated_c(states[rows], labels[rows], seed)
        c = chosen * fold_items / len(train)
        probe = fitted_probe(states, labels, c=c, seed=seed)
    probs = {
        split: probe.predict_proba(features[split].states.numpy())[:, 1]
        for split in evaluated(features)
    }
    return probs, {
        "train_items": len(train),
        "cross_validated_on": len(rows),
        "C": c,
        "C_on_folds": chosen,
        "fold_items": fold_items,
        "folds": FOLDS,
        "repeats": REPEATS,
        "seconds": time.perf_counter() - started,
    }


def cross_validated_c(states, labels, seed):
    """The C of CS with the best mean held-out accuracy over the repeated folds, and the folds'
    mean training size."""
    splitter = RepeatedStratifiedKFold(n_splits=FOLDS, n_repeats=REPEATS, random_state=seed)
    folds = list(splitter.split(states, labels))
    scores = Parallel(n_jobs=FOLDS)(
        delayed(fold_scores)(states, labels, fold, seed=seed) for fold in folds
    )
    chosen = float(CS[int(np.argmax(np.mean(scores, 0)))])
    return chosen, int(np.mean([len(fit_rows) for fit_rows, _ in folds]))


def fold_scores(states, labels, fold, *, seed):
    """Held-out accuracy of each C in CS on one fold, the scaler fitted on the fold's training part
    alone; the path warm-started from the strongest penalty."""
    fit_rows, held_out = fold
    scaler = StandardScaler().fit(states[fit_rows])
    fit_states, held_states = scaler.transform(states[fit_rows]), scaler.transform(states[held_out])
    model, scores = LogisticRegression(max_iter=1000, warm_start=True, random_state=seed), []
    for c in CS:
        model.set_params(C=c).fit(fit_states, labels[fit_rows])
        scores.append(float(np.mean(model.predict(held_states) == labels[held_out])))
    return scores


def fitted_probe(states, labels, *, c, seed):
    """The probe with its regularisation given: standardised features, a logistic regression."""
    probe = make_pipeline(
        StandardScaler(), LogisticRegression(C=c, max_iter=1000, random_state=seed)
    )
    return probe.fit(states, labels)


class ProbeReference:
    """The probe's fit, waited for once, when the first seed is recorded. Where the runs train on a
    GPU it is fitted on a background thread beside them (its arithmetic is numpy's and
    scikit-learn's, which release the interpreter lock while they compute): no wait. On a CPU the
    training needs every core, so the fit waits for the first seed instead of fighting it. A fit
    that fails, or one that was never started, leaves the trained runs' results standing without
    their reference."""

    def __init__(self, features, seed, *, beside, on_subsets=False):
        self.fitting, self.probs, self.fit, self.waited = None, {}, None, features is None
        self.fit_now, self.on_subsets = None, on_subsets
        if features is None:
            return
        self.fitting = Future()

        def fit():
            try:
                self.fitting.set_result(best_linear_probe(features, seed))
            except BaseException as err:  # noqa: BLE001 - handed to whoever asks for the result
                self.fitting.set_exception(err)

        if beside:  # daemon: Ctrl-C need not wait
            threading.Thread(target=fit, name="linear-probe", daemon=True).start()
        else:
            self.fit_now = fit

    @classmethod
    def start(cls, cfg, features, plan=None):
        """Started when asked for and possible, by the process that reports; else a reference that
        never comes. On a learning curve (plan) this one is fitted on the whole training set, for
        its largest size when that is all of it; its smaller sizes fit their own (outcome)."""
        if cfg.probe_reference and features is None:
            say(
                "no linear probe reference: it needs the cached encoder features "
                "(cache_encoder_features)"
            )
        wanted = cfg.probe_reference and features is not None and processes.is_main()
        return cls(
            features if wanted and (plan is None or plan.counts[-1] == plan.available) else None,
            cfg.seed,
            beside=torch.cuda.is_available(),
            on_subsets=wanted and plan is not None,
        )

    def outcome(self, cell, features):
        """P(positive) per split under the key PROBE for this cell (empty when there is no probe):
        the one fit on the whole training set, or on a learning curve's subset one of its own,
        fitted now on that subset's features with the cell's seed (seconds on a CPU)."""
        if cell.rows is None:
            return self.whole_set_outcome()
        if not self.on_subsets:
            return {}
        subset = {**features, "train": features["train"].subset(cell.rows)}
        try:
            probs, fit = best_linear_probe(subset, cell.seed)
        except Exception as err:  # whatever broke, the trained runs' results stand without it
            say(f"no linear probe reference ({cell}): its fit failed ({type(err).__name__}: {err})")
            return {}
        say(f"{PROBE_TITLE} ({cell}): {probe_fit_line(fit)}")
        return {PROBE: probs}

    def whole_set_outcome(self):
        """P(positive) per split under the key PROBE (empty when there is no probe), waited for on
        the first call, which also prints what was fitted under its own header."""
        if not self.waited:
            self.waited = True
            say(f"\n=== {PROBE_TITLE} ===")
            if self.fit_now:  # on a CPU: fitted now, after the first seed, not beside it
                self.fit_now()
            try:
                probs, self.fit = self.fitting.result()
                self.probs = {PROBE: probs}
                say(probe_fit_line(self.fit))
            # whatever broke, the trained runs' results stand without it
            except Exception as err:
                say(f"no linear probe reference: its fit failed ({type(err).__name__}: {err})")
        return self.probs


def probe_fit_line(fit):
    return (
        f"C = {fit['C_on_folds']:.3g} by {fit['folds']}-fold cross-validation x{fit['repeats']} "
        "(each fold "
        f"standardised on its own part) on {fit['cross_validated_on']:,} items; fitted on all "
        f"{fit['train_items']:,} at C = {fit['C']:.3g}, the same penalty per item "
        f"({fit['seconds']:.1f}s)"
    )
