"""Whether a run trained well enough to be evidence, judged on the weights that were scored: its
status, why in words, and the exact settings to change.

ok             nothing below
diverged       a non-finite training or validation loss, or a late training loss well above its
               early or best level (the blow-up named)
unstable       a logged training loss at least SPIKE_RATIO times where it started, even when it
               came back down
collapsed      every scored validation answer (within one item) is one class while the split has
               both
did not learn  a late training loss at or above chance (ln 2), the loss of answering 50/50, or just
               under it with near-constant answers

Losses are judged as window means (a fifth of the logged points, at least one), never single
batches: a batch's loss is noisy, and a short run's first and last batches alone would flag healthy
runs. With select_best_epoch only the epochs up to the one selected count: later epochs were not
scored.
"""

import math

import numpy as np

from sst2kit.names import LABEL_NAMES

CHANCE_LOSS = math.log(2)  # cross-entropy of answering P = 0.5 to every item
DIVERGED_RATIO = 1.5  # late window mean over the early (or lowest) one
SPIKE_RATIO = 10  # one logged loss over the starting level
SPIKE_FLOOR = 0.1  # a run that starts near 0 loss is not "unstable" for a batch at 0.02
# a late loss above this share of ln 2, with near-constant answers, learned nothing
NEAR_CHANCE = 0.95
NEAR_CONSTANT = 0.95  # share of one class in the answers that counts as near-constant
NOISE_SIGMAS = 3  # a rise below chance must stand this many standard errors above the batch noise
BROKEN = ("diverged", "unstable", "collapsed", "did not learn")
STATUS_VERBS = {
    "diverged": "diverged",
    "unstable": "was unstable",
    "collapsed": "collapsed",
    "did not learn": "did not learn",
}


def window_means(losses):
    """Mean of each run of `width` consecutive logged losses, and that width."""
    width = max(1, len(losses) // 5)
    kernel = np.ones(width) / width
    return np.convolve(losses, kernel, mode="valid"), width


def batch_noise(losses):
    """The logged losses' own noise (SD), from consecutive differences: robust to a trend, 0 with <3
    points."""
    if len(losses) < 3:
        return 0.0
    return float(np.median(np.abs(np.diff(losses))) / 0.6745 / math.sqrt(2))


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


def loss_findings(losses):
    """(status, why) for each thing the training losses show wrong."""
    found = []
    bad = next((loss for loss in losses if not math.isfinite(loss)), None)
    if bad is not None:
        return [("diverged", f"its training loss became {bad}")]
    means, width = window_means(np.asarray(losses, float))
    early, late, lowest = float(means[0]), float(means[-1]), float(means.min())
    # the median: a spike inside it is no start
    peak, start = max(losses), float(np.median(losses[:width]))
    if peak >= SPIKE_RATIO * max(start, SPIKE_FLOOR):
        found.append(
            (
                "unstable",
                f"its training loss spiked to {peak:,.4g} from {start:.3g}"
                + (f" and ended at {late:.3g}" if late < peak else ""),
            )
        )
    reference = min(early, lowest)
    rise_is_real = late >= CHANCE_LOSS or late - reference > NOISE_SIGMAS * batch_noise(
        losses
    ) * math.sqrt(2 / width)
    if len(means) > 1 and late > DIVERGED_RATIO * reference and rise_is_real:
        found.append(
            (
                "diverged",
                f"its training loss rose to {late:.3g} (mean of its last {width} logged values) "
                f"from {reference:.3g}" + (f", peak {peak:,.4g}" if peak > 2 * late else ""),
            )
        )
    return found


def run_status(log_history, *, positive_answers, items, classes_present, selected_epoch=None):
    """(status, why) of one run, from its log history and the validation answers of the weights it
    was scored with: positive_answers of items; classes_present, how many classes the validation
    labels hold."""
    history = scored_history(log_history, selected_epoch)
    losses = [entry["loss"] for entry in history if "loss" in entry]
    found = loss_findings(losses) if losses else []
    eval_losses = [entry["eval_loss"] for entry in history if "eval_loss" in entry]
    if any(not math.isfinite(loss) for loss in eval_losses):
        found.append(("diverged", "its validation loss is not a number"))
    if classes_present > 1:
        starts = [e["eval_positive_share"] for e in history if "eval_positive_share" in e]
        found += answer_findings(positive_answers, items, starts)
    if losses and all(map(math.isfinite, losses)):
        found += chance_findings(losses, positive_answers, items)
    if not found:
        return "ok", ""
    status = min((status for status, _ in found), key=BROKEN.index)
    return status, "; ".join(dict.fromkeys(why for _, why in found))


def answer_findings(positive_answers, items, starts):
    """A constant answer: collapsed, or did not learn when the run answered so from the start.
    starts: the share answered positive at the start (the first evaluation), when logged."""
    constant = answer_mix(positive_answers, items)
    if not constant:
        return []
    said = f"it answers '{constant}' to {answered(positive_answers, items)} validation items"
    start = answer_mix(round(starts[0] * items), items) if starts else None
    if start and start != constant:
        return [("collapsed", f"{said}, where it answered '{start}' to all of them at the start")]
    if start:
        return [("did not learn", f"{said}, as it did at the start")]
    if starts:
        said += f", where it answered both at the start ({100 * starts[0]:.0f}% positive)"
    return [("collapsed", said)]


def chance_findings(losses, positive_answers, items):
    """A late training loss no better than answering 50/50 (or just under it, with near-constant
    answers): did not learn."""
    late = float(window_means(np.asarray(losses, float))[0][-1])
    near_constant = max(positive_answers, items - positive_answers) >= NEAR_CONSTANT * items
    if late >= CHANCE_LOSS or (late >= NEAR_CHANCE * CHANCE_LOSS and near_constant):
        return [
            (
                "did not learn",
                f"its training loss ended at {late:.3f} (from {losses[0]:.3f}), no better than "
                f"answering 50/50 (ln 2 = {CHANCE_LOSS:.3f})",
            )
        ]
    return []


def answered(positive, items):
    """'every one of the 872' or '871 of the 872'."""
    most = max(positive, items - positive)
    return f"every one of the {items:,}" if most == items else f"{most:,} of the {items:,}"


def advice(status, why, *, run, learning_rate, epochs, weight_decay):
    """The exact flags to change for a broken run: lower its step when it blew up, more or larger
    steps when it barely moved."""
    if status in ("diverged", "unstable") or "rose" in why:
        return (
            f"lower its learning rate: --learning_rate_{run} {learning_rate / 10:g} (a tenth of "
            f"{learning_rate:g}); if it still blows up, --weight_decay {weight_decay / 10:g} "
            "(AdamW takes learning rate x weight decay off every weight each step)"
        )
    return (
        f"give it more or larger steps: --epochs_{run} {4 * epochs:g} (4x) or "
        f"--learning_rate_{run} "
        f"{10 * learning_rate:g} (10x), or more data (a larger --subset_fraction)"
    )
