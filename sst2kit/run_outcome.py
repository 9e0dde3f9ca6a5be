"""What one trained run yields, read from its Trainer: its record (steps, seconds, parameters, the
epoch whose weights it ended with, its curves), P(positive) per evaluation split from one prediction
pass each, and its one printed line. A loss or prediction that stops being a number ends the run
here (nothing can be scored)."""

import math
import textwrap
import time

import numpy as np
import torch

from sst2kit.callbacks import BestEpochRestored
from sst2kit.comparison import Training
from sst2kit.console import say
from sst2kit.errors import Diverged
from sst2kit.health import LOWER_STEP, STATUS_VERBS, advice
from sst2kit.names import RUN_TITLES, evaluated
from sst2kit.report import WIDTH


def training_record(trainer, run, *, parameter_counts, seconds, cfg):
    """The run's Training once its loop is over (its prediction time, curves and health are added
    as they are known)."""
    broken = next(
        (e for e in trainer.state.log_history if "loss" in e and not math.isfinite(e["loss"])), None
    )
    if broken:
        raise Diverged(
            f"the {RUN_TITLES[run]} run diverged: its training loss was {broken['loss']} by step "
            f"{broken['step']}; {advice(LOWER_STEP, run, cfg)}"
        )
    best = next(
        (c for c in trainer.callback_handler.callbacks if isinstance(c, BestEpochRestored)), None
    )
    return Training(
        trainable_parameters=parameter_counts[0],
        frozen_parameters=parameter_counts[1],
        steps=trainer.state.global_step,
        train_seconds=seconds,
        predict_seconds=0.0,
        selected_epoch=best.best_epoch if best else None,  # the weights scored are its epoch's
        history={},
    )


def predict(trainer, run, *, data, trained, cfg):
    """P(positive) per evaluation split from the weights the run ends with, and the Trainer's
    prediction output on the validation split."""
    started = time.perf_counter()
    predicted = {split: trainer.predict(data[split]) for split in evaluated(data)}
    probs = {
        split: torch.as_tensor(p.predictions).float().softmax(-1)[:, 1].numpy()
        for split, p in predicted.items()
    }
    if not all(np.isfinite(p).all() for p in probs.values()):
        raise Diverged(
            f"the {RUN_TITLES[run]} run diverged: its predictions are not finite numbers; "
            f"{advice(LOWER_STEP, run, cfg)}"
        )
    validation = predicted["validation"]
    if (
        trained.selected_epoch is None
    ):  # the final weights' validation score: the curve's last point
        trainer.state.log_history.append(
            {
                "epoch": trainer.state.epoch,
                "eval_loss": validation.metrics["test_loss"],
                "eval_accuracy": validation.metrics["test_accuracy"],
            }
        )
    trained.predict_seconds = time.perf_counter() - started
    return probs, validation


def curves(log_history):
    """The training loss and the validation loss and accuracy, as [epoch, value] points."""
    logged = (
        ("train_loss", "loss"),
        ("eval_loss", "eval_loss"),
        ("eval_accuracy", "eval_accuracy"),
    )
    return {curve: [[e["epoch"], e[key]] for e in log_history if key in e] for curve, key in logged}


def say_run_done(run, trained, *, cell, validation_accuracy):
    """The run's one line, and a warning naming what broke and the flags to change."""
    selected, health = trained.selected_epoch, trained.health
    say(
        f"{RUN_TITLES[run]} ({cell}) done: validation accuracy {validation_accuracy:.4f} "
        f"after {trained.steps:,} steps ({trained.train_seconds:.1f}s training, "
        f"{trained.predict_seconds:.1f}s predicting)"
        + (
            f"; weights of epoch {selected:g}, its lowest validation loss (select_best_epoch)"
            if selected
            else ""
        )
    )
    if health.broken:
        warning = (
            f"warning: the {RUN_TITLES[run]} run ({cell}) {STATUS_VERBS[health.status]}: "
            f"{health.why}. No finding is drawn from it; {health.advice}."
        )
        say(textwrap.fill(warning, WIDTH, subsequent_indent="    "))
