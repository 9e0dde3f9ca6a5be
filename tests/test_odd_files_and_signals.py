"""Hostile inputs V: odd files and special files, text that talks to the terminal, a run folder or
disk that fails mid-run, config.py that stops the interpreter, settings without bounds. One line,
exit 2 where the input is at fault, nothing half-written, finished work kept."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_cli import broken_config

import sst2_compare as app
from conftest import FAST, ROOT, help_in, tiny_args
from sst2kit import results as results_module
from sst2kit.errors import UsageError


def tiny_run(model_dir, data_dir, out, *extra):
    return app.main(
        [
            *tiny_args(model_dir, data_dir, out),
            *FAST,
            *extra,
        ]
    )


def data_folder(tmp_path, tiny_data_dir, validation_name="validation.parquet"):
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(tiny_data_dir / "train.parquet", folder)
    if validation_name == "validation.parquet":
        shutil.copy(tiny_data_dir / "validation.parquet", folder)
    return folder


# the columns' order ({s} sentence, {l} label, {i} row number): the usual one; the order datasets'
# to_csv writes for SST-2; the label first; an empty last column; labels written as 1.0 and 0.0
LAYOUTS = ["{s},{l}", "{s},{l},{i}", "{l},{s}", "{s},{l},note", "{s},{l} as 1.0"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_csv_with_an_unbalanced_quote_is_refused_naming_the_row(layout, tmp_path):
    """A naive export opens a quote and closes it rows later: the rows between were swallowed into
    that one cell (200 rows in the file, 195 scored, exit 0), whatever the columns' order."""
    from sst2kit.data import read_labelled

    as_float = layout.endswith(" as 1.0")
    layout = layout.removesuffix(" as 1.0")
    rows = [layout.format(s="sentence", l="label", i="idx")]
    layout = layout.replace(",note", ",")  # the note column left empty in every row
    for i in range(200):
        label = f"{i % 2}.0" if as_float else f"{i % 2}"
        rows.append(layout.format(s=f"a fine sentence number {i}", l=label, i=i))
    opened = layout.format(s='"an opened quote that never closes', l="1", i=50)
    rows[50] = opened
    rows[56] = layout.format(s='he said "hello" to it', l="0", i=56)  # where pandas closed it
    path = tmp_path / "validation.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(UsageError, match=r"row 50's cell opens a quotation mark that is never"):
        read_labelled(path)


def test_a_well_quoted_cell_with_line_breaks_is_read_whole(tmp_path):
    """A line break inside a well-quoted cell, even one followed by text that ends like a row of
    the file (',1'), is a sentence, not swallowed rows."""
    from sst2kit.data import read_labelled

    quoted = pd.DataFrame(
        {
            "sentence": ["two lines\nin one cell", "it ends like a row,1\nbut is not", "plain"],
            "label": [1, 0, 1],
        }
    )
    quoted.to_csv(tmp_path / "fine.csv", index=False)
    read = read_labelled(tmp_path / "fine.csv")
    assert read["sentence"] == quoted["sentence"].tolist()


def test_text_from_the_data_cannot_drive_the_terminal():
    """Escape sequences and bidi overrides in a sentence: the flips section (console and report.md)
    shows them as escapes, never as what they do."""
    from sst2kit.report import flip_lines

    attack = "fine\x1b[30A\x1b]0;owned\x07Answer: none\u202etxet\u2069\nnext line"
    flipped = pd.DataFrame(
        {
            "seed": [42],
            "split": ["validation"],
            "label": [1],
            "change": ["fixed"],
            "head_only_prob_pos": [0.1],
            "full_finetune_prob_pos": [0.9],
            "sentence": [attack],
        }
    )
    shown = "\n".join(flip_lines(flipped, 42))
    assert "\x1b" not in shown and "\u202e" not in shown and "\x07" not in shown
    assert "\\x1b[30A" in shown and "<U+202E>" in shown and "\\nnext line" in shown


