"""Run health: judged on what was scored, window means not single batches, every known miss caught,
healthy short runs let through."""

import math

import numpy as np
import pytest

from sst2kit.health import advice, run_status


def history(losses, *, start_share=0.5, eval_losses=(0.69,), epochs=None):
    """A Trainer log history: the evaluation at the start, then one entry per logged training
    loss."""
    epochs = epochs or [i / len(losses) for i in range(1, len(losses) + 1)]
    start = [{"epoch": 0, "eval_loss": eval_losses[0], "eval_positive_share": start_share}]
    return (
        start
        + [{"epoch": e, "loss": loss} for e, loss in zip(epochs, losses)]
        + [{"epoch": epochs[-1], "eval_loss": loss} for loss in eval_losses[1:]]
    )


def status(losses, positive=430, items=872, **kwargs):
    selected = kwargs.pop("selected_epoch", None)
    return run_status(
        history(losses, **kwargs),
        positive_answers=positive,
        items=items,
        classes_present=2,
        selected_epoch=selected,
    )


def test_healthy_short_runs_from_the_trained_head_are_let_through():
    """Simulated full fine-tunes from a trained head: 3-40 logged batch losses (batch 32, per-item
    losses exponential around a level that starts at 0.15-0.45 and ends 60-105% of it). The
    single-batch rule flagged 11% of such runs; at most 1% may be flagged."""
    rng = np.random.default_rng(1)
    flagged = 0
    for _ in range(3000):
        n = int(rng.integers(3, 41))
        start = rng.uniform(0.15, 0.45)
        level = np.linspace(start, start * rng.uniform(0.6, 1.05), n)
        losses = [float(rng.exponential(mean, 32).mean()) for mean in level]
        flagged += status(losses, eval_losses=(0.3,))[0] != "ok"
    assert flagged / 3000 <= 0.01


def test_a_loss_flat_at_chance_did_not_learn_even_with_mixed_answers():
    """Flat at 0.693 for 40 logs while answering 52% positive: nothing was learned."""
    found, why = status([0.693 + 0.002 * math.sin(i) for i in range(40)], positive=453)
    assert found == "did not learn" and "ln 2" in why


def test_just_under_chance_with_constant_answers_did_not_learn():
    """The README's quick look: loss 0.691 -> 0.679 over its few steps, 'positive' to everything."""
    found, why = status(list(np.linspace(0.691, 0.679, 40)), positive=43, items=43, start_share=0.6)
    assert found == "collapsed" and "did not learn" not in found
    assert "no better than answering 50/50" in why and "every one of the 43" in why


def test_a_switch_between_constant_answers_is_a_collapse():
    found, why = status(list(np.linspace(0.69, 0.5, 40)), positive=872, start_share=0.0)
    assert (
        found == "collapsed"
        and "'positive'" in why
        and "'negative' to all of them at the start" in why
    )


def test_one_stray_answer_still_counts_as_one_class():
    found, why = status(list(np.linspace(0.6, 0.4, 40)), positive=871)
    assert found == "collapsed" and "871 of the 872" in why


def test_a_rise_after_a_fall_is_a_divergence():
    """0.69 -> 0.25 -> 1.00: the first and last batches alone looked fine (1.00 < 1.5 x 0.69)."""
    losses = list(np.linspace(0.69, 0.25, 20)) + list(np.linspace(0.25, 1.0, 20))
    found, why = status(losses)
    assert found == "diverged" and "rose to" in why and "from 0.2" in why


def test_a_nan_validation_loss_is_a_divergence():
    found, why = status(list(np.linspace(0.69, 0.3, 40)), eval_losses=(0.69, float("nan")))
    assert found == "diverged" and "validation loss is not a number" in why


def test_a_spike_is_named_even_when_the_loss_comes_back():
    """The README's failure: learning rate 10 sends the loss 0.69 -> 14,007 -> 0.82 and every answer
    to one class; the blow-up is named, not only the constant answers."""
    losses = [0.69, 0.7, 14007.0, 5000.0, 40.0] + [0.82] * 35
    found, why = status(losses, positive=872)
    assert found == "unstable" and "spiked to 1.401e+04" in why and "'positive'" in why


def test_health_is_judged_on_the_epoch_that_was_scored():
    """select_best_epoch scored epoch 1, whose losses fell: later epochs' rise does not count.
    Without the selection the same history diverged."""
    losses = list(np.linspace(0.6, 0.3, 20)) + list(np.linspace(0.3, 1.2, 20))
    epochs = [2 * (i + 1) / 40 for i in range(40)]
    assert status(losses, epochs=epochs, selected_epoch=1.0) == ("ok", "")
    assert status(losses, epochs=epochs)[0] == "diverged"


def test_a_one_class_split_is_no_collapse():
    assert run_status(
        history(list(np.linspace(0.5, 0.1, 40))), positive_answers=30, items=30, classes_present=1
    ) == ("ok", "")


def test_the_advice_names_the_exact_flags():
    lower = advice(
        "diverged",
        "its training loss rose to 3",
        run="full_finetune",
        learning_rate=10,
        epochs=2,
        weight_decay=0.01,
    )
    assert (
        "--learning_rate_full_finetune 1 (a tenth of 10)" in lower
        and "--weight_decay 0.001" in lower
    )
    more = advice(
        "did not learn",
        "its training loss ended at 0.68",
        run="head_only",
        learning_rate=5e-4,
        epochs=2,
        weight_decay=0.01,
    )
    assert "--epochs_head_only 8" in more and "--learning_rate_head_only 0.005" in more


@pytest.mark.parametrize("losses", [[0.3], [0.3, 0.29]])
def test_a_run_with_one_or_two_logged_losses_is_judged_without_error(losses):
    assert status(losses, eval_losses=(0.3,))[0] == "ok"
