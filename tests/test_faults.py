"""Faults during a run: write errors keep finished seeds, files stay coherent, stop signals are
prompt."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import sst2_compare as app
from conftest import FAST, ROOT, tiny_args
from sst2kit import files, results

FAST = [*FAST, "--probe_reference", "false"]


def tiny_run(model_dir, data_dir, out, *extra):
    return app.main(
        [
            *tiny_args(model_dir, data_dir, out),
            *FAST,
            *extra,
        ]
    )


@pytest.mark.parametrize("error", [errno.EDQUOT, errno.EROFS, errno.EACCES])
def test_a_write_error_on_a_later_seed_keeps_the_finished_ones(
    error, tiny_model_dir, tiny_data_dir, tmp_path, monkeypatch, capsys
):
    to_csv, calls = pd.DataFrame.to_csv, []

    def failing_on_the_second_seed(frame, path, *args, **kwargs):
        calls.append(path)
        if len(calls) > 2:  # predictions.csv and flips.csv of seed 42 went through
            raise OSError(error, os.strerror(error))
        return to_csv(frame, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", failing_on_the_second_seed)
    out = tmp_path / "out"
    assert tiny_run(tiny_model_dir, tiny_data_dir, out, "--num_seeds", "2") == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert err.count("error:") == 1 and "Traceback" not in err
    assert (
        last.startswith("error: cannot write")
        and f"({os.strerror(error)})" in last
        and "predictions.csv" in last
    )
    (run_dir,) = out.iterdir()
    assert json.loads((run_dir / "results.json").read_text())["complete"] is False  # seed 42, whole
    monkeypatch.setattr(pd.DataFrame, "to_csv", to_csv)
    assert set(pd.read_csv(run_dir / "predictions.csv")["seed"]) == {42}
    assert not list(run_dir.glob(".*.tmp"))


def test_a_run_folder_deleted_midway_keeps_the_seeds_somewhere_and_says_where(
    tiny_model_dir, tiny_data_dir, tmp_path, monkeypatch, capsys
):
    save, seeds_saved = results.save_results, []

    def folder_vanishes_before_the_second_seed(run_dir, record, predictions, **curve):
        if seeds_saved and run_dir.parent == tmp_path / "out":
            shutil.rmtree(run_dir)
        seeds_saved.append(run_dir)
        return save(run_dir, record, predictions, **curve)

    monkeypatch.setattr(results, "save_results", folder_vanishes_before_the_second_seed)
    assert tiny_run(tiny_model_dir, tiny_data_dir, tmp_path / "out", "--num_seeds", "2") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: cannot write")
    assert (
        "predictions.csv (its folder no longer exists); the 2 finished seed(s) were written to"
        in err
    )
    rescue = Path(err.split("were written to ")[1].split(" instead")[0])
    kept = json.loads((rescue / "results.json").read_text())
    assert [s["seed"] for s in kept["seeds"]] == [42, 43] and kept["complete"] is True
    shutil.rmtree(rescue)


def test_a_stop_signal_during_the_renames_leaves_files_of_the_same_seeds(tmp_path, monkeypatch):
    """The three files are renamed into place with stop signals held back: a SIGTERM in between is
    handled once all are in place, so results.json and predictions.csv never describe different
    seeds."""
    for name in ("a.csv", "b.json"):
        (tmp_path / name).write_text("seed 42")

    def stop(signum, frame):
        raise KeyboardInterrupt

    replace = os.replace

    def replace_then_signal(src, dst):
        replace(src, dst)
        os.kill(os.getpid(), signal.SIGTERM)  # arrives between the two renames

    previous = signal.signal(signal.SIGTERM, stop)
    monkeypatch.setattr(files.os, "replace", replace_then_signal)
    try:
        with pytest.raises(KeyboardInterrupt):
            files.write_together(
                [
                    (tmp_path / name, lambda path: path.write_text("seeds 42, 43"))
                    for name in ("a.csv", "b.json")
                ]
            )
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert [(tmp_path / name).read_text() for name in ("a.csv", "b.json")] == ["seeds 42, 43"] * 2


@pytest.mark.parametrize(
    "stop, seen",
    [
        (
            OSError(errno.EDQUOT, "Disk quota exceeded"),
            "cannot write .*head_only_seed42 \\(Disk quota exceeded\\)",
        ),
        # Ctrl-C, or SIGTERM (raised as a KeyboardInterrupt), after config.json was written
        (KeyboardInterrupt(), None),
    ],
)
def test_a_model_folder_appears_only_when_whole(tmp_path, stop, seen):
    class HalfSaving:
        def save_model(self, folder):
            Path(folder).mkdir()
            (Path(folder) / "config.json").write_text("{}")
            raise stop

    expected = files.WriteError if isinstance(stop, OSError) else KeyboardInterrupt
    with pytest.raises(expected, match=seen):
        files.save_model_whole(HalfSaving(), tmp_path / "head_only_seed42")
    assert list(tmp_path.iterdir()) == []  # no .head_only_seed42.partial left behind


PROBE_SCRIPT = """
import signal, sys
sys.path.insert(0, {root!r})
import numpy as np, torch
from sst2kit.features import FirstTokenStates
from sst2kit.probe import ProbeReference

