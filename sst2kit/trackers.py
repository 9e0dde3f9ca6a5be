"""The experiment trackers people already use (--report_to): the Trainer's own integrations, each
run and seed under its own name, TensorBoard's event files inside the run folder, and the
experiment's answer logged once at the end where the tracker keeps it (TensorBoard)."""

import importlib.util

from transformers import TrainerCallback
from transformers.integrations import INTEGRATION_TO_CALLBACK

from sst2kit.console import say
from sst2kit.errors import UsageError

# --report_to -> its package
TRACKERS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


def check_trackers(report_to):
    """A tracker named is installed: else one line naming the package, before anything loads."""
    for tracker in trackers(report_to):
        if importlib.util.find_spec(TRACKERS[tracker]) is None:
            raise UsageError(
                f"--report_to {report_to} needs the {TRACKERS[tracker]} package: pip install "
                f"{TRACKERS[tracker]} (or pick another --report_to)"
            )


def trackers(report_to):
    """The trackers named by --report_to, as a list."""
    return [] if report_to == "none" else list(TRACKERS) if report_to == "all" else [report_to]


def trainer_report_to(report_to):
    """What the Trainer's report_to gets: every tracker but TensorBoard, whose callback is made here
    so its event files land in the run folder under the run's own name ('none' when that leaves
    nothing)."""
    others = [tracker for tracker in trackers(report_to) if tracker != "tensorboard"]
    return others or "none"


def tracker_callbacks(report_to, run_dir, run_name):
    """TensorBoard's callback writing to run_dir/tensorboard/<run_name>, when asked for
    (guarded)."""
    if "tensorboard" not in trackers(report_to):
        return []
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return [
        Guarded(TensorBoardCallback(SummaryWriter(log_dir=str(run_dir / "tensorboard" / run_name))))
    ]


class Guarded(TrainerCallback):
    """A tracker's callback whose failure (a full disk, a lost connection, a server that refuses)
    costs the tracker, never the run: the first error is said in one line and the tracker is dropped
    for that run."""

    def __init__(self, callback):
        self.callback, self.failed = callback, False


def forwarded(event):
    def call(self, args, state, control, **kwargs):
        if self.failed:
            return None
        try:
            return getattr(self.callback, event)(args, state, control, **kwargs)
        except Exception as err:  # noqa: BLE001 - whatever a tracker raises, the training goes on
            self.failed = True
            say(
                f"warning: {type(self.callback).__name__} failed ({type(err).__name__}: "
                f"{str(err)[:120]}); "
                f"{args.run_name} goes on without it (its log is in trainer_log.jsonl)"
            )
            return None

    return call


for _event in [name for name in vars(TrainerCallback) if name.startswith("on_")]:
    setattr(Guarded, _event, forwarded(_event))


def guard_trackers(trainer):
    """The Trainer's own tracker callbacks (--report_to) wrapped in Guarded; returns the trainer."""
    tracker_classes = tuple(INTEGRATION_TO_CALLBACK.values())
    for callback in list(trainer.callback_handler.callbacks):
        if isinstance(callback, tracker_classes):
            trainer.callback_handler.remove_callback(callback)
            trainer.callback_handler.add_callback(Guarded(callback))
    return trainer


def log_answer(report_to, run_dir, *, headline, answer):
    """The experiment's answer, once, where the tracker keeps it: TensorBoard's 'experiment' run
    holds the headline delta, its interval and whether it is claimed, and the Answer line as
    text."""
    if "tensorboard" not in trackers(report_to):
        return
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(run_dir / "tensorboard" / "experiment")) as writer:
        writer.add_scalar("answer/delta_accuracy", headline.delta_accuracy)
        writer.add_scalar("answer/ci95_low", headline.delta_accuracy_ci95[0])
        writer.add_scalar("answer/ci95_high", headline.delta_accuracy_ci95[1])
        writer.add_scalar("answer/difference_claimed", float(headline.difference_claimed))
        writer.add_text("answer", answer)
