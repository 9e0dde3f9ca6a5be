"""What happens before the script's heavy imports (torch, transformers: seconds): config.py is read
and its fields checked, its own errors (a syntax error, a name it does not define, a value of the
wrong type, the file missing) said in one line naming config.py and the line; `--help` is answered
at once; and Ctrl-C while the libraries load is one line, not a traceback. The script calls begin()
before its other imports; importing this module does nothing."""

import functools
import gc
import importlib.util
import io
import os
import re
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Literal, Union, get_args, get_origin, get_type_hints

# the config.py that `import config` loads: the one beside the script
SPEC = importlib.util.find_spec("config")
CONFIG_FILE = (
    Path(SPEC.origin).resolve()
    if SPEC and SPEC.origin
    else Path(sys.argv[0]).resolve().parent / "config.py"
)
RUN_AS_SCRIPT = Path(sys.argv[0]).name == "sst2_compare.py"


def process_started():
    """The time.perf_counter() reading at which this process started (the kernel's record in /proc,
    to the clock tick), or None where that is unknown: the run's `imports` stage counts from
    there."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started_after_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime
        age = float(Path("/proc/uptime").read_text().split()[0]) - started_after_boot
    except (OSError, ValueError, IndexError):
        return None
    return time.perf_counter() - age


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def interrupted_while_starting(signum, frame):
    # under torchrun every process gets the Ctrl-C: one of them says so
    if os.environ.get("RANK", "0") == "0":
        print("\ninterrupted while starting: nothing was written", file=sys.stderr)
    os._exit(128 + signum)  # no exception unwinding through half-imported libraries


def config_line(name):
    """The line of config.py that sets a field, as `config.py line N` (or just config.py)."""
    try:
        lines = CONFIG_FILE.read_text(encoding="utf-8").splitlines()
    except OSError:
        return "config.py"
    number = next(
        (n for n, line in enumerate(lines, 1) if line.strip().startswith(f"{name}:")), None
    )
    return f"config.py line {number}" if number else "config.py"


def type_matches(value, annotation):
    """Is value of the field's declared type? (config.py edits bypass the command line's
    conversion)"""
    if get_origin(annotation) is Literal:
        return value in get_args(annotation)
    if get_origin(annotation) is Union:  # Optional[X]
        return any(type_matches(value, option) for option in get_args(annotation))
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def type_name(annotation):
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(map(repr, get_args(annotation)))
    if get_origin(annotation) is Union:
        return " or ".join(type_name(option) for option in get_args(annotation)).replace(
            "NoneType", "None"
        )
    return {float: "a number", int: "a whole number", str: "text", bool: "True or False"}.get(
        annotation, annotation.__name__
    )


def field_types(config_class):
    # not dataclasses.fields: HfArgumentParser rewrites their types in place
    return get_type_hints(config_class)


def type_problem(cfg):
    """The first field that holds a value of another type than it declares, in words; None when all
    are right. (Checked on config.py's defaults too, before argparse would convert a wrong one and
    blame a command-line flag nobody typed.)"""
    for name, annotation in field_types(type(cfg)).items():
        value = getattr(cfg, name)
        if not type_matches(value, annotation):
            return (
                f"{config_line(name)}: {name} = {value!r} is not {type_name(annotation)}: fix "
                "it in config.py"
            )
    return None


def load_config():
    """config.py's Config; any error in config.py itself is one line and exit status 2."""
    try:
        os.getcwd()
    except FileNotFoundError:  # the libraries (and relative paths) would fail in a dozen places
        fail(
            "the current folder no longer exists (it was deleted): cd into an existing folder and "
            "run again"
        )
    if SPEC is None or not CONFIG_FILE.is_file():
        fail(f"{CONFIG_FILE} is missing: restore it (git checkout config.py)")
    try:
        from config import Config
    except SyntaxError as err:
        fail(
            f"config.py line {err.lineno}: {err.msg}: fix it, or restore the file (git checkout "
            "config.py)"
        )
    # whatever config.py raises while it runs is config.py's fault, a sys.exit() or
    # KeyboardInterrupt in it too (a real Ctrl-C here is taken by interrupted_while_starting,
    # installed before config.py loads)
    except BaseException as err:  # noqa: BLE001
        fail(
            f"{where_it_broke(err)}: {type(err).__name__}: {err}: fix it, or restore the file (git "
            "checkout config.py)"
        )
    problem = type_problem(Config())
    if problem:
        fail(problem)
    return Config


