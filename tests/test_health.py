"""Run health: learning judged on the scored validation answers, blow-ups against the loss before
training, window means not single batches, every known miss caught, healthy short runs let through,
and advice that points the right way."""

import dataclasses
import importlib.util
import math

import numpy as np
import pytest

from conftest import ROOT
from sst2kit.health import LOWER_STEP, MORE_EVIDENCE, MORE_STEPS, advice, run_status


def settings(**fields):
    """config.py's Config with these fields changed (the ones advice reads)."""
    from config import Config

    return dataclasses.replace(Config(), **fields)


LABELS = np.array([1] * 444 + [0] * 428)  # GLUE validation's mix: the floor is 0.509


def answers(accuracy=0.85, *, positive=None):
    """Scored answers on LABELS: right on the first `accuracy` share of each class, or one class
    for `positive` items (the rest the other)."""
    if positive is not None:
        return np.array([1] * positive + [0] * (len(LABELS) - positive))
    right = np.concatenate([np.arange(444) < 444 * accuracy, np.arange(428) < 428 * accuracy])
    return np.where(right, LABELS, 1 - LABELS)


def history(losses, *, start_share=0.5, eval_losses=(0.69,), epochs=None, start_accuracy=0.5):
    """A Trainer log history: the evaluation at the start, then one entry per logged training
    loss."""
    epochs = epochs or [i / len(losses) for i in range(1, len(losses) + 1)]
    start = [
        {
            "epoch": 0,
            "eval_loss": eval_losses[0],
            "eval_accuracy": start_accuracy,
            "eval_positive_share": start_share,
        }
    ]
    return (
        start
        + [{"epoch": e, "loss": loss} for e, loss in zip(epochs, losses)]
        + [{"epoch": epochs[-1], "eval_loss": loss} for loss in eval_losses[1:]]
    )


def status(losses, scored=None, **kwargs):
    """(status, why) of a run with these logged losses and scored answers (default: 85% right)."""
    selected = kwargs.pop("selected_epoch", None)
    scored = answers() if scored is None else scored
    return run_status(
        history(losses, **kwargs), labels=LABELS, answers=scored, selected_epoch=selected
    )[:2]