def stop(*_):
    raise KeyboardInterrupt

signal.signal(signal.SIGTERM, stop)
rng = np.random.default_rng(0)
rows = lambda n: FirstTokenStates(torch.randn(n, 512), rng.integers(2, size=n))
probe = ProbeReference({{"train": rows(100_000), "validation": rows(100)}}, 0, beside=True)
print("fitting", flush=True)
try:
    probe.fitting.result()
    print("finished", flush=True)
except KeyboardInterrupt:
    print("stopped", flush=True)
"""


def children(pid):
    return [
        child
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc")
def test_a_stop_during_the_probe_fit_is_prompt_and_leaves_no_process():
    proc = subprocess.Popen(
        [sys.executable, "-c", PROBE_SCRIPT.format(root=str(ROOT))],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "fitting"
    time.sleep(1.0)
    # the folds are fitted on threads: no worker process to wait for or orphan
    assert children(proc.pid) == []
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 2.5
    assert out.strip() == "stopped"


FIGURES = ("metrics.png", "confusion_matrices.png", "accuracy_by_length.png", "training_curves.png")


def script_run(model_dir, data_dir, out, *extra, shell_tail="", env=None):
    """The script in a fresh process with FAST settings and extra, as a shell runs it (shell_tail:
    what its stdout is piped into)."""
    command = " ".join(
        map(
            str,
            [
                sys.executable,
                ROOT / "sst2_compare.py",
                "--model_name",
                model_dir,
                "--data_dir",
                data_dir,
                "--output_dir",
                out,
                *FAST,
                *extra,
            ],
        )
    )
    return subprocess.run(
        ["bash", "-c", f"{command} {shell_tail}; exit ${{PIPESTATUS[0]}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.slow
def test_a_console_closed_after_one_line_still_gets_every_file_written(
    tiny_model_dir, tiny_data_dir, tmp_path
):
    done = script_run(tiny_model_dir, tiny_data_dir, tmp_path / "out", shell_tail="| head -1")
    # sysexits' EX_IOERR: the files are whole, the console lost
    assert done.returncode == 74, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "the console's output stopped" in done.stderr
    (run_dir,) = (tmp_path / "out").iterdir()
    written = {path.name for path in run_dir.iterdir()}
    assert {"report.md", "results.json", "predictions.csv", *FIGURES} <= written
    assert json.loads((run_dir / "results.json").read_text())["complete"]


@pytest.mark.slow
def test_a_run_in_the_c_locale_with_an_ascii_console_reads_and_writes_non_ascii_names_and_text(
    tiny_model_dir, tiny_data_dir, tmp_path
):
    """Every file read and written as UTF-8 whatever the locale: a data folder named 'dönnées' is
    read, its sentences' snowmen kept, and a non-ASCII output folder takes the saved models (no
    UnicodeEncodeError); characters the console cannot show are replaced."""
    data = tmp_path / "dönnées"
    data.mkdir()
    for split in ("train", "validation"):
        frame = pd.read_parquet(tiny_data_dir / f"{split}.parquet")
        frame["sentence"] = frame["sentence"] + " ☃"
        frame.to_parquet(data / f"{split}.parquet")
    out = tmp_path / "☃sörtie"  # printed at the start and the end: the console shows it somehow
    done = script_run(
        tiny_model_dir,
        data,
        out,
        *("--save_models", "true"),
        env={"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": "ascii"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "results go to" in done.stdout and "Traceback" not in done.stderr
    (run_dir,) = out.iterdir()
    assert {"report.md", *FIGURES} <= {path.name for path in run_dir.iterdir()}
    assert "☃" in pd.read_csv(run_dir / "predictions.csv", encoding="utf-8")["sentence"].iloc[0]
    assert (run_dir / "report.md").read_text(encoding="utf-8").startswith("# sst2-compare report")
    assert (run_dir / "head_only_seed42" / "config.json").is_file()
    assert (run_dir / "full_finetune_seed42" / "tokenizer_config.json").is_file()
