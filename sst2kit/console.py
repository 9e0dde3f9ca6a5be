"""Printing on the main process, and wall time per stage. Light on purpose: training code imports it
without pulling in pandas, matplotlib or scikit-learn.

The console is the least important place the run writes to: a closed pipe (`| head`), a full or
vanished stdout, or a terminal that cannot show a character never stops the run. Characters the
console's encoding lacks are replaced, and once stdout fails, the run goes on without it, writes
every file, and exits with CONSOLE_LOST."""

import atexit
import os
import sys
import time
import unicodedata
from contextlib import contextmanager

from sst2kit import processes

# exit status (sysexits' EX_IOERR) of a run that finished its files but lost its console
CONSOLE_LOST = 74


class Console:
    lost = None  # why stdout stopped taking lines (None while it takes them)


def say(*args):
    """Print on the main process only: one report however many processes train."""
    if not processes.is_main() or Console.lost:
        return
    try:
        print(*args, flush=True)
    # a closed pipe, a full disk behind a redirect: the run matters more than its echo
    except OSError as err:
        Console.lost = err.strerror or type(err).__name__
        try:  # what Python would still flush at exit goes nowhere, instead of raising there
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass


def visible(text):
    """Text from the data as a terminal shows it harmlessly: control characters (escape sequences
    that move the cursor or retitle the window, line breaks) and invisible format characters (bidi
    overrides that reorder what follows) written out as escapes, e.g. '\\x1b' and '<U+202E>'."""
    out = []
    for ch in str(text):
        category = unicodedata.category(ch)
        if category == "Cc":
            out.append(ch.encode("unicode_escape").decode("ascii"))
        elif category in ("Cf", "Zl", "Zp"):
            out.append(f"<U+{ord(ch):04X}>")
        else:
            out.append(ch)
    return "".join(out)


def error(message):
    """The one line a stopped run ends with, on stderr (by the main process)."""
    if processes.is_main():
        try:
            print(f"error: {visible(message)}", file=sys.stderr, flush=True)
        except OSError:
            pass


def exit_status():
    """0, or CONSOLE_LOST with a line on stderr when stdout failed during the run (its files are all
    written)."""
    if not Console.lost:
        return 0
    error(
        f"the console's output stopped ({Console.lost}); the run went on and wrote every file in "
        "its folder"
    )
    return CONSOLE_LOST


def leave(status):
    """End the process with this status now that the run is over: the exit functions run (logging's
    flush and the like), the console is flushed, and the interpreter's teardown of torch,
    transformers and the rest (1.3 s on a 2-core CPU, for nothing a finished run needs: every file
    is already closed and in place) is skipped."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def listed(items):
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


class Stopwatch:
    """Wall time per stage: `with stopwatch("data"): ...`, or `stopwatch.timed("data", work)`, adds
    the stage's seconds under its name (or start and stop it by name). Stages never overlap:
    starting one while another runs is a bug in the caller. total() also says how much of the run
    no stage holds (`outside stages`)."""

    def __init__(self, process_started=None):
        """process_started: the perf_counter() reading at which the process started, when known: the
        time until now (the interpreter, the imports, reading the config) is then the `imports`
        stage."""
        now = time.perf_counter()
        self.started, self.seconds, self.running = process_started or now, {}, {}
        if process_started:
            self.seconds["imports"] = now - process_started

    @contextmanager
    def __call__(self, stage):
        self.start(stage)
        try:
            yield
        finally:
            self.stop(stage)

    def timed(self, stage, work, *args, **kwargs):
        """work(*args, **kwargs), its seconds counted under stage."""
        with self(stage):
            return work(*args, **kwargs)

    def start(self, stage):
        if self.running:
            raise RuntimeError(f"stage {stage!r} started while {next(iter(self.running))!r} runs")
        self.running[stage] = time.perf_counter()

    def stop(self, stage):
        self.seconds[stage] = (
            self.seconds.get(stage, 0.0) + time.perf_counter() - self.running.pop(stage)
        )

    def total(self):
        total = time.perf_counter() - self.started
        return {
            **self.seconds,
            "outside stages": total - sum(self.seconds.values()),
            "total": total,
        }
