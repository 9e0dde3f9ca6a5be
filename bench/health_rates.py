"""How often run health (sst2kit/health.py) flags healthy runs and names broken ones, by simulation:
the table in docs/statistics.md.

Each trial is one run of 4 to 400 optimizer steps over 2 epochs, as the Trainer logs it: per step a
batch loss (the mean of 32 items' losses, each gamma-distributed around the run's level at that
step), logged as logging_steps=0.025 logs them (the mean of every ceil(0.025 x steps) steps); a
validation loss and accuracy before training and after each epoch; and the scored answers on a
validation split of 872 items with GLUE validation's mix (444 positive). A kind is a shape of run;
a trial counts as named rightly when its status is one the kind expects (and, for the broken kinds
a too-large step makes, when the advice lowers the learning rate).

    python bench/health_rates.py --trials 2000     # about 90 s on one CPU core
"""

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sst2kit.health import CHANCE_LOSS, LOWER_STEP, run_status  # noqa: E402

BATCH, ITEMS, POSITIVE, EPOCHS = 32, 872, 444, 2
LENGTHS = (4, 6, 8, 12, 16, 30, 60, 120, 400)


@dataclass
class Shape:
    """What one simulated run does: its loss level at each step, how spread each item's loss is
    (gamma shape: 1 exponential, larger tighter), its validation loss at the start and after each
    epoch, its true validation accuracy at the start and at the end, and a constant answer if it
    gives one."""

    levels: np.ndarray
    item_shape: float
    eval_losses: list
    start_accuracy: float
    accuracy: float
    constant: int | None = None
    start_constant: int | None = None
    extra: dict = field(default_factory=dict)


def glide(start, end, steps, *, curve=0.0):
    """A level going from start to end over the steps; curve > 0 falls fast first."""
    t = np.linspace(0, 1, steps)
    if curve:
        t = (1 - np.exp(-curve * t)) / (1 - np.exp(-curve))
    return start + (end - start) * t


def healthy_from_head(rng, steps):
    """A full fine-tune from the trained head: loss 0.15-0.45, ending at 60-105% of it; validation
    accuracy from 0.75-0.85 up 5-10 points."""
    start = rng.uniform(0.15, 0.45)
    end = start * rng.uniform(0.6, 1.05)
    accuracy = rng.uniform(0.75, 0.85)
    return Shape(
        glide(start, end, steps),
        1.0,
        [start * rng.uniform(0.9, 1.1), end * rng.uniform(0.8, 1.2), end * rng.uniform(0.8, 1.3)],
        accuracy,
        accuracy + rng.uniform(0.05, 0.10),
    )


def healthy_from_pretrained(rng, steps):
    """A run from a new head: loss ln 2 falling fast to 0.2-0.4; accuracy 0.45-0.55 to 0.80-0.90."""
    end = rng.uniform(0.2, 0.4)
    return Shape(
        glide(CHANCE_LOSS, end, steps, curve=3.0),
        1.0,
        [0.69, end * rng.uniform(0.9, 1.3), end * rng.uniform(0.9, 1.4)],
        rng.uniform(0.45, 0.55),
        rng.uniform(0.80, 0.90),
    )


def weak(end_loss, accuracy):
    """A weak but real head-only run: loss ln 2 to end_loss, validation accuracy to `accuracy`."""

    def shape(rng, steps):
        return Shape(
            glide(CHANCE_LOSS, end_loss, steps),
            4.0,
            [0.70, end_loss + 0.01, end_loss + 0.01],
            rng.uniform(0.45, 0.55),
            accuracy,
        )

    shape.__doc__ = f"A weak but real run: loss ln 2 to {end_loss}, validation accuracy {accuracy}."
    return shape


def flat_at_chance(rng, steps):
    """Loss flat at ln 2 (each item near it), answers mixed, accuracy 0.5."""
    return Shape(np.full(steps, CHANCE_LOSS), 20.0, [0.693, 0.693, 0.693], 0.5, 0.5)


def falling_loss_chance_validation(rng, steps):
    """The training loss falls to 0.2-0.5 while validation accuracy stays at 0.5."""
    end = rng.uniform(0.2, 0.5)
    return Shape(glide(CHANCE_LOSS, end, steps), 2.0, [0.69, 0.7, 0.72], 0.5, 0.5)


def blow_up(recovered):
    def shape(rng, steps):
        """A blow-up to 30-3,000x the start for max(2, 5% of the steps) steps, early or late;
        recovered: back to a collapsed (constant), chance or learned state; not: 2-20x the start."""
        base = healthy_from_pretrained(rng, steps)
        at = int(rng.uniform(0.05, 0.8) * steps)
        length = max(2, math.ceil(0.05 * steps))
        levels = base.levels.copy()
        levels[at : at + length] = CHANCE_LOSS * 10 ** rng.uniform(1.5, 3.5)
        after = slice(at + length, steps)
        outcome = rng.integers(3) if recovered else 1
        if not recovered:
            levels[after] = CHANCE_LOSS * rng.uniform(2, 20)
        elif outcome < 2:
            levels[after] = rng.uniform(0.69, 0.8)
        else:
            levels[after] = np.minimum(levels[after], 0.45)
        accuracy = (0.5, 0.5, 0.75)[outcome]
        eval_end = float(np.mean(levels[after])) if at + length < steps else 2.0
        return Shape(
            levels,
            1.0,
            [0.69, eval_end, eval_end],
            0.5,
            accuracy,
            constant=int(rng.integers(2)) if outcome == 0 else None,
        )

    return shape