def simulation():
    """bench/health_rates.py: the committed simulation of Trainer-like logs."""
    spec = importlib.util.spec_from_file_location(
        "health_rates", ROOT / "bench" / "health_rates.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RATES = simulation()


@pytest.mark.parametrize(
    "kind, steps",
    [
        ("weak but real (0.69 -> 0.64, acc 0.62)", 4),
        ("weak but real (0.69 -> 0.64, acc 0.62)", 8),
        ("weaker but real (0.69 -> 0.665, acc 0.60)", 16),
        ("healthy, from the trained head", 6),
        ("healthy, from a new head", 8),
    ],
)
def test_real_learning_is_let_through_in_short_runs(kind, steps):
    """The training-loss rule withheld 12-13% of weak but real runs at 4-8 steps and 1-3% of
    healthy ones at 10 logs or fewer; at most 1% may be (400 runs each, so at most 4)."""
    assert RATES.named_rightly(kind, steps, 400) >= 0.99


@pytest.mark.parametrize(
    "kind, steps, least",
    [
        ("flat at chance, mixed answers", 8, 0.95),
        ("flat at chance, mixed answers", 30, 0.95),
        ("loss falls, validation at chance", 12, 0.95),
        ("blow-up, recovered", 30, 0.95),
        ("blow-up, not recovered", 8, 0.95),
        ("slow divergence", 8, 0.90),
        ("slow divergence", 16, 0.90),
        ("validation loss blow-up", 12, 0.95),
        ("oscillating 0.1 <-> 0.9", 16, 0.95),
    ],
)
def test_broken_runs_are_named_with_advice_that_points_the_right_way(kind, steps, least):
    """The old rule caught a loss flat at ln 2 with mixed answers about half the time, a slow
    divergence 6-19%, and never looked at the other kinds here."""
    assert RATES.named_rightly(kind, steps, 400) >= least


def test_a_weak_run_significantly_above_the_floor_learned():
    """Loss 0.69 -> 0.66 and 62% right on 872 items: weak, but real."""
    assert status(list(np.linspace(0.69, 0.66, 8)), answers(0.62)) == ("ok", "")


def test_a_loss_flat_at_chance_did_not_learn_and_the_sentence_gives_its_numbers():
    """Flat at 0.693 while answering about half right: the floor of 0.509 is not beaten."""
    found, why = status([0.693 + 0.002 * math.sin(i) for i in range(40)], answers(0.5))
    assert found == "did not learn"
    assert "validation accuracy 0.500 is not significantly above 0.509" in why
    assert "always answering 'positive'" in why and "872 items" in why


def test_a_falling_loss_with_validation_at_chance_is_named():
    found, why = status(list(np.linspace(0.69, 0.2, 40)), answers(0.5))
    assert found == "did not learn"
    assert "training loss fell from 0.6" in why and "does not carry to held-out" in why


def test_constant_answers_against_mixed_ones_at_the_start_is_a_collapse():
    found, why = status(list(np.linspace(0.691, 0.679, 40)), answers(positive=872))
    assert found == "collapsed" and "every one of the 872" in why and "50% positive" in why


def test_a_switch_between_constant_answers_is_a_collapse():
    found, why = status(list(np.linspace(0.69, 0.5, 40)), answers(positive=872), start_share=0.0)
    assert (
        found == "collapsed"
        and "'positive'" in why
        and "'negative' to all of them at the start" in why
    )


def test_one_stray_answer_still_counts_as_one_class():
    found, why = status(list(np.linspace(0.6, 0.4, 40)), answers(positive=871))
    assert found == "collapsed" and "871 of the 872" in why


def test_a_run_that_kept_its_start_without_moving_did_not_learn():
    """A full fine-tune from an 81% head that ends at 80% with a flat loss (a learning rate too
    small to move it) is no evidence about fine-tuning; one whose loss fell is."""
    flat, fell = [0.45 + 0.01 * math.sin(i) for i in range(40)], list(np.linspace(0.45, 0.3, 40))
    found, why = status(flat, answers(0.8), start_accuracy=0.81)
    assert found == "did not learn" and "no higher than at the start (0.810)" in why
    assert status(fell, answers(0.8), start_accuracy=0.81) == ("ok", "")


def test_a_rise_after_a_fall_is_a_divergence():
    """0.69 -> 0.25 -> 1.00: the first and last batches alone looked fine (1.00 < 1.5 x 0.69)."""
    losses = list(np.linspace(0.69, 0.25, 20)) + list(np.linspace(0.25, 1.0, 20))
    found, why = status(losses)
    assert found == "diverged" and "rose to" in why and "from 0.2" in why


def test_a_nan_validation_loss_is_a_divergence():
    found, why = status(list(np.linspace(0.69, 0.3, 40)), eval_losses=(0.69, float("nan")))
    assert found == "diverged" and "validation loss is not a number" in why


def test_a_finite_validation_loss_blow_up_is_named():
    found, why = status(list(np.linspace(0.69, 0.3, 40)), eval_losses=(0.69, 40.0, 35.0))
    assert found == "diverged" and "validation loss blew up to 40 from 0.69" in why


def test_a_blow_up_inside_the_first_window_is_measured_against_the_start():
    """--learning_rate_full_finetune 10: 0.69 -> 13,995 -> 85,938 within the first fifth, ending at
    1.35. The old rule took its start from a window the blow-up filled, saw no spike, called it
    'did not learn' and advised a learning rate of 100."""
    losses = [0.69, 13995.0, 85938.0, 9000.0, 300.0, 40.0, 5.0, 2.0] + [1.35] * 32
    found, why, remedy = run_status(
        history(losses), labels=LABELS, answers=answers(positive=872), selected_epoch=None
    )
    assert found == "diverged" and remedy == LOWER_STEP
    assert "training loss blew up to 8.594e+04 from 0.69 before training" in why
    fix = advice(
        remedy, "full_finetune", settings(learning_rate_full_finetune=10, epochs_full_finetune=2)
    )
    assert "--learning_rate_full_finetune 1 (a tenth of 10)" in fix and "100" not in fix


def test_a_blow_up_it_came_back_from_is_unstable():
    losses = [0.69, 0.7, 14007.0, 5000.0, 40.0] + list(np.linspace(0.5, 0.3, 35))
    found, why = status(losses)
    assert found == "unstable" and "blew up to 1.401e+04" in why and "came back down to" in why


def test_a_loss_that_ended_above_chance_is_told_to_lower_its_step():
    """No blow-up, no 1.5x rise: 0.69 -> 0.8 with answers at chance. The advice lowers the step."""
    losses = list(np.linspace(0.69, 0.8, 40))
    assert run_status(history(losses), labels=LABELS, answers=answers(0.5))[2] == LOWER_STEP


def test_a_loss_that_stayed_above_chance_without_rising_is_told_to_lower_its_step():
    """Flat at 0.85 from a start of 0.85: no blow-up and no rise, but a loss above ln 2 is worse
    than answering 50/50, which more steps or a larger step cannot mend."""
    flat = [0.85 + 0.002 * math.sin(i) for i in range(40)]
    scored = run_status(history(flat, eval_losses=(0.85,)), labels=LABELS, answers=answers(0.5))
    assert scored[0] == "did not learn" and scored[2] == LOWER_STEP


def test_a_run_that_moved_too_little_is_told_to_take_more_steps():
    flat = [0.693 + 0.002 * math.sin(i) for i in range(40)]
    remedy = run_status(history(flat), labels=LABELS, answers=answers(0.5))[2]
    assert remedy == MORE_STEPS
    more = advice(remedy, "head_only", settings(learning_rate_head_only=5e-4, epochs_head_only=2))
    assert "--epochs_head_only 8" in more and "--learning_rate_head_only 0.005" in more
    # on a learning curve the small sizes' epochs come from the minimum steps, and subset_fraction
    # cannot be given
    curve = settings(train_sizes="500,all", min_steps_head_only=1000)
    more = advice(remedy, "head_only", curve)
    assert "--min_steps_head_only 4000" in more and "subset_fraction" not in more


def test_health_is_judged_on_the_epoch_that_was_scored():
    """select_best_epoch scored epoch 1, whose losses fell: later epochs' rise does not count.
    Without the selection the same history diverged."""
    losses = list(np.linspace(0.6, 0.3, 20)) + list(np.linspace(0.3, 1.2, 20))
    epochs = [2 * (i + 1) / 40 for i in range(40)]
    assert status(losses, epochs=epochs, selected_epoch=1.0) == ("ok", "")
    assert status(losses, epochs=epochs)[0] == "diverged"


def test_a_one_class_split_is_no_collapse():
    one_class = np.ones(30, int)
    assert run_status(
        history(list(np.linspace(0.5, 0.1, 40))), labels=one_class, answers=one_class
    ) == ("ok", "", None)


@pytest.mark.parametrize("losses", [[0.3], [0.3, 0.29]])
def test_a_run_with_one_or_two_logged_losses_is_judged_without_error(losses):
    assert status(losses, eval_losses=(0.3,)) == ("ok", "")


def test_a_run_above_the_floor_on_too_few_items_is_told_to_score_more_not_to_train_more():
    """The README's quick look: the head answers 30 of 43 validation sentences right (floor 22 of
    43, p = 0.010) after its loss fell. It cannot be shown to have learned there, and more or larger
    steps would not show it: the advice asks for more validation items."""
    labels = np.array([1] * 22 + [0] * 21)
    scored = labels.copy()
    scored[:13] = 1 - scored[:13]
    found, why, remedy = run_status(
        history(list(np.linspace(0.69, 0.45, 40))), labels=labels, answers=scored
    )
    assert found == "did not learn" and "0.698 is not significantly above 0.512" in why
    assert remedy == MORE_EVIDENCE
    fix = advice(remedy, "head_only", settings(learning_rate_head_only=2e-2, epochs_head_only=20))
    assert "--subset_fraction" in fix and "--epochs_head_only" not in fix