def where_it_broke(err):
    """'config.py line N': the field a dataclass refused, else the line the error came from."""
    named = re.search(r"\bfield (\w+)", str(err))  # dataclasses name the field they refuse
    if named:
        return config_line(named.group(1))
    frames = reversed(traceback.extract_tb(err.__traceback__))
    line = next((f.lineno for f in frames if Path(f.filename).resolve() == CONFIG_FILE), None)
    return f"config.py line {line}" if line else "config.py"


def begin(argv):
    """The console made safe, Ctrl-C made one line, config.py read and checked, --help answered.
    Returns the command-line parser over config.py's Config, and the time.perf_counter() reading
    at which the script's process started (None when a test calls main())."""
    for stream in (sys.stdout, sys.stderr):
        try:  # a character the console cannot show is replaced, never an error
            stream.reconfigure(errors="replace")
        except (AttributeError, ValueError):  # not a text stream of the io module: a test's capture
            pass
    if RUN_AS_SCRIPT:  # Ctrl-C from here on is one line, also while the parser's library loads
        signal.signal(signal.SIGINT, interrupted_while_starting)
    config_class = load_config()  # first: it also finds a deleted current folder
    from sst2kit.settings import parse_config

    parse = functools.partial(parse_config, config_class)
    if RUN_AS_SCRIPT and {"-h", "--help"} & set(argv):
        print_help(parse)
    return parse, process_started() if RUN_AS_SCRIPT else None


def print_help(parse_config):
    """--help: the settings printed, or one line saying they could not be (a full disk behind a
    redirect)."""
    # argparse would swallow a failed write to the console
    console, sys.stdout = sys.stdout, io.StringIO()
    try:
        parse_config()  # prints the settings and exits
    except SystemExit as done:
        text, sys.stdout = sys.stdout.getvalue(), console
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except OSError as err:
            print(f"error: cannot print the help ({err.strerror or err})", file=sys.stderr)
            os._exit(74)  # sysexits' EX_IOERR; nothing left for Python to flush again at exit
        raise done
    finally:
        sys.stdout = console


class Terminated(KeyboardInterrupt):
    """SIGTERM, which docker, Slurm and Kubernetes send to stop a job: handled like Ctrl-C."""


# set once a stop is being handled: the stop signal is no longer sent again
STOPPING = threading.Event()


def stop_on_sigterm(signum, frame):
    """Stop the run. Python swallows an exception raised where the garbage collector runs a
    weakref's callback or a finalizer (printed as 'ignored'), and the signal can land there: such a
    stop is sent again at once (stops_not_printed), and, should one be lost where no hook sees it,
    again half a second later until the stop is seen handled."""
    resend = threading.Timer(0.5, lambda: STOPPING.is_set() or os.kill(os.getpid(), signum))
    resend.daemon = True
    resend.start()
    raise Terminated


def stops_not_printed(unraisable):
    """A stop swallowed in a callback is sent again at once, to land outside it (half a second
    later the run could have finished a whole seed of a small run): no traceback printed."""
    if isinstance(unraisable.exc_value, Terminated):  # from a thread: it lands after the hook
        resend = threading.Timer(0.01, os.kill, (os.getpid(), signal.SIGTERM))
        resend.daemon = True
        resend.start()
    elif not isinstance(unraisable.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)


def guarded(run):
    """run() with the process's stops made one line: bad input exits 2, Ctrl-C 130 and SIGTERM 143
    (saying what was kept), a lost console 74. Returns the exit status."""
    # imported here: the libraries are loaded by the time the run starts
    from sst2kit import console, processes
    from sst2kit.errors import UsageError

    # the libraries' half a million objects live as long as the process: frozen, they are skipped by
    # the full garbage collection each Trainer.train starts with (accelerate's free_memory: 0.3 s)
    gc.freeze()
    STOPPING.clear()
    sys.unraisablehook = stops_not_printed
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C: the run's own clean stop
    try:
        run()
    except UsageError as err:  # every process stops; the main one says why
        console.error(err)
        return 2
    except KeyboardInterrupt as stop:
        STOPPING.set()
        if processes.is_main():
            print(
                f"\n{'terminated' if isinstance(stop, Terminated) else 'interrupted'}: "
                "results.json and predictions.csv hold every seed finished before it (none if none "
                "had); no file or model folder is left half-written.",
                file=sys.stderr,
            )
        return 128 + (signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT)
    finally:
        processes.close()
    return console.exit_status()
