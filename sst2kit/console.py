"""Printing on the main process, and wall time per stage. Light on purpose: training code imports it without
pulling in pandas, matplotlib or scikit-learn."""
import time
from contextlib import contextmanager

from accelerate import PartialState


def say(*args):
    """Print on the main process only: one report however many processes train."""
    PartialState().print(*args, flush=True)


def listed(items):
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


class Stopwatch:
    """Wall time per stage: `with stopwatch("data"): ...` adds the stage's seconds under its name."""

    def __init__(self):
        self.started, self.seconds = time.perf_counter(), {}

    @contextmanager
    def __call__(self, stage):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started

    def total(self):
        return {**self.seconds, "total": time.perf_counter() - self.started}