@pytest.mark.parametrize("kind", ["fifo", "socket", "link to a character device"])
def test_special_files_are_named_for_what_they_are_before_anything_loads(
    kind, tmp_path, tiny_data_dir, tiny_model_dir, capsys, monkeypatch
):
    folder = data_folder(tmp_path, tiny_data_dir, validation_name=None)
    target = folder / "validation.parquet"
    if kind == "fifo":
        os.mkfifo(target)
        said = "is a named pipe (FIFO), not a file"
    elif kind == "socket":
        monkeypatch.chdir(folder)  # a socket's path is short when relative
        server = socket.socket(socket.AF_UNIX)
        server.bind("validation.parquet")
        said = "is a socket, not a file"
    else:
        target.symlink_to("/dev/zero")
        said = "is a link to character device, not a file"
    loaded = []
    monkeypatch.setattr(app, "load_checked_model", lambda cfg: loaded.append(cfg))
    assert tiny_run(tiny_model_dir, folder, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1 and not (tmp_path / "out").exists()
    assert not loaded  # found before the model is loaded


def test_a_run_folder_deleted_before_the_next_seed_trains_is_noticed(
    tiny_model_dir, tiny_data_dir, tmp_path, monkeypatch, capsys
):
    """Not a quiet new folder from the next Trainer (exit 0, the earlier runs' log gone): one line,
    exit 2, the finished seed written elsewhere and named."""
    both_runs = app.both_runs

    def folder_deleted_before_seed_43(cell, experiment, *inputs, **named):
        if cell.seed == 43:
            shutil.rmtree(experiment.run_dir)
        return both_runs(cell, experiment, *inputs, **named)

    monkeypatch.setattr(app, "both_runs", folder_deleted_before_seed_43)
    assert tiny_run(tiny_model_dir, tiny_data_dir, tmp_path / "out", "--num_seeds", "2") == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert (
        len(err) == 1
        and "disappeared during the run" in err[0]
        and "the 1 finished seed(s) were written to" in err[0]
    )
    rescue = Path(err[0].split("were written to ")[1].split(" instead")[0])
    kept = json.loads((rescue / "results.json").read_text())
    assert kept["complete"] is False and kept["headline"]["seeds"] == 1  # seed 42, whole
    # the folder was not made anew by the next Trainer
    assert not list((tmp_path / "out").iterdir())
    shutil.rmtree(rescue)


def test_when_the_rescue_write_fails_too_it_is_one_line_and_leaves_no_empty_folder(
    tmp_path, monkeypatch
):
    """One root file system: the run folder's disk is full, and so is the temporary folder's."""
    from types import SimpleNamespace

    from sst2kit.files import WriteError

    made = tmp_path / "rescue"

    def full(path, record, predictions, **curve):
        raise WriteError(f"cannot write {path}/results.json (No space left on device)")

    monkeypatch.setattr(results_module, "save_results", full)
    monkeypatch.setattr(
        results_module.tempfile, "mkdtemp", lambda prefix: made.mkdir() or str(made)
    )
    stand_in = SimpleNamespace(run_dir=tmp_path / "run", record={"seeds": [{}]}, predictions=None)
    stand_in.curve_predictions = None
    stand_in.rescue = lambda: results_module.Results.rescue(stand_in)
    with pytest.raises(WriteError) as raised:
        with results_module.Results.rescued_on_write_error(stand_in):
            raise WriteError("cannot write run/predictions.csv (No space left on device)")
    assert "could not be written elsewhere either" in str(raised.value) and not made.exists()


def test_the_trainer_log_never_ends_on_a_cut_off_line(tmp_path):
    """A disk that fills in the middle of a line, as the kernel does it (a file-size limit: the
    write stops short, the next one fails): the log keeps its whole lines, never half of one, and
    the run is told once. In a child process, whose limit ends with it."""
    log = tmp_path / "trainer_log.jsonl"
    child = f"""
import os, resource, signal
from pathlib import Path
from types import SimpleNamespace
from sst2kit.trainer_log import ProgressToLogFile
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
log = Path({str(log)!r})
callback = ProgressToLogFile(log)
state, args = SimpleNamespace(is_world_process_zero=True), SimpleNamespace(run_name="r")
callback.on_log(args, state, None, logs={{"loss": 0.5}})
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(log) + 7,) * 2)
callback.on_log(args, state, None, logs={{"loss": 0.4, "learning_rate": 1e-05}})
callback.on_log(args, state, None, logs={{"loss": 0.3}})
"""
    done = subprocess.run(
        [sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert log.read_text().splitlines() == ['{"run": "r", "loss": 0.5}']
    assert done.stdout.count("warning: cannot write") == 1
    assert "the lines before are whole" in done.stdout


@pytest.mark.parametrize(
    "raise_in_config, message",
    [
        ("raise KeyboardInterrupt", "KeyboardInterrupt"),
        ("import sys; sys.exit(0)", "SystemExit: 0"),
    ],
)
def test_config_py_that_stops_the_interpreter_is_one_line(tmp_path, raise_in_config, message):
    def edit(text):
        return text.replace("\n@dataclass\n", f"\n{raise_in_config}\n\n@dataclass\n", 1)

    line = next(
        n
        for n, text in enumerate(edit((ROOT / "config.py").read_text()).splitlines(), 1)
        if text == raise_in_config
    )
    code, stderr = broken_config(tmp_path, edit)
    assert (
        code == 2
        and len(stderr) == 1
        and stderr[0].startswith(f"error: config.py line {line}: {message}")
    )


def test_ctrl_c_while_config_py_loads_is_the_one_line(tmp_path):
    """Ctrl-C in the first second (config.py importing its parser) printed a KeyboardInterrupt
    traceback. A config.py that sends the process SIGINT as it loads stands in for the user's Ctrl-C
    at that moment."""

    def edit(text):
        return text.replace(
            "\n@dataclass\n",
            "\nimport os, signal; os.kill(os.getpid(), signal.SIGINT)\n\n@dataclass\n",
            1,
        )

    code, stderr = broken_config(tmp_path, edit)
    assert code == 128 + signal.SIGINT and stderr == [
        "interrupted while starting: nothing was written"
    ]


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--per_device_train_batch_size", str(2**63)],
            "per_device_train_batch_size must be in [1, 65,536]",
        ),
        (["--max_length", str(2**40)], "max_length must be in [8, 1,000,000] tokens"),
        (["--dataloader_num_workers", "100000"], "dataloader_num_workers must be in [0, 256]"),
        (["--output_dir", ""], "output_dir must be a folder's path, not empty text"),
    ],
)
def test_every_numeric_setting_is_bounded_before_anything_runs(
    argv, message, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    assert app.main(["--data_dir", "nowhere", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not list(tmp_path.iterdir())


def test_a_run_that_is_all_warm_up_is_said_before_it_trains(
    tiny_model_dir, tiny_data_dir, tmp_path, capsys
):
    assert (
        tiny_run(tiny_model_dir, tiny_data_dir, tmp_path / "out", "--epochs_full_finetune", "0.01")
        == 0
    )
    out = capsys.readouterr().out
    assert "warning: --epochs_full_finetune 0.01 is 1 step(s), all of it warm-up" in out
    assert out.index("all of it warm-up") < out.index("=== head-only")


def test_help_that_cannot_be_printed_says_so():
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "sst2_compare.py", "--help"],
            cwd=ROOT,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert done.returncode == 74 and done.stderr.strip().startswith("error: cannot print the help")


@pytest.mark.slow
def test_the_answer_holds_when_every_seed_is_broken_and_keeps_every_seed(
    tiny_model_dir, tiny_data_dir, tmp_path, capsys
):
    """The new health rules flag the head-only run in every seed: the run still finishes, writes
    every seed and says why there is no answer, with the flags to change, exit 0 (the data is fine;
    the settings are not)."""
    assert tiny_run(tiny_model_dir, tiny_data_dir, tmp_path / "out", "--num_seeds", "2") == 0
    out = capsys.readouterr().out
    (run_dir,) = (tmp_path / "out").iterdir()
    record = json.loads((run_dir / "results.json").read_text())
    assert record["complete"] and [s["seed"] for s in record["seeds"]] == [42, 43]
    assert record["headline"]["seeds_withheld"] == 2 and "Answer: none" in out
    assert np.all([s["training"]["head_only"]["health"]["advice"] for s in record["seeds"]])
    report = (run_dir / "report.md").read_text()
    assert "Fix: the head-only run of seed 43" in report


def test_a_folder_name_that_is_not_utf8_reads_in_any_locale(tiny_data_dir, tmp_path):
    from sst2kit.data import read_labelled

    folder = Path(os.fsdecode(os.fsencode(tmp_path) + b"/d\xff"))  # a byte no UTF-8 name holds
    folder.mkdir()
    shutil.copy(tiny_data_dir / "validation.parquet", folder)
    assert len(read_labelled(folder / "validation.parquet")) == 60


def peak_rss_reading(path):
    """Peak resident memory (MB) of a fresh process that reads one labelled file."""
    code = (
        "import resource, sys; sys.path.insert(0, '.'); from pathlib import Path; "
        "from sst2kit.data import read_labelled; read_labelled(Path(sys.argv[1])); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return float(done.stdout.split()[-1])


@pytest.mark.slow
def test_reading_a_parquet_file_costs_memory_for_its_rows_not_its_row_groups(tmp_path):
    """The same 60,000 rows in one row group and in 6,000: a whole-table read peaked 2.4x higher for
    the many groups; read in batches of rows it is about the same. Past 10,000 groups the footer
    alone outweighs the rows: refused in one line."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sst2kit.data import read_labelled

    rng = np.random.default_rng(0)
    words = np.array(["good", "bad", "film", "plot", "cast", "dull", "fine", "very"])
    table = pa.table(
        {
            "sentence": [" ".join(rng.choice(words, 12)) for _ in range(60_000)],
            "label": rng.integers(2, size=60_000),
        }
    )
    pq.write_table(table, tmp_path / "one.parquet")
    pq.write_table(table, tmp_path / "many.parquet", row_group_size=10)
    assert pq.ParquetFile(tmp_path / "many.parquet").metadata.num_row_groups == 6_000
    one, many = (
        peak_rss_reading(tmp_path / "one.parquet"),
        peak_rss_reading(tmp_path / "many.parquet"),
    )
    assert many <= 1.25 * one, (one, many)
    pq.write_table(table.slice(0, 10_001), tmp_path / "too_many.parquet", row_group_size=1)
    with pytest.raises(UsageError, match="is cut into 10,001 row groups for 10,001 rows"):
        read_labelled(tmp_path / "too_many.parquet")


def test_started_from_a_deleted_folder_is_one_line(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    done = subprocess.run(
        [
            "bash",
            "-c",
            f"cd {gone} && rmdir {gone} && exec {sys.executable} {ROOT / 'sst2_compare.py'} --help",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: the current folder no longer exists (it was deleted): cd into "
        "an existing folder and run again"
    ]


def test_an_early_ctrl_c_under_torchrun_is_said_by_one_process(tmp_path):
    """Each torchrun process gets the Ctrl-C; 'interrupted while starting' was printed once per
    process."""
    shutil.copy(ROOT / "sst2_compare.py", tmp_path)
    (tmp_path / "sst2kit").symlink_to(ROOT / "sst2kit")
    text = (ROOT / "config.py").read_text(encoding="utf-8")
    (tmp_path / "config.py").write_text(
        text.replace(
            "\n@dataclass\n",
            "\nimport os, signal; os.kill(os.getpid(), signal.SIGINT)\n\n@dataclass\n",
            1,
        )
    )
    said = []
    for rank in ("0", "1"):
        done = help_in(tmp_path, env={**os.environ, "RANK": rank})
        assert done.returncode == 128 + signal.SIGINT
        said.append(done.stderr.strip())
    assert said == ["interrupted while starting: nothing was written", ""]


def test_a_grouped_split_of_one_group_gives_advice_that_can_be_followed():
    """Every training row the same sentence: 'choose a value nearer 0.1' could not be followed at
    any value."""
    from datasets import Dataset

    from sst2kit.data import split_train_test

    same = Dataset.from_dict(
        {"sentence": ["the same sentence"] * 50, "label": [1] * 50, "idx": list(range(50))}
    )
    for test_size in (0.1, 0.5):
        with pytest.raises(
            UsageError, match="form 1 such group .* no test_size can split them; use --split random"
        ):
            split_train_test(same, test_size=test_size, seed=0, how="grouped")


@pytest.mark.parametrize("fallback", [True, False])
def test_a_sigterm_that_lands_in_a_garbage_collector_callback_still_stops_the_run(fallback):
    """Python swallows an exception raised inside a weakref's callback (printed as 'ignored'): a
    SIGTERM landing there (as one did while a seed's objects were collected) must still stop the
    run, without a traceback. Without the half-second fallback too: the swallowed stop is sent
    again at once (half a second is a whole seed of a small run, which CI once finished)."""
    child = """
import os, signal, sys, threading, time, weakref
sys.argv = ["x"]
from sst2kit import startup
class NoFallback(threading.Timer):
    def __init__(self, interval, *args, **kwargs):
        super().__init__(interval, *args, **kwargs)
        if interval >= 0.5:
            self.run = lambda: None
if not FALLBACK:
    threading.Timer = NoFallback
def run():
    class Thing: pass
    def collected(ref):
        os.kill(os.getpid(), signal.SIGTERM)  # the stop arrives inside the callback
        time.sleep(0.01)
    thing = Thing()
    ref = weakref.ref(thing, collected)
    del thing
    time.sleep(5)
    print("went on")
sys.exit(startup.guarded(run))
"""
    done = subprocess.run(
        [sys.executable, "-c", f"FALLBACK = {fallback}\n" + child],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 128 + signal.SIGTERM and "went on" not in done.stdout
    assert "Traceback" not in done.stderr and "terminated" in done.stderr