def slow_divergence(rng, steps):
    """Falls from ln 2 to 0.3-0.45 over the first 30-50% of steps then climbs to 2-3x that; or
    climbs from ln 2 to 1.4-2.0. Validation accuracy 0.55-0.75."""
    if rng.random() < 0.5:
        low, turn = rng.uniform(0.3, 0.45), int(rng.uniform(0.3, 0.5) * steps) + 1
        levels = np.concatenate(
            [glide(CHANCE_LOSS, low, turn), glide(low, low * rng.uniform(2, 3), steps - turn)]
        )
    else:
        levels = glide(CHANCE_LOSS, rng.uniform(1.4, 2.0), steps)
    return Shape(levels, 1.0, [0.69, 0.8, 1.0], 0.5, rng.uniform(0.55, 0.75))


def validation_blow_up(rng, steps):
    """Training looks healthy; the validation loss after an epoch is 12-100x where it started."""
    base = healthy_from_pretrained(rng, steps)
    high = 0.69 * rng.uniform(12, 100)
    base.eval_losses = [0.69, high, high * rng.uniform(0.8, 1.2)]
    base.accuracy = rng.uniform(0.6, 0.8)
    return base


def oscillating(rng, steps):
    """Logged losses alternating between about 0.1 and 0.9."""
    every = math.ceil(0.025 * steps)
    levels = np.where((np.arange(steps) // every) % 2 == 0, 0.1, 0.9)
    return Shape(levels.astype(float), 4.0, [0.69, 0.5, 0.5], 0.5, rng.uniform(0.55, 0.75))


# name -> (how a run of that kind looks, the statuses that name it rightly, advice must lower)
KINDS = {
    "healthy, from the trained head": (healthy_from_head, {"ok"}, False),
    "healthy, from a new head": (healthy_from_pretrained, {"ok"}, False),
    "weak but real (0.69 -> 0.64, acc 0.62)": (weak(0.64, 0.62), {"ok"}, False),
    "weaker but real (0.69 -> 0.665, acc 0.60)": (weak(0.665, 0.60), {"ok"}, False),
    "flat at chance, mixed answers": (flat_at_chance, {"did not learn", "collapsed"}, False),
    "loss falls, validation at chance": (
        falling_loss_chance_validation,
        {"did not learn", "collapsed"},
        False,
    ),
    "blow-up, recovered": (blow_up(True), {"diverged", "unstable"}, True),
    "blow-up, not recovered": (blow_up(False), {"diverged", "unstable"}, True),
    "slow divergence": (slow_divergence, {"diverged"}, True),
    "validation loss blow-up": (validation_blow_up, {"diverged", "unstable"}, True),
    "oscillating 0.1 <-> 0.9": (oscillating, {"unstable"}, True),
}


def answers_at(rng, labels, accuracy, constant):
    if constant is not None:
        return np.full(len(labels), constant)
    right = rng.random(len(labels)) < accuracy
    return np.where(right, labels, 1 - labels)


def trainer_log(rng, shape, steps, labels):
    """The run's log history as the Trainer writes it, and its scored validation answers."""
    batch = rng.gamma(BATCH * shape.item_shape, 1 / (BATCH * shape.item_shape), steps)
    losses = batch * shape.levels
    every = math.ceil(0.025 * steps)
    start_answers = answers_at(rng, labels, shape.start_accuracy, shape.start_constant)
    history = [
        {
            "epoch": 0.0,
            "eval_loss": shape.eval_losses[0],
            "eval_accuracy": float(np.mean(start_answers == labels)),
            "eval_positive_share": float(start_answers.mean()),
        }
    ]
    for end in range(every, steps + 1, every):
        history.append(
            {"epoch": EPOCHS * end / steps, "loss": float(losses[end - every : end].mean())}
        )
        if end <= steps // EPOCHS < end + every:
            history.append({"epoch": 1.0, "eval_loss": shape.eval_losses[1]})
    answers = answers_at(rng, labels, shape.accuracy, shape.constant)
    accuracy = float(np.mean(answers == labels))
    history.append(
        {"epoch": float(EPOCHS), "eval_loss": shape.eval_losses[2], "eval_accuracy": accuracy}
    )
    return history, answers


def labels_of(rng):
    labels = np.zeros(ITEMS, int)
    labels[:POSITIVE] = 1
    return rng.permutation(labels)


def judged(kind, steps, trials, seed=0):
    """(status, whether the advice lowers the learning rate) of `trials` simulated runs of this
    kind and length."""
    make = KINDS[kind][0]
    rng = np.random.default_rng([seed, steps, list(KINDS).index(kind)])
    labels = labels_of(rng)
    out = []
    for _ in range(trials):
        history, answers = trainer_log(rng, make(rng, steps), steps, labels)
        status, _, remedy = run_status(history, labels=labels, answers=answers)
        out.append((status, remedy == LOWER_STEP))
    return out


def named_rightly(kind, steps, trials, seed=0):
    """Share of trials whose status is one the kind expects (with advice that lowers the learning
    rate, where the kind is a too-large step)."""
    _, expected, lower = KINDS[kind]
    results = judged(kind, steps, trials, seed)
    return float(np.mean([s in expected and (lowered or not lower) for s, lowered in results]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--lengths", default=",".join(map(str, LENGTHS)), help="optimizer steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    lengths = [int(n) for n in args.lengths.split(",")]
    print(f"share named rightly, {args.trials:,} runs a cell; columns: optimizer steps")
    print(f"{'kind':44}" + "".join(f"{n:>7}" for n in lengths))
    for kind in KINDS:
        rates = [named_rightly(kind, n, args.trials, args.seed) for n in lengths]
        print(f"{kind:44}" + "".join(f"{r:7.3f}" for r in rates))


if __name__ == "__main__":
    main()
