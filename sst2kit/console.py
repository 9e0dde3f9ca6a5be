"""Printing on the main process, and wall time per stage. Light on purpose: training code imports it without
pulling in pandas, matplotlib or scikit-learn."""
import time
from contextlib import contextmanager

from sst2kit import processes


def say(*args):
    """Print on the main process only: one report however many processes train."""
    if processes.is_main():
        print(*args, flush=True)


def listed(items):
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


class Stopwatch:
    """Wall time per stage: `with stopwatch("data"): ...` adds the stage's seconds under its name (or start and
    stop it by name). total() also says how much of the run no stage holds (`outside stages`)."""

    def __init__(self):
        self.started, self.seconds, self.running = time.perf_counter(), {}, {}

    @contextmanager
    def __call__(self, stage):
        self.start(stage)
        try:
            yield
        finally:
            self.stop(stage)

    def start(self, stage):
        self.running[stage] = time.perf_counter()

    def stop(self, stage):
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - self.running.pop(stage)

    def total(self):
        total = time.perf_counter() - self.started
        return {**self.seconds, "outside stages": total - sum(self.seconds.values()), "total": total}
