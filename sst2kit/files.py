"""The run folder and how anything lands in it: a fresh folder per run, every file written through a
temporary name and a rename (with stop signals held back while files are renamed together), CSV
cells any reader splits the same way, JSON any reader parses, and model folders that are whole or
absent. Every write error is one line."""

import csv
import errno
import fcntl
import itertools
import json
import math
import os
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from sst2kit import processes
from sst2kit.errors import UsageError


def new_run_dir(output_dir):
    """A fresh folder per run, named by its start time, so no run overwrites another (made by the
    main process; two runs started in the same second get a folder each: making it is the test of
    whether it is taken)."""
    run_dir, problem = None, None
    if processes.is_main():
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        for n in itertools.count():
            run_dir = Path(output_dir) / (f"run-{stamp}-{n}" if n else f"run-{stamp}")
            try:
                run_dir.mkdir(parents=True)
                break
            except FileExistsError:
                continue
            except OSError as err:
                problem = f"cannot make {run_dir} ({err.strerror}): pick another --output_dir"
                break
    # every process stops if the main one cannot
    run_dir, problem = processes.from_main((run_dir, problem))
    if problem:
        raise UsageError(problem)
    return run_dir


def lock_run_dir(run_dir):
    """An exclusive lock on the run folder, held until the returned descriptor is closed: a second
    run resuming the same folder meanwhile is refused in one line instead of training the same
    seeds into it. The lock is the kernel's (flock on the folder itself): no lock file is left
    behind, and a killed run's lock goes with it."""
    handle = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(handle)
        raise UsageError(
            f"{run_dir} is being written by another run right now: wait for it to finish (or stop "
            "it), then resume"
        ) from None
    return handle


class WriteError(UsageError):
    """A file of the run could not be written (a full disk, a quota, a vanished or read-only
    folder)."""


def cannot_write(path, err):
    if err.errno == errno.ENOSPC:
        return WriteError(
            f"no space left on {path.parent}: free some space; the files already there are whole"
        )
    if not path.parent.is_dir():
        return WriteError(f"cannot write {path} (its folder no longer exists)")
    return WriteError(
        f"cannot write {path} ({err.strerror or err}): the files already there are whole"
    )


def write_atomic(path, write):
    """Write through a temporary file and a rename: a run stopped at any point never leaves half a
    file, and a writer that fails leaves no temporary file either. Any write error is one line, not
    a traceback."""
    write_together([(path, write)])


@contextmanager
def stop_signals_deferred():
    """SIGINT and SIGTERM held back while a few renames finish as one, then delivered to the
    handlers the run had. (Python runs signal handlers in the main thread whichever thread the
    signal reaches, so they are swapped for ones that only take note; masking the signal in one
    thread would not stop the others from taking it.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = {
        held: signal.signal(held, lambda signum, frame: received.append(signum))
        for held in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for held, handler in previous.items():
            signal.signal(held, signal.SIG_DFL if handler is None else handler)
        if received:
            signal.raise_signal(received[0])


def write_together(files):
    """(path, writer) pairs committed together: every file is written to a temporary name first,
    then all are renamed into place with stop signals held back, so the files never describe
    different seeds."""
    temporary = [(path, path.with_name(f".{path.name}.tmp"), write) for path, write in files]
    try:
        for path, tmp, write in temporary:
            try:
                write(tmp)
            except OSError as err:
                raise cannot_write(path, err) from None
        with stop_signals_deferred():
            for path, tmp, _ in temporary:
                try:
                    os.replace(tmp, path)
                except OSError as err:
                    raise cannot_write(path, err) from None
    finally:
        for _, tmp, _ in temporary:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:  # the folder itself may be gone
                pass


def check_run_dir(run_dir):
    """The run folder is still there: a folder deleted mid-run is noticed at the next write (the
    Trainer would quietly make it anew, without the files written before)."""
    if not Path(run_dir).is_dir():
        raise WriteError(f"the run folder {run_dir} disappeared during the run")


def save_model_whole(trainer, folder):
    """The trainer's model saved under a temporary name, renamed into place once whole (by the
    process that saves: under data-parallel training, the main one). Whatever stops the save (a
    write error, Ctrl-C, SIGTERM) removes the half-saved folder."""
    partial = folder.with_name(f".{folder.name}.partial")
    try:
        if utf8_path(partial):
            trainer.save_model(str(partial))
        # the tokenizer's writer takes UTF-8 paths only: a name an ASCII locale escapes is saved
        # elsewhere
        else:
            staging = Path(tempfile.mkdtemp(prefix="sst2_compare-model-"))
            try:
                trainer.save_model(str(staging / "model"))
                if trainer.args.should_save:
                    shutil.move(staging / "model", partial)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        if trainer.args.should_save:
            with stop_signals_deferred():
                os.replace(partial, folder)
    except OSError as err:
        shutil.rmtree(partial, ignore_errors=True)
        raise cannot_write(folder, err) from None
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def utf8_path(path):
    """Whether a path is valid UTF-8 (a name that the locale could only hold as escaped bytes is
    not)."""
    try:
        str(path).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text):
    """A CSV cell a spreadsheet would run as a formula gets a leading apostrophe (shown as text, not
    run). A text that really starts with an apostrophe gets one more, so the guard can always be
    undone: drop one leading apostrophe where there is one."""
    return f"'{text}" if text.startswith((*FORMULA_STARTS, "'")) else text


def write_csv(path, frame):
    """A frame as UTF-8 CSV that every reader splits into the same rows: every text cell quoted
    (pandas alone quotes only for a comma, quote or newline, so a bare carriage return would end the
    row for most readers), and the sentence column guarded against spreadsheet formulas."""
    frame = (
        frame.assign(sentence=frame["sentence"].map(spreadsheet_safe))
        if "sentence" in frame
        else frame
    )
    frame.to_csv(
        path, index=False, quoting=csv.QUOTE_NONNUMERIC, encoding="utf-8", lineterminator="\n"
    )


def readable(text):
    """Text that is valid UTF-8: a path Python read under an ASCII locale holds its UTF-8 bytes as
    escapes (surrogates), which no UTF-8 file can hold; they are decoded as the UTF-8 they were (the
    rest replaced)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def strict_json(value):
    """JSON for any reader: NaN and infinities (not JSON) become null; text is valid UTF-8."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        return readable(value)
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    return value


def write_json(path, value):
    path.write_text(json.dumps(strict_json(value), indent=2, allow_nan=False), encoding="utf-8")


def write_text(path, text):
    path.write_text(readable(text), encoding="utf-8")
