"""SST-2 in, train/test/validation out: files read and checked row by row, the re-split, subsets."""

import csv
import math
import stat
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from datasets import Dataset, DatasetDict, load_dataset

from sst2kit.console import say
from sst2kit.errors import UsageError
from sst2kit.phrases import grouped_test_mask, roots_and_members, words

# a sentence "NA" or "null" stays a sentence
TEXT_AS_IS = {"dtype": {"sentence": str}, "keep_default_na": False}
READERS = {  # file suffix -> pandas reader
    ".parquet": lambda path: read_parquet_rows(path),
    ".csv": lambda path: pd.read_csv(path, **TEXT_AS_IS),
    # GLUE's own TSVs hold sentences with quote characters in them: tabs alone separate fields
    ".tsv": lambda path: pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, **TEXT_AS_IS),
    # dtype: a sentence "123" stays the text "123", not the number
    ".jsonl": lambda path: pd.read_json(path, lines=True, dtype={"sentence": str}),
    ".json": lambda path: read_json_rows(path),
}


# a parquet file's footer describes each group: past this it costs more than the rows
MAX_ROW_GROUPS = 10_000
# rows converted at a time: memory follows the rows and text, not how the file was cut
PARQUET_BATCH = 65_536


def read_parquet_rows(path):
    """A parquet file's rows, read in batches of rows whatever its row groups (67,349 one-row groups
    made a whole-table read take 1.5 GB and 14 s for SST-2's train split); a file cut into more than
    MAX_ROW_GROUPS groups is refused, naming the cause, since its footer alone outweighs its
    rows."""
    # opened by Python: a path an ASCII locale holds as escaped bytes still opens
    with open(path, "rb") as handle:
        return parquet_rows(pq.ParquetFile(handle), path)


def parquet_rows(file, path):
    groups = file.metadata.num_row_groups
    if groups > MAX_ROW_GROUPS:
        raise UsageError(
            f"{path} is cut into {groups:,} row groups for {file.metadata.num_rows:,} rows, more "
            "than "
            f"{MAX_ROW_GROUPS:,}: reading its description alone costs more than its rows. Rewrite "
            "it in fewer (pyarrow.parquet.write_table(table, path, row_group_size=100_000))"
        )
    frames = [batch.to_pandas() for batch in file.iter_batches(batch_size=PARQUET_BATCH)]
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else file.schema_arrow.empty_table().to_pandas()
    )


def read_json_rows(path):
    """JSON lines (one object per line), or one JSON array of objects: what a .json file may
    hold."""
    with open(path, encoding="utf-8-sig") as file:
        first = file.read(4096).lstrip()[:1]
    return pd.read_json(path, lines=first != "[", dtype={"sentence": str}, encoding="utf-8-sig")


def load_sst2(data_dir):
    """GLUE SST-2 train and validation, from a local folder or the hub (GLUE's test labels are
    hidden: unused)."""
    if data_dir is None:
        try:
            hub = load_dataset("nyu-mll/glue", "sst2")
        except (OSError, ConnectionError) as err:
            raise UsageError(
                f"could not load SST-2 from the hub ({type(err).__name__}): "
                "point --data_dir at a local copy, e.g. --data_dir data/sst2 (see the README)"
            ) from None
        return DatasetDict(train=hub["train"], validation=hub["validation"])
    folder = Path(data_dir)
    if not folder.is_dir():
        raise UsageError(
            f"data_dir {folder} is not a folder: "
            "point --data_dir at a folder with train and validation files"
        )
    return DatasetDict({split: read_split(folder, split) for split in ("train", "validation")})


def read_split(folder, split):
    return read_labelled(split_file(folder, split))


