"""Whether a run trained well enough to be evidence, judged on the weights that were scored: its
status, why in words, and what its advice asks for (a lower step, more items, more steps).

Whether a run learned is judged on held-out evidence, its scored validation answers: it learned when
its accuracy is significantly above both the majority-class floor (always answering the commoner
class) and its own accuracy at the start (one-sided binomial tests at LEARNED_ALPHA). The training
loss is read only for what it alone shows: a value that is not a number, a blow-up measured against
the loss before training, a rise that is no batch noise, and a swing far wider than batch noise.

ok             it learned, and its losses show nothing below
diverged       a loss that is not a number; a blow-up (a logged training loss or a validation loss
               BLOW_UP_RATIO times the loss before training) that it ended above its start after;
               or a training loss that rose well above its lowest level, or above ln 2
unstable       a blow-up it came back down from, or a training loss swinging far wider than batches
               can (OSCILLATION_*)
collapsed      every scored validation answer (within one item) is one class while the split has
               both, where the run answered otherwise at the start
did not learn  validation accuracy not significantly above the majority-class floor; or constant
               answers it gave from the start; or (above the floor, but not above its start)
               neither its accuracy nor its training loss moved from where it started

Rises are judged on window means of at least MIN_WINDOW logged values (a fifth of them when there
are more), never single batches, with the batch noise estimated from second differences, which a
straight trend does not inflate. With select_best_epoch only the epochs up to the one selected
count: later epochs were not scored. docs/statistics.md gives the rates, measured by
bench/health_rates.py.
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

from sst2kit.names import LABEL_NAMES

CHANCE_LOSS = math.log(2)  # cross-entropy of answering P = 0.5 to every item
LEARNED_ALPHA = 0.01  # one-sided binomial level: validation accuracy above the floor, its start
BLOW_UP_RATIO = 10  # a logged loss this many times the loss before training
BLOW_UP_FLOOR = 0.1  # a run that starts near 0 loss is no blow-up for a batch at 0.5
DIVERGED_RATIO = 1.5  # late window mean over the lowest one
NOISE_SIGMAS = 3  # a fall, or a rise above ln 2, must stand this many standard errors clear
# a rise to DIVERGED_RATIO x its lowest level must stand this many: the ratio already keeps falling
# and flat runs out, and a short run's three-log windows leave little room
RISE_SIGMAS = 1.5
MIN_WINDOW = 3  # logged values in a window, at least
NOISE_FLOOR = 0.01  # the batch noise taken as at least this share of the median loss
OSCILLATION_NOISE = 0.2  # a logged loss swinging by this much about its running median...
OSCILLATION_SHARE = 0.5  # ... and by this share of its median level, is no batch noise
BROKEN = ("diverged", "unstable", "collapsed", "did not learn")
STATUS_VERBS = {
    "diverged": "diverged",
    "unstable": "was unstable",
    "collapsed": "collapsed",
    "did not learn": "did not learn",
}


# what a broken run's advice asks for, from its evidence
LOWER_STEP = "lower step"  # its loss blew up, rose or swung
MORE_EVIDENCE = "more evidence"  # above the floor, but too few validation items to show it learned
MORE_STEPS = "more steps"  # it moved too little


@dataclass(frozen=True)
class Finding:
    """One thing wrong with a run, and what its advice asks for (remedy)."""

    status: str
    why: str
    remedy: str = MORE_STEPS


@dataclass(frozen=True)
class HeldOut:
    """A run's scored validation answers against the two scores it must beat."""

    correct: int
    items: int
    floor: float  # share of the commoner class: the accuracy of always answering it
    floor_class: str
    start: float | None  # accuracy at the start (the evaluation before training), when logged

    @property
    def accuracy(self):
        return self.correct / self.items

    def p_above(self, share):
        """One-sided binomial p that an accuracy at `share` scores this many right or more."""
        if share >= 1:
            return 1.0
        return float(binomtest(self.correct, self.items, share, alternative="greater").pvalue)


