"""Command-line overrides, and bad input: one clear line, exit status 2, nothing written."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import sst2_compare as app
from config import Config
from conftest import ROOT, help_in, tiny_args, tmpfs_at
from sst2kit import checks, settings
from sst2kit.errors import UsageError
from sst2kit.files import new_run_dir


def parse_config(argv=None):
    return settings.parse_config(Config, argv)


def test_overrides_are_typed_and_default_to_config():
    cfg = parse_config(
        [
            "--subset_fraction",
            "0.05",
            "--epochs_full_finetune",
            "3",
            "--split",
            "grouped",
            "--cache_encoder_features",
            "false",
        ]
    )
    assert (
        cfg.subset_fraction,
        cfg.epochs_full_finetune,
        cfg.split,
        cfg.cache_encoder_features,
    ) == (0.05, 3.0, "grouped", False)
    assert parse_config([]) == Config()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--subset_fractoin", "0.1"], "did you mean --subset_fraction"),
        (["--subset_fraction", "abc"], "invalid float value"),
        (["--split", "sideways"], "invalid choice"),
    ],
)
def test_bad_flags_are_one_clear_line(argv, message, capsys):
    assert app.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--learning_rate_full_finetune", "0"],
            "learning_rate_full_finetune must be > 0, got 0.0",
        ),
        (
            ["--learning_rate_head_only", "-0.001"],
            "learning_rate_head_only must be > 0, got -0.001",
        ),
        # the old name
        (["--learning_rate_headonly_finetune", "-0.001"], "learning_rate_head_only must be > 0"),
        (
            ["--per_device_eval_batch_size", "0"],
            "per_device_eval_batch_size must be in [1, 65,536], got 0",
        ),
        (
            ["--per_device_eval_batch_size", str(2**40)],
            "per_device_eval_batch_size must be in [1, 65,536], got 1099511627776",
        ),
        (["--epochs_full_finetune", "-1"], "epochs_full_finetune must be in (0, 100], got -1.0"),
        (["--epochs_head_only", "1e300"], "epochs_head_only must be in (0, 100]"),
        (["--num_seeds", "1000000"], "num_seeds must be in [1, 100], got 1000000"),
        (["--subset_fraction", "0"], "subset_fraction must be in (0, 1], or unset, got 0.0"),
        (
            ["--subset_fraction", "5"],
            "subset_fraction must be in (0, 1], or unset, got 5.0; for 5% use 0.05",
        ),
        (
            ["--per_device_train_batch_size", "-1"],
            "per_device_train_batch_size must be in [1, 65,536]",
        ),
        (["--epochs_head_only", "-2"], "epochs_head_only must be in (0, 100]"),
        (
            ["--subset_fraction", "1.5"],
            "subset_fraction must be in (0, 1], or unset, got 1.5; for 1.5% use 0.015",
        ),
        (["--test_size", "1"], "test_size must be in (0, 1), got 1.0"),
        (["--test_size", "10"], "test_size must be in (0, 1), got 10.0; for 10% use 0.1"),
        (["--max_length", "4"], "max_length must be in [8, 1,000,000] tokens, got 4"),
        (["--max_length", "4096"], "exceeds what"),
        (
            ["--learning_rate_full_finetune", "inf"],
            "learning_rate_full_finetune must be a finite number",
        ),
        (["--weight_decay", "nan"], "weight_decay must be a finite number"),
        (["--weight_decay", "1e10"], "such that weight decay x learning rate is below 1"),
        (["--epochs_head_only", "inf"], "epochs_head_only must be a finite number"),
        (["--seed", "-1"], "lie in [0, 4294967296)"),
        (["--seed", "4294967295", "--num_seeds", "2"], "seeds 4294967295..4294967296 lie in"),
        (
            ["--pad_to_multiple_of", "0"],
            "pad_to_multiple_of must be in [1, max_length (128)], got 0",
        ),
        (
            ["--pad_to_multiple_of", "256"],
            "pad_to_multiple_of must be in [1, max_length (128)], got 256",
        ),
        (["--bootstrap_resamples", "100"], "bootstrap_resamples must be in [1,000, 1,000,000]"),
        (
            ["--bootstrap_resamples", "10000000"],
            "bootstrap_resamples must be in [1,000, 1,000,000]",
        ),
    ],
)
def test_out_of_range_values(argv, message, tiny_model_dir, tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = app.main(
        argv
        + [
            *tiny_args(tiny_model_dir, tiny_data_dir, out),
        ]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def bad_data_dirs(root):
    good = pd.DataFrame(
        {"sentence": ["good film", "bad plot", "fine cast", "dull movie"], "label": [1, 0, 1, 0]}
    )
    cases = {
        "missing": (root / "absent", "not a folder"),
        "empty": (root / "empty", "no train file"),
    }
    (root / "empty").mkdir()
    for name, train, message in [
        ("no_label", good.drop(columns="label"), "lacks column(s) ['label']"),
        ("bad_labels", good.assign(label=[0, 1, 2, 1]), "labels must be 0"),
        ("not_parquet", None, "cannot read"),
        ("tiny", good, "leaves the test split"),
    ]:
        folder = root / name
        folder.mkdir()
        if train is None:
            (folder / "train.parquet").write_text("not a parquet file")
        else:
            train.to_parquet(folder / "train.parquet")
        good.to_parquet(folder / "validation.parquet")
        cases[name] = (folder, message)
    only_train = root / "only_train"
    only_train.mkdir()
    good.to_parquet(only_train / "train.parquet")
    cases["only_train"] = (only_train, "no validation file")
    return cases


def test_bad_data_dirs(tiny_model_dir, tmp_path, capsys):
    for folder, message in bad_data_dirs(tmp_path).values():
        code = app.main(
            [
                "--data_dir",
                str(folder),
                "--model_name",
                str(tiny_model_dir),
                "--subset_fraction",
                "0.5",
                "--output_dir",
                str(tmp_path / "out"),
            ]
        )
        assert code == 2, folder
        assert message in capsys.readouterr().err, folder
    assert not (tmp_path / "out").exists()


def test_bad_external_test_files(tiny_model_dir, tiny_data_dir, tmp_path, capsys):
    """GLUE's own test split (labels hidden as -1) is the file a user is likeliest to pass by
    mistake."""
    glue_test = pd.DataFrame(
        {
            "idx": [0, 1, 2],
            "sentence": ["uneasy mishmash .", "a gem .", "dull ."],
            "label": [-1, -1, -1],
        }
    )
    glue_test.to_parquet(tmp_path / "glue_test.parquet")
    glue_test.assign(label=[0, -1, 1]).to_csv(tmp_path / "partly_hidden.csv", index=False)
    glue_test.drop(columns="label").to_json(
        tmp_path / "no_label.jsonl", orient="records", lines=True
    )
    (tmp_path / "notes.txt").write_text("sentence,label\na gem .,1\n")
    for name, message in [
        ("glue_test.parquet", "the labels of 3 row(s) are hidden (-1, as in GLUE's test split)"),
        ("partly_hidden.csv", "the labels of 1 row(s) are hidden"),
        ("no_label.jsonl", "lacks column(s) ['label']"),
        ("notes.txt", "cannot read .txt; save it as .parquet"),
        ("absent.csv", "is not a file"),
    ]:
        code = app.main(
            [
                "--data_dir",
                str(tiny_data_dir),
                "--model_name",
                str(tiny_model_dir),
                "--external_test_file",
                str(tmp_path / name),
                "--output_dir",
                str(tmp_path / "out"),
            ]
        )
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, (name, err)
    assert not (tmp_path / "out").exists()


def test_model_that_is_nowhere(tiny_data_dir, tmp_path, capsys):
    code = app.main(
        [
            "--data_dir",
            str(tiny_data_dir),
            "--model_name",
            "no-such-org/no-such-model",
            "--output_dir",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "model_name no-such-org/no-such-model: no such folder, and the hub was not tried" in err


def test_pickled_weights_need_opt_in(tiny_model_dir, tiny_data_dir, tmp_path, capsys):
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for f in tiny_model_dir.iterdir():
        if f.suffix != ".safetensors":
            (pickled / f.name).write_bytes(f.read_bytes())
    (pickled / "pytorch_model.bin").write_bytes(b"")
    assert app.main(["--data_dir", str(tiny_data_dir), "--model_name", str(pickled)]) == 2
    assert "--allow_pickled_weights" in capsys.readouterr().err


def test_a_folder_that_is_not_a_model_says_what_it_lacks(tiny_data_dir, tmp_path, capsys):
    """--model_name data/sst2 (the data folder, a slip of the finger) is not told to allow pickled
    weights: it is told it is no model, and what a model folder holds."""
    assert app.main(["--data_dir", str(tiny_data_dir), "--model_name", str(tiny_data_dir)]) == 2
    err = capsys.readouterr().err
    assert "is not a model folder: it has no config.json and no weights" in err
    assert "--allow_pickled_weights" not in err and err.count("\n") == 1


def test_unwritable_output_dir(tiny_model_dir, tiny_data_dir, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert (
        app.main(
            [
                "--data_dir",
                str(tiny_data_dir),
                "--model_name",
                str(tiny_model_dir),
                "--output_dir",
                str(blocker / "out"),
            ]
        )
        == 2
    )
    assert "cannot be written" in capsys.readouterr().err


@pytest.mark.slow
def test_a_user_sees_no_traceback(tiny_model_dir, tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "sst2_compare.py",
            "--data_dir",
            str(tmp_path / "nothing"),
            "--model_name",
            str(tiny_model_dir),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: data_dir {tmp_path / 'nothing'} is not a folder: "
        "point --data_dir at a folder with train and validation files"
    ]


def test_config_py_mistakes_are_caught():
    class Misspelt(Config):
        learnig_rate_full_finetune = 1e-4

    with pytest.raises(UsageError, match="did you mean learning_rate_full_finetune"):
        checks.check_config(Misspelt())
    with pytest.raises(UsageError, match="max_length = '128' is not a whole number"):
        checks.check_config(Config(max_length="128"))
    with pytest.raises(UsageError, match="split = 'sideways'"):
        checks.check_config(Config(split="sideways"))
    # an int for a float field is fine
    checks.check_config(Config(subset_fraction=None, epochs_full_finetune=3))


def test_a_field_added_to_config_py_that_nothing_reads_is_refused():
    """An annotated misspelling becomes a real field: the command line takes it, and the run would
    ignore it."""
    import dataclasses

    @dataclasses.dataclass
    class WithAMisspelling(Config):
        lr_headonly: float = 1e-4

    with pytest.raises(
        UsageError, match="config.py declares lr_headonly, which this experiment never reads"
    ):
        checks.check_config(WithAMisspelling())


def test_the_fields_the_code_reads_are_found_in_its_syntax_not_in_a_list():
    """Every field of config.py is read by the code, found from the code's own `cfg.<field>` reads
    (a comment or a string naming a field does not count): a new field needs no second entry."""
    assert checks.fields_read() == set(Config().__dict__)


def broken_config(tmp_path, edit):
    """The script's exit status and stderr lines for `--help` in a copy of the project whose
    config.py is edit(text) (removed when edit returns None)."""
    # a copy: Python would resolve a link to the real folder
    shutil.copy(ROOT / "sst2_compare.py", tmp_path)
    (tmp_path / "sst2kit").symlink_to(ROOT / "sst2kit")
    text = edit((ROOT / "config.py").read_text(encoding="utf-8"))
    if text is not None:
        (tmp_path / "config.py").write_text(text, encoding="utf-8")
    done = help_in(tmp_path)
    return done.returncode, done.stderr.strip().splitlines()


def line_of(text):
    return next(
        n for n, line in enumerate((ROOT / "config.py").read_text().splitlines(), 1) if text in line
    )


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda text: text.replace(
                "    verbose: bool = False",
                "    splits_wanted: list = ['test']\n    verbose: bool = False",
            ),
            "config.py line {verbose}: ValueError: mutable default <class 'list'> for field "
            "splits_wanted is not allowed: "
            "use default_factory: fix it, or restore the file (git checkout config.py)",
        ),
        (
            lambda text: text.replace("    seed: int = 42", "    seed: int = (42\n"),
            "config.py line {seed}: '(' was never closed: fix it, or restore the file (git "
            "checkout config.py)",
        ),
        (
            lambda text: text.replace("float = 2e-5", "float = two_e5"),
            "config.py line {full_lr}: NameError: name 'two_e5' is not defined: fix it, or restore "
            "the file (git checkout config.py)",
        ),
        (
            lambda text: text.replace(
                "epochs_full_finetune: float = 2",
                'epochs_full_finetune: float = "two"',
            ),
            "config.py line {epochs}: epochs_full_finetune = 'two' is not a number: fix it in "
            "config.py",
        ),
        (lambda text: None, "{config} is missing: restore it (git checkout config.py)"),
    ],
)
def test_a_mistake_in_config_py_itself_is_one_line_naming_config_py(tmp_path, edit, message):
    """Even with --help: a wrong type would otherwise show as '(default: two)', or be blamed on a
    flag nobody typed; a syntax or name error would be a traceback."""
    code, stderr = broken_config(tmp_path, edit)
    lines = {
        "verbose": line_of("    verbose: bool = False"),
        "seed": line_of("    seed: int = 42"),
        "full_lr": line_of("float = 2e-5"),
        "epochs": line_of("epochs_full_finetune: float = 2"),
        "config": tmp_path / "config.py",
    }
    assert (code, stderr) == (2, ["error: " + message.format(**lines)])


def test_unreachable_hub_stops_within_seconds(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(checks.hub_constants, "HF_HUB_OFFLINE", False)
    # nothing listens there
    monkeypatch.setattr(checks.hub_constants, "ENDPOINT", "http://127.0.0.1:9")
    started = time.monotonic()
    assert app.main(["--output_dir", str(tmp_path / "out")]) == 2
    assert time.monotonic() - started < 15
    err = capsys.readouterr().err
    assert "cannot reach the Hugging Face hub" in err and "--data_dir" in err
    assert not (tmp_path / "out").exists()


def test_help_lists_every_field_with_its_default():
    done = subprocess.run(
        [sys.executable, "sst2_compare.py", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250"},
    )  # no line wrapping
    assert done.returncode == 0, done.stderr[-1000:]
    for name, value in vars(Config()).items():
        assert f"--{name}" in done.stdout
    assert (
        "(default: 0.0005)" in done.stdout and "(default: distilbert-base-uncased)" in done.stdout
    )
    # listed once, no twin help
    assert "--no_save_models" not in done.stdout.replace("(or --no_save_models)", "")
    assert "--seed INT" in done.stdout and "--save_models [true|false]" in done.stdout
    assert parse_config(["--no_save_models"]).save_models is False
    # the notebook's old names still parse, but are not listed beside the current ones
    assert "headonly" not in done.stdout
    assert parse_config(["--epochs_headonly_finetune", "3"]).epochs_head_only == 3


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--bootstrap_resamples", "10000000000"],
            "bootstrap_resamples must be in [1,000, 1,000,000]",
        ),
        (["--test_size", "0.9999"], "test_size 0.9999"),
        (["--test_size", "0.9999", "--split", "grouped"], "leaves the train split empty"),
    ],
)
def test_values_that_would_fail_late_fail_before_training(
    argv, message, tiny_model_dir, tiny_data_dir, tmp_path, capsys
):
    out = tmp_path / "out"
    assert (
        app.main(
            argv
            + [
                *tiny_args(tiny_model_dir, tiny_data_dir, out),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def model_copy(source, target, leave_out=(), corrupt=None):
    target.mkdir()
    for f in source.iterdir():
        if f.name not in leave_out:
            (target / f.name).write_bytes(
                f.read_bytes()[:100] if f.name == corrupt else f.read_bytes()
            )
    return target


@pytest.mark.parametrize(
    "leave_out, corrupt, message",
    [
        (
            ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"),
            None,
            "its tokenizer has",
        ),
        ((), "model.safetensors", "cannot load model"),
    ],
)
def test_broken_model_folders_are_refused(
    tiny_model_dir, tiny_data_dir, tmp_path, capsys, leave_out, corrupt, message
):
    model = model_copy(tiny_model_dir, tmp_path / "model", leave_out, corrupt)
    out = tmp_path / "out"
    assert (
        app.main(
            ["--model_name", str(model), "--data_dir", str(tiny_data_dir), "--output_dir", str(out)]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def output_dirs(root):
    (root / "a_file").write_text("")
    (root / "dangling").symlink_to(root / "nowhere")
    (root / "loop").symlink_to(root / "loop")
    dirs = {
        "file in the way": root / "a_file" / "out",
        "dangling link": root / "dangling",
        "link loop": root / "loop" / "out",
        "name too long": root / ("x" * 300),
    }
    if Path("/proc/self").is_dir():
        dirs["virtual file system"] = Path("/proc/sst2-compare-out")
    return dirs


@pytest.fixture
def read_only_folder(tmp_path):
    with tmpfs_at(tmp_path / "read_only", "ro,size=16k") as folder:
        yield folder


def test_output_dirs_that_cannot_be_made_are_refused_before_anything(
    tiny_model_dir, tiny_data_dir, tmp_path, capsys, read_only_folder
):
    for case, out in {**output_dirs(tmp_path), "read-only file system": read_only_folder}.items():
        assert (
            app.main(
                [
                    *tiny_args(tiny_model_dir, tiny_data_dir, out),
                ]
            )
            == 2
        ), case
        err = capsys.readouterr().err
        assert "cannot be written" in err and err.count("\n") == 1, case
    # nothing made
    assert {p.name for p in tmp_path.iterdir()} == {"a_file", "dangling", "loop", "read_only"}
    assert not list(read_only_folder.iterdir())


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        folders = list(pool.map(lambda _: new_run_dir(tmp_path), range(16)))
    assert len(set(folders)) == 16 and all(folder.is_dir() for folder in folders)


def test_a_one_class_training_set_is_refused(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"sentence": [f"good film {i}" for i in range(40)], "label": 1}).to_parquet(
        data / "train.parquet"
    )
    pd.DataFrame({"sentence": ["bad film", "good film"], "label": [0, 1]}).to_parquet(
        data / "validation.parquet"
    )
    assert (
        app.main(
            [
                *tiny_args(tiny_model_dir, data, tmp_path / "out"),
            ]
        )
        == 2
    )
    assert "the train split has only label 1 (36 rows)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


MISMATCH = "config.json does not match the weights"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"dim": 32, "hidden_dim": 64}, "distilbert.embeddings"),
        ({"vocab_size": 30}, "distilbert.embeddings.word_embeddings.weight"),
        ({"model_type": "bert"}, "bert."),
        ({"n_layers": 2}, "distilbert.transformer.layer.1."),  # a layer the weights do not have
        ({"n_layers": -1}, "config.json's n_layers is -1, not a whole number in [1, 128]"),
        ({"n_layers": 20_000}, "config.json's n_layers is 20000"),
        ({"n_heads": 0}, "config.json's n_heads is 0"),
        ({"max_position_embeddings": None}, "cannot load model"),
        ({"max_position_embeddings": 0}, "config.json's max_position_embeddings is 0"),
        ({"dim": "32"}, "cannot load model"),
        ({"n_layers": 2.5}, "cannot load model"),
        ({"activation": "foo"}, "cannot load model"),
    ],
)
def test_a_model_folder_whose_config_is_wrong_is_one_line(
    changes, message, tiny_model_dir, tiny_data_dir, tmp_path, capsys
):
    """Loaded anyway, the encoder would be random values reported as 'head-only (frozen
    encoder)'."""
    import json

    model = model_copy(tiny_model_dir, tmp_path / "model")
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, **changes}))
    out = tmp_path / "out"
    assert (
        app.main(
            ["--model_name", str(model), "--data_dir", str(tiny_data_dir), "--output_dir", str(out)]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert model.name in err and message in err, err
    assert err.count("\n") == 1 and not out.exists()


def test_non_finite_weights_are_found_before_anything(
    tiny_model_dir, tiny_data_dir, tmp_path, capsys
):
    from safetensors.torch import load_file, save_file

    model = model_copy(tiny_model_dir, tmp_path / "model")
    weights = load_file(model / "model.safetensors")
    weights["transformer.layer.0.ffn.lin1.weight"][0, 0] = float("nan")
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})
    out = tmp_path / "out"
    assert (
        app.main(
            ["--model_name", str(model), "--data_dir", str(tiny_data_dir), "--output_dir", str(out)]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert (
        "not finite numbers (NaN or infinity) in distilbert.transformer.layer.0.ffn.lin1.weight"
        in err
    )
    assert err.count("\n") == 1 and not out.exists()


def test_a_tokenizer_with_nothing_to_pad_with_is_one_line(
    tiny_model_dir, tiny_data_dir, tmp_path, capsys
):
    import json

    model = model_copy(tiny_model_dir, tmp_path / "model")
    settings = json.loads((model / "tokenizer_config.json").read_text())
    (model / "tokenizer_config.json").write_text(
        json.dumps({**settings, "pad_token": None, "unk_token": None})
    )
    assert (
        app.main(
            [
                *tiny_args(model, tiny_data_dir, tmp_path / "out"),
            ]
        )
        == 2
    )
    assert "no padding, end-of-text or unknown token" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, message",
    [
        ("./no-such-folder", "no such folder (not looked up on the hub)"),
        ("a/b/c", "no such folder"),
        ("a_file", "is a file: point it at the model's folder"),
        # the README's own folder, not fetched yet: models/ is here, so this is a path, not a hub id
        ("models/distilbert-base-uncased", "no such folder (not looked up on the hub)"),
        # written like a hub id, with nothing of that name here: offline, the hub is not tried, and
        # it says so
        (
            "nowhere/distilbert-base-uncased",
            "no such folder, and the hub was not tried (HF_HUB_OFFLINE=1)",
        ),
    ],
)
def test_a_local_model_path_that_is_wrong_says_so(
    name, message, tiny_data_dir, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("")
    (tmp_path / "models").mkdir()
    assert (
        app.main(["--model_name", name, "--data_dir", str(tiny_data_dir), "--output_dir", "out"])
        == 2
    )
    err = capsys.readouterr().err
    assert message in err and "cannot reach" not in err and err.count("\n") == 1


def test_pickled_weights_that_are_not_a_state_dict_are_one_line(
    tiny_model_dir, tiny_data_dir, tmp_path, capsys
):
    import pickle

    model = model_copy(tiny_model_dir, tmp_path / "model", leave_out=("model.safetensors",))
    (model / "pytorch_model.bin").write_bytes(pickle.dumps(["not", "a", "state dict"]))
    assert (
        app.main(
            [
                "--model_name",
                str(model),
                "--data_dir",
                str(tiny_data_dir),
                "--allow_pickled_weights",
                "true",
                "--output_dir",
                str(tmp_path / "out"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "cannot load model" in err and err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_two_runs_probing_one_output_folder_at_once_are_both_let_through(tmp_path):
    """Each run probes the folder (making it, and removing what it made): at the same moment,
    neither may be refused, and nothing may be left behind."""
    from concurrent.futures import ThreadPoolExecutor

    for round_ in range(40):
        target = tmp_path / f"round{round_}" / "out"
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda _: checks.check_output_dir(target), range(2)))
        assert not (tmp_path / f"round{round_}").exists() or not any(
            (tmp_path / f"round{round_}").rglob("*")
        )


def test_a_folder_another_run_makes_and_removes_under_the_probe_is_looked_at_again(
    tmp_path, monkeypatch
):
    """The race two runs hit in the suite: this run's mkdir meets the other run's folder (exists),
    which the other run has removed again by the time this one looks. That is a folder to make
    again, not a refusal."""
    target, raced = tmp_path / "round" / "out", []
    make_folder = Path.mkdir

    def other_run_in_between(self, *args, **kwargs):
        if self == target.parent and not raced:
            raced.append(self)
            raise FileExistsError(17, "File exists")  # the other run's folder, already gone again
        return make_folder(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", other_run_in_between)
    checks.check_output_dir(target)
    assert raced and not target.parent.exists()


def test_a_run_too_long_to_finish_is_refused_with_its_number(
    tiny_model_dir, tiny_data_dir, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(checks, "MAX_TRAINING_STEPS", 100)
    out = tmp_path / "out"
    assert (
        app.main(
            [
                *tiny_args(tiny_model_dir, tiny_data_dir, out),
                "--epochs_full_finetune",
                "20",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "this run would take 264 training steps" in err and "over the bound of 100" in err
    assert not out.exists()


def test_paired_tests_too_long_to_finish_are_refused_with_their_cost(
    tiny_model_dir, tiny_data_dir, tmp_path, capsys, monkeypatch
):
    """The tiny data has a few hundred units; at the largest resample count allowed and a bound of
    one second, the estimate is over it, and says what it is made of."""
    monkeypatch.setattr(checks, "MAX_STATISTICS_SECONDS", 1)
    out = tmp_path / "out"
    assert (
        app.main(
            [
                *tiny_args(tiny_model_dir, tiny_data_dir, out),
                "--bootstrap_resamples",
                "1000000",
                "--num_seeds",
                "3",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert (
        "the paired tests would take about" in err
        and "1,000,000 resamples x" in err
        and "3 seed(s)" in err
    )
    assert not out.exists()