def split_file(folder, split):
    """The one regular file that holds a split in a data folder; anything else refused, named for
    what it is."""
    paths = [
        folder / f"{split}{suffix}"
        for suffix in READERS
        if (folder / f"{split}{suffix}").exists() or (folder / f"{split}{suffix}").is_symlink()
    ]
    not_files = [(path, file_kind(path)) for path in paths if file_kind(path) != "a file"]
    if not_files:
        path, kind = not_files[0]
        raise UsageError(
            f"{path} is {kind}, not a file: the {split} split must be one file "
            f"({split}.parquet, .csv, .tsv, .jsonl or .json)"
        )
    if not paths:
        raise UsageError(
            f"no {split} file in {folder}: expected {split}.parquet (or .csv, .tsv, .jsonl, .json)"
        )
    if len(paths) > 1:
        raise UsageError(
            f"{folder} has several {split} files ({', '.join(p.name for p in paths)}): "
            "keep one, so it is clear which is read"
        )
    return paths[0]


def file_kind(path):
    """What a path is, in words: 'a file' for a regular file (through links), else what it is
    instead ('a named pipe (FIFO)', 'a character device', 'a link to a socket', 'a broken link',
    ...). Only a regular file can be read as data: a pipe or a device would block or never end."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as err:
        return "a broken link" if path.is_symlink() else f"unreadable ({err.strerror})"
    kinds = [
        (stat.S_ISREG, "a file"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    kind = next((name for test, name in kinds if test(mode)), "a special file")
    return (
        f"a link to {kind[2:] if kind.startswith('a ') else kind}"
        if path.is_symlink() and kind != "a file"
        else kind
    )


def check_data_dir(data_dir):
    """Before anything loads: the data folder holds one regular file per split (read and checked
    later)."""
    if data_dir is None:
        return
    folder = Path(data_dir)
    if not folder.is_dir():
        kind = f" ({file_kind(folder)})" if folder.exists() or folder.is_symlink() else ""
        raise UsageError(
            f"data_dir {folder} is not a folder{kind}: point --data_dir at a folder with train and "
            "validation files"
        )
    for split in ("train", "validation"):
        split_file(folder, split)


def read_labelled(path):
    """One labelled file of SST-2-style rows (sentence, label 0/1, optional idx), each row
    checked."""
    try:
        frame = READERS[path.suffix](path)
    except UsageError:
        raise
    # each reader raises its own types; all mean "not a readable file of this format"
    except Exception as err:
        raise UsageError(
            f"cannot read {path} as {path.suffix[1:]}: {str(err).splitlines()[0][:200]}"
        ) from None
    if path.suffix == ".csv":
        check_quoting(path, frame)
    check_rows(path, frame)
    frame["idx"] = checked_idx(path, frame) if "idx" in frame.columns else np.arange(len(frame))
    frame = frame.astype({"sentence": str, "label": "int64", "idx": "int64"})
    return Dataset.from_pandas(frame[["idx", "sentence", "label"]], preserve_index=False)


def check_rows(path, frame):
    """Both columns there, rows there, every sentence visible, every label 0 or 1."""
    missing = {"sentence", "label"} - set(frame.columns)
    if missing:
        raise UsageError(
            f"{path} lacks column(s) {sorted(missing)}: SST-2 files need 'sentence' and 'label'"
        )
    if frame.empty:
        raise UsageError(f"{path} has no rows")
    blank = ~frame["sentence"].map(has_visible_text)
    if blank.any():
        raise UsageError(
            f"{path}: row(s) {rows_named(blank)} have no sentence (empty, or only invisible "
            "characters): fill them in or remove them"
        )
    hidden = frame["label"].map(lambda label: type(label) in LABEL_TYPES and label == -1)
    if hidden.any():
        raise UsageError(
            f"{path}: the labels of {hidden.sum():,} row(s) are hidden (-1, as in GLUE's test "
            "split), so nothing can be scored on it: use a copy with the true labels 0/1 (see the "
            "README)"
        )
    bad_label = ~frame["label"].map(lambda label: type(label) in LABEL_TYPES and label in (0, 1))
    if bad_label.any():
        found = list(dict.fromkeys(repr(label) for label in frame["label"][bad_label]))[:5]
        raise UsageError(
            f"{path}: labels must be 0 (negative) or 1 (positive); row(s) {rows_named(bad_label)} "
            f"have {', '.join(found)}"
        )


def checked_idx(path, frame):
    """The idx column as 64-bit whole numbers; a warning when rows share one."""
    idx = frame["idx"].map(whole_number)
    bad_idx = idx.isna()
    if bad_idx.any():
        raise UsageError(
            f"{path}: idx must be whole numbers within 64 bits; row(s) {rows_named(bad_idx)} "
            "are not (or drop the idx column: rows are then numbered)"
        )
    repeated = idx.duplicated(keep=False)
    # nothing is joined on idx, but a reader of predictions.csv may expect it to be unique
    if repeated.any():
        say(
            f"warning: {path}: {repeated.sum():,} rows share an idx with another row (row(s) "
            f"{rows_named(repeated)}); every row is kept and scored, but idx does not name one "
            "row there"
        )
    return idx.astype("int64")


def check_quoting(path, frame):
    """A CSV parses into exactly its rows: a quotation mark that opens a cell and never closes where
    a cell ends (as a naive export writes one) makes pandas' lenient parser swallow the rows after
    it into that one cell, whatever the columns' order. Read again strictly (a closing quote must
    be followed by a comma or the line's end, and every quote must close), such a file fails at the
    row that opened the quote, which is named; a well-quoted cell holding line breaks passes."""
    rows = 0
    try:
        with open(path, newline="", encoding="utf-8") as text:
            for record in csv.reader(text, strict=True):
                rows += bool(record)  # pandas skips blank lines too
    except csv.Error:
        raise UsageError(
            f"{path}: row {rows}'s cell opens a quotation mark that is never closed where a cell "
            "ends, so the rows after it were swallowed into it. Close the quote (a quotation mark "
            "inside a quoted cell is written twice), or save the file as parquet"
        ) from None
    except (OSError, UnicodeDecodeError):
        return  # pandas read it: what it read is checked row by row below
    if rows - 1 != len(frame):
        raise UsageError(
            f"{path}: {rows - 1:,} rows read strictly but {len(frame):,} by the lenient reader: a "
            "quotation mark is out of place; fix the quoting, or save the file as parquet"
        )


INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\x00"  # zero-width characters, byte-order mark, NUL


def has_visible_text(text):
    """A sentence is text with at least one character a reader (and a tokenizer) would see."""
    return isinstance(text, str) and any(
        ch.isprintable() and not ch.isspace() and ch not in INVISIBLE for ch in text
    )


INT64 = 2**63 - 1


def whole_number(value):
    """An idx value as an int, or None when it is not a finite whole number within int64."""
    try:
        if isinstance(value, (int, np.integer)) or (
            isinstance(value, str) and value.strip().lstrip("-").isdigit()
        ):
            number = int(value)
        else:
            number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if isinstance(number, float) and not (math.isfinite(number) and number == round(number)):
        return None
    return int(number) if abs(int(number)) <= INT64 else None


LABEL_TYPES = (
    int,
    float,
    bool,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.float32,
    np.float64,
    np.bool_,
)


def rows_named(mask, most=5):
    """The first few flagged rows, as a person counts data rows: from 1, the header not counted."""
    rows = np.flatnonzero(np.asarray(mask)) + 1
    return ", ".join(map(str, rows[:most])) + (
        f" and {len(rows) - most} more" if len(rows) > most else ""
    )


def column(dataset, name):
    """A whole column as a numpy array of Python objects: a text column costs its total text, where
    numpy's own string type would make every row as wide as the longest (one 1 MB sentence:
    gigabytes). (Iterating `dataset[name]` goes row by row: ~100x slower.)"""
    return dataset.with_format("arrow")[:][name].to_numpy(zero_copy_only=False)


def split_train_test(train, *, test_size, seed, how):
    """Hold out a test set from GLUE train: 'random' is the notebook's split; 'grouped' leaves no
    test item that is a phrase (contiguous word span) of any training item."""
    if how == "random":
        try:
            parts = train.train_test_split(test_size=test_size, seed=seed)
        except ValueError as err:  # datasets' own words for a split that leaves one side empty
            raise UsageError(
                f"test_size {test_size} cannot split {len(train):,} training rows "
                f"({str(err).splitlines()[0][:120]}): choose a value nearer 0.1"
            ) from None
        train_part, test_part = parts["train"], parts["test"]
    else:
        is_test = grouped_test_mask(column(train, "sentence"), test_size, seed)
        train_part, test_part = (
            train.select(np.flatnonzero(~is_test)),
            train.select(np.flatnonzero(is_test)),
        )
    if (len(train_part) == 0 or len(test_part) == 0) and how == "grouped":
        groups = len(
            roots_and_members(set(map(words, column(train, "sentence"))), desc="grouped split")
        )
        if groups < 2:  # no test_size can split one group
            raise UsageError(
                f"the grouped split keeps each sentence with its phrases, and the {len(train):,} "
                f"training rows form {groups} such group (identical or nested sentences): no "
                "test_size can split them; use --split random"
            )
    if len(train_part) == 0 or len(test_part) == 0:
        raise UsageError(
            f"test_size {test_size} leaves the {'train' if len(train_part) == 0 else 'test'} split "
            f"empty ({how} split of {len(train):,} rows): choose a value nearer 0.1"
        )
    return train_part, test_part


def take_fraction(dataset, fraction, *, seed, name):
    """A seeded random share of a split, for quick runs."""
    if fraction is None:
        return dataset
    keep = int(len(dataset) * fraction)
    if keep == 0:
        raise UsageError(
            f"subset_fraction {fraction} leaves the {name} split ({len(dataset)} rows) empty: "
            "raise it"
        )
    return dataset.shuffle(seed=seed).select(range(keep))


class Data(NamedTuple):
    """What the runs train and are scored on: every split's frame and tokenized batches, each
    evaluation split described, a learning curve's plan (None without one), and the data's
    fingerprint (resume.data_fingerprint; of the whole training set where a curve uses part)."""

    frames: dict
    batches: dict
    eval_splits: dict
    plan: object
    fingerprint: str


def sst2_splits(cfg):
    """Train / test / validation as the config asks: GLUE train re-split, GLUE validation as it is,
    and the external test set when one is named; each a frame of idx, sentence, label. Also every
    SST-2 sentence (train and validation, before any subset): the corpus that tells whole sentences
    from phrases."""
    # the external file first: a bad one is reported in a moment, not after SST-2 is loaded and
    # re-split
    external = read_labelled(Path(cfg.external_test_file)) if cfg.external_test_file else None
    raw = load_sst2(cfg.data_dir)
    train, test = split_train_test(
        raw["train"], test_size=cfg.test_size, seed=cfg.seed, how=cfg.split
    )
    splits = {"train": train, "test": test, "validation": raw["validation"]}
    if external is not None:
        splits["external_test"] = external
    frames = {
        name: take_fraction(ds, cfg.subset_fraction, seed=cfg.seed, name=name).to_pandas()
        for name, ds in splits.items()
    }
    train_labels = frames["train"]["label"].unique()
    if len(train_labels) < 2:
        raise UsageError(
            f"the train split has only label {train_labels[0]} ({len(frames['train']):,} rows): "
            "nothing to learn apart; check the data, or raise subset_fraction"
        )
    return frames, np.concatenate(
        [column(raw["train"], "sentence"), column(raw["validation"], "sentence")]
    )


def check_external_test_file(path):
    """The external test set names a file of a format the run reads (its rows are checked when it is
    read)."""
    if path is None:
        return
    kind = file_kind(path) if Path(path).exists() or Path(path).is_symlink() else None
    if kind != "a file":
        raise UsageError(
            f"external_test_file {path} is not a file{f' ({kind})' if kind else ''}: point it at a "
            "labelled file of sentences (columns sentence and label), or leave it unset"
        )
    if Path(path).suffix not in READERS:
        raise UsageError(
            f"external_test_file {path}: cannot read "
            f"{Path(path).suffix or 'files without a suffix'}; save it as {', '.join(READERS)}"
        )