def held_out(labels, answers, start_accuracy=None):
    labels, answers = np.asarray(labels), np.asarray(answers)
    positive = int(labels.sum())
    return HeldOut(
        correct=int(np.sum(labels == answers)),
        items=len(labels),
        floor=max(positive, len(labels) - positive) / max(len(labels), 1),
        floor_class=LABEL_NAMES[int(positive > len(labels) / 2)],
        start=start_accuracy,
    )


def window(count):
    """How many logged values a window holds: a fifth of them, at least MIN_WINDOW."""
    return max(MIN_WINDOW, count // 5)


def batch_noise(losses):
    """The logged losses' own noise (SD), from second differences: a straight trend cancels out of
    them, and the median keeps one jump from counting as noise. 0 with fewer than 4 values."""
    if len(losses) < 4:
        return 0.0
    return float(np.median(np.abs(np.diff(losses, 2))) / 0.6745 / math.sqrt(6))


def swing_size(losses):
    """How far the logged losses jump about their running median of three: a curve, however steep,
    follows that median; a loss that swings up and down does not. 0 with fewer than 2 windows."""
    if len(losses) < 2 * MIN_WINDOW:
        return 0.0
    losses = np.asarray(losses, float)
    running = np.median(np.lib.stride_tricks.sliding_window_view(losses, 3), axis=1)
    return float(np.median(np.abs(losses[1:-1] - running)) / 0.6745)


def scored_history(log_history, selected_epoch):
    """The log entries up to the epoch whose weights were scored (all of them without
    select_best_epoch)."""
    if selected_epoch is None:
        return log_history
    return [entry for entry in log_history if entry.get("epoch", 0) <= selected_epoch + 1e-9]


def answer_mix(positive, items):
    """'positive' or 'negative' when the answers are one class within one item (of at least 10),
    else None."""
    if items == 0:
        return None
    minority = min(positive, items - positive)
    if minority == 0 or (minority <= 1 and items >= 10):
        return LABEL_NAMES[int(positive > items / 2)]
    return None


@dataclass(frozen=True)
class LossLevels:
    """A run's logged training losses read as window means: where they started, their lowest level
    before the last window, where they ended, and the standard error of a difference of two."""

    early: float
    lowest: float
    late: float
    width: int
    error: float

    @classmethod
    def of(cls, losses):
        """None when there are too few values for two windows that do not overlap."""
        width = window(len(losses))
        if len(losses) < 2 * width:
            return None
        losses = np.asarray(losses, float)
        means = np.convolve(losses, np.ones(width) / width, mode="valid")
        before_last = means[: len(losses) - 2 * width + 1]
        # logged losses that agree to the last digit (nothing moving) still differ by rounding:
        # a rise or fall must be at least a share of the level
        noise = max(batch_noise(losses), NOISE_FLOOR * float(np.median(losses)))
        error = noise * math.sqrt(2 / width)
        return cls(float(means[0]), float(before_last.min()), float(means[-1]), width, error)

    @property
    def fell(self):
        return self.early - self.late > NOISE_SIGMAS * self.error

    @property
    def rose(self):
        """A rise no batch noise explains: to DIVERGED_RATIO x its lowest level, or above ln 2."""
        rise = self.late - self.lowest
        well_above = self.late > DIVERGED_RATIO * self.lowest and rise > RISE_SIGMAS * self.error
        above_chance = self.late - CHANCE_LOSS > NOISE_SIGMAS * self.error
        return well_above or (above_chance and rise > NOISE_SIGMAS * self.error)


def loss_before_training(history, losses):
    """The validation loss of the evaluation at the start, or else the first logged training
    loss."""
    start = next((entry["eval_loss"] for entry in history if "eval_loss" in entry), None)
    return start if start is not None and math.isfinite(start) else losses[0]


def blow_ups(history, losses):
    """A training or validation loss BLOW_UP_RATIO times the loss before training: diverged when it
    ended above that start, unstable when it came back down."""
    found = []
    start = loss_before_training(history, losses)
    limit = BLOW_UP_RATIO * max(start, BLOW_UP_FLOOR)
    eval_losses = [entry["eval_loss"] for entry in history if "eval_loss" in entry][1:]
    for what, values in (("training", losses), ("validation", eval_losses)):
        if values and max(values) >= limit:
            end = (
                float(np.mean(values[-window(len(values)) :])) if what == "training" else values[-1]
            )
            stayed = end > start
            found.append(
                Finding(
                    "diverged" if stayed else "unstable",
                    f"its {what} loss blew up to {max(values):,.4g} from {start:.3g} before "
                    f"training and {'ended at' if stayed else 'came back down to'} {end:.3g}",
                    remedy=LOWER_STEP,
                )
            )
    return found


def loss_findings(history, losses, levels):
    """What the training losses show wrong: not a number, a blow-up, a real rise, a swing. levels:
    LossLevels.of(losses) (None for too few or non-finite losses)."""
    bad = next((loss for loss in losses if not math.isfinite(loss)), None)
    if bad is not None:
        return [Finding("diverged", f"its training loss became {bad}", remedy=LOWER_STEP)]
    found = blow_ups(history, losses)
    if levels and levels.rose and not found:
        found.append(
            Finding(
                "diverged",
                f"its training loss rose to {levels.late:.3g} (mean of its last {levels.width} "
                f"logged values) from {levels.lowest:.3g}",
                remedy=LOWER_STEP,
            )
        )
    swing, middle = swing_size(losses), float(np.median(losses))
    if swing >= max(OSCILLATION_NOISE, OSCILLATION_SHARE * middle):
        found.append(
            Finding(
                "unstable",
                f"its training loss swung by about {swing:.2g} from one logged value to the next "
                f"around {middle:.2g}, far more than batches differ",
                remedy=LOWER_STEP,
            )
        )
    return found


def run_status(log_history, *, labels, answers, selected_epoch=None):
    """(status, why, remedy) of one run, from its log history and the scored validation answers
    (labels: the split's; answers: the run's). remedy: what the advice asks for."""
    history = scored_history(log_history, selected_epoch)
    losses = [entry["loss"] for entry in history if "loss" in entry]
    finite = bool(losses) and all(map(math.isfinite, losses))
    levels = LossLevels.of(losses) if finite else None  # read once, by every rule below
    found = loss_findings(history, losses, levels) if losses else []
    eval_losses = [entry["eval_loss"] for entry in history if "eval_loss" in entry]
    if any(not math.isfinite(loss) for loss in eval_losses):
        found.append(Finding("diverged", "its validation loss is not a number", LOWER_STEP))
    starts = [entry for entry in history if "eval_accuracy" in entry]
    evidence = held_out(labels, answers, starts[0]["eval_accuracy"] if starts else None)
    if len(np.unique(labels)) > 1:
        shares = [
            entry["eval_positive_share"] for entry in starts if "eval_positive_share" in entry
        ]
        found += answer_findings(int(np.sum(answers)), len(answers), shares)
        if not any(f.status in ("collapsed", "did not learn") for f in found):
            found += learning_findings(evidence, levels)
    if not found:
        return "ok", "", None
    status = min((f.status for f in found), key=BROKEN.index)
    why = "; ".join(dict.fromkeys(f.why for f in found))
    if any(f.remedy == LOWER_STEP for f in found) or ended_above_chance(levels):
        return status, why, LOWER_STEP
    return status, why, min((f.remedy for f in found), key=(MORE_EVIDENCE, MORE_STEPS).index)


def ended_above_chance(levels):
    return bool(levels and levels.late - CHANCE_LOSS > NOISE_SIGMAS * levels.error)


def learning_findings(evidence, levels):
    """Did not learn, on held-out evidence: not significantly above the majority-class floor; or,
    above it but not above its own start, neither its accuracy nor its training loss moved (levels:
    the training losses' LossLevels, or None)."""
    p_floor = evidence.p_above(evidence.floor)
    said = f"its validation accuracy {evidence.accuracy:.3f}"
    if p_floor >= LEARNED_ALPHA:
        why = (
            f"{said} is not significantly above {evidence.floor:.3f}, the score of always "
            f"answering '{evidence.floor_class}' (one-sided binomial p = {p_floor:.3g} on "
            f"{evidence.items:,} items; learning takes p < {LEARNED_ALPHA})"
        )
        if evidence.accuracy > evidence.floor:
            # above the floor, but not by enough on this many items: more items would show it
            return [Finding("did not learn", why, MORE_EVIDENCE)]
        if levels and levels.fell:
            why += (
                f", though its training loss fell from {levels.early:.3g} to {levels.late:.3g}: "
                "what it fit does not carry to held-out sentences"
            )
        return [Finding("did not learn", why)]
    start = evidence.start
    if start is None or start <= evidence.floor or evidence.p_above(start) < LEARNED_ALPHA:
        return []
    if evidence.accuracy <= start and not (levels and levels.late < levels.early):
        moved = f" ({levels.early:.3g} to {levels.late:.3g})" if levels else ""
        return [
            Finding(
                "did not learn",
                f"{said} is no higher than at the start ({start:.3f}) and its training loss did "
                f"not fall{moved}",
            )
        ]
    return []


def answer_findings(positive_answers, items, starts):
    """A constant answer: collapsed, or did not learn when the run answered so from the start.
    starts: the share answered positive at the start (the first evaluation), when logged."""
    constant = answer_mix(positive_answers, items)
    if not constant:
        return []
    said = f"it answers '{constant}' to {answered(positive_answers, items)} validation items"
    start = answer_mix(round(starts[0] * items), items) if starts else None
    if start and start != constant:
        return [
            Finding("collapsed", f"{said}, where it answered '{start}' to all of them at the start")
        ]
    if start:
        return [Finding("did not learn", f"{said}, as it did at the start")]
    if starts:
        said += f", where it answered both at the start ({100 * starts[0]:.0f}% positive)"
    return [Finding("collapsed", said)]


def answered(positive, items):
    """'every one of the 872' or '871 of the 872'."""
    most = max(positive, items - positive)
    return f"every one of the {items:,}" if most == items else f"{most:,} of the {items:,}"


def advice(remedy, run, cfg):
    """The exact flags to change for a broken run: a lower learning rate when its loss blew up or
    rose, more validation items when it scored above the floor on too few to show it, more or larger
    steps when it moved too little."""
    learning_rate, epochs = getattr(cfg, f"learning_rate_{run}"), getattr(cfg, f"epochs_{run}")
    if remedy == MORE_EVIDENCE:
        return (
            "score it on more validation items: a larger --subset_fraction (GLUE validation has "
            "872 sentences); its answers beat the floor, but too few were scored to show it "
            "learned"
        )
    if remedy == LOWER_STEP:
        return (
            f"lower its learning rate: --learning_rate_{run} {learning_rate / 10:g} (a tenth of "
            f"{learning_rate:g}); if it still blows up, --weight_decay {cfg.weight_decay / 10:g} "
            "(AdamW takes learning rate x weight decay off every weight each step)"
        )
    if cfg.train_sizes:  # on a learning curve the minimum steps decide the small sizes' epochs
        least = getattr(cfg, f"min_steps_{run}")
        return (
            f"give it more or larger steps: --min_steps_{run} {4 * max(least, 1)} and "
            f"--epochs_{run} {4 * epochs:g} (4x), or --learning_rate_{run} "
            f"{10 * learning_rate:g} (10x), or larger --train_sizes"
        )
    return (
        f"give it more or larger steps: --epochs_{run} {4 * epochs:g} (4x) or "
        f"--learning_rate_{run} {10 * learning_rate:g} (10x), or more data (a larger "
        "--subset_fraction)"
    )
