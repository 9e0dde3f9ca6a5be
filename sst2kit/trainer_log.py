"""The Trainer's progress bars, labelled with the run and seed, without its log lines in the
console: each logged dict (loss, learning rate, validation metrics) goes to the run folder's
trainer_log.jsonl instead, and to the console only when asked."""

import json
import os

from tqdm.auto import tqdm
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_utils import has_length

from sst2kit.console import say
from sst2kit.files import check_run_dir


class ProgressToLogFile(ProgressCallback):
    def __init__(self, log_path, echo=False):
        super().__init__()
        self.log_path, self.echo = log_path, echo

    # the upstream bar, with the run's name on it
    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.training_bar = tqdm(
                total=state.max_steps, dynamic_ncols=True, desc=f"train {args.run_name}"
            )
        self.current_step = 0

    def on_prediction_step(self, args, state, control, *, eval_dataloader=None, **kwargs):
        if (
            state.is_world_process_zero
            and self.prediction_bar is None
            and has_length(eval_dataloader)
        ):
            self.prediction_bar = tqdm(
                total=len(eval_dataloader),
                leave=self.training_bar is None,
                dynamic_ncols=True,
                desc=f"score {args.run_name}",
            )
        super().on_prediction_step(args, state, control, eval_dataloader=eval_dataloader, **kwargs)

    def on_log(self, args, state, control, *, logs=None, **kwargs):
        if not state.is_world_process_zero:
            return
        if self.log_path is not None:
            check_run_dir(self.log_path.parent)
            line = (json.dumps({"run": args.run_name, **logs}) + "\n").encode("utf-8")
            try:
                append_whole(self.log_path, line)
            # a log is not worth stopping the training for: say so once, go on without it
            except OSError as err:
                say(
                    f"warning: cannot write {self.log_path} ({err.strerror or err}); the Trainer's "
                    "log is not kept from here on (the lines before are whole)"
                )
                self.log_path = None
        if self.echo:
            super().on_log(args, state, control, logs=logs, **kwargs)


def append_whole(path, line):
    """line appended whole or not at all: written unbuffered, and the file cut back to its length
    before it when the write fails partway (a full disk). A buffered file cannot be cut back: its
    truncate first flushes the bytes that just failed, fails again, and leaves half a line."""
    log = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        whole, written = os.fstat(log).st_size, 0
        try:
            while written < len(line):
                written += os.write(log, line[written:])
        except OSError:
            os.ftruncate(log, whole)
            raise
    finally:
        os.close(log)


def quiet_progress(trainer, log_path, echo):
    """Swap the Trainer's own progress printer for one that logs to a file; returns the trainer."""
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(ProgressToLogFile(log_path, echo))
    return trainer
