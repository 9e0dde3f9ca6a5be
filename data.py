"""SST-2 in, train/test/validation out: loading, the re-split, and phrase leakage between splits."""
from pathlib import Path

import numpy as np
import pandas as pd
from datasets import Dataset, DatasetDict, load_dataset

from config import UsageError

READERS = {  # file suffix -> pandas reader
    ".parquet": pd.read_parquet,
    ".csv": pd.read_csv,
    ".tsv": lambda path: pd.read_csv(path, sep="\t"),
    ".jsonl": lambda path: pd.read_json(path, lines=True),
    ".json": lambda path: pd.read_json(path, lines=True),
}


def load_sst2(data_dir):
    """GLUE SST-2 train and validation, from a local folder or the hub (GLUE's test labels are hidden: unused)."""
    if data_dir is None:
        try:
            hub = load_dataset("nyu-mll/glue", "sst2")
        except (OSError, ConnectionError) as err:
            raise UsageError(f"could not load SST-2 from the hub ({type(err).__name__}): "
                             "point --data_dir at a local copy, e.g. --data_dir ../shared/data/sst2") from None
        return DatasetDict(train=hub["train"], validation=hub["validation"])
    folder = Path(data_dir)
    if not folder.is_dir():
        raise UsageError(f"data_dir {folder} is not a folder: "
                         "point --data_dir at a folder with train and validation files")
    return DatasetDict({split: read_split(folder, split) for split in ("train", "validation")})


def read_split(folder, split):
    paths = [folder / f"{split}{suffix}" for suffix in READERS if (folder / f"{split}{suffix}").is_file()]
    if not paths:
        raise UsageError(f"no {split} file in {folder}: expected {split}.parquet (or .csv, .tsv, .jsonl)")
    path = paths[0]
    try:
        frame = READERS[path.suffix](path)
    except Exception as err:  # each reader raises its own types; all mean "not a readable file of this format"
        raise UsageError(f"cannot read {path} as {path.suffix[1:]}: {str(err).splitlines()[0][:200]}") from None
    missing = {"sentence", "label"} - set(frame.columns)
    if missing:
        raise UsageError(f"{path} lacks column(s) {sorted(missing)}: SST-2 files need 'sentence' and 'label'")
    if frame.empty:
        raise UsageError(f"{path} has no rows")
    if not frame["label"].isin([0, 1]).all():
        found = sorted(set(frame["label"]))[:5]
        raise UsageError(f"{path}: labels must be 0 (negative) or 1 (positive), found {found}")
    if "idx" not in frame.columns:
        frame["idx"] = np.arange(len(frame))
    frame = frame.astype({"sentence": str, "label": "int64", "idx": "int64"})
    return Dataset.from_pandas(frame[["idx", "sentence", "label"]], preserve_index=False)


def column(dataset, name):
    """A whole column as a numpy array. (Iterating `dataset[name]` goes row by row: ~100x slower.)"""
    return dataset.with_format("numpy")[name][:]


def split_train_test(train, test_size, seed, how):
    """Hold out a test set from GLUE train: 'random' is the notebook's split; 'grouped' leaves no test item
    that is a phrase (contiguous word span) of any training item."""
    if how == "random":
        parts = train.train_test_split(test_size=test_size, seed=seed)
        return parts["train"], parts["test"]
    is_test = grouped_test_mask(column(train, "sentence"), test_size, seed)
    return train.select(np.flatnonzero(~is_test)), train.select(np.flatnonzero(is_test))


def take_fraction(dataset, fraction, seed, name):
    """A seeded random share of a split, for quick runs."""
    if fraction is None:
        return dataset
    keep = int(len(dataset) * fraction)
    if keep == 0:
        raise UsageError(f"subset_fraction {fraction} leaves the {name} split ({len(dataset)} rows) empty: raise it")
    return dataset.shuffle(seed=seed).select(range(keep))


def words(text):
    return tuple(text.split())


def spans(tokens):
    """Every contiguous word span of a tokenised item (the item itself included)."""
    n = len(tokens)
    return (tokens[i:j] for i in range(n) for j in range(i + 1, n + 1))


def inside_fractions(containers, queries):
    """For each named list of queries: the share that is a contiguous word span of some container item.
    One pass over the containers' spans serves every list."""
    wanted = {words(q) for items in queries.values() for q in items}
    found = {span for item in set(map(words, containers)) for span in spans(item) if span in wanted}
    return {name: sum(words(q) in found for q in items) / max(len(items), 1) for name, items in queries.items()}


def grouped_test_mask(sentences, test_size, seed):
    """Pick test items so that none is a word span of a training item, about test_size of all items.

    SST-2 items are phrases of ~7k sentences. Take the maximal items ("roots": spans of no other item)
    in a seeded random order; an item goes to test once every root that contains it is a test root.
    Then any training item containing a test item would have all its roots among the test roots,
    which would have made it a test item: so none exists. Items shared by train and test roots stay in train.
    """
    texts = sorted(set(map(words, sentences)))
    index = {text: i for i, text in enumerate(texts)}
    contained = [[index[s] for s in set(spans(text)) if s in index] for text in texts]  # includes itself
    inside_other = np.zeros(len(texts), bool)
    for i, members in enumerate(contained):
        inside_other[[m for m in members if m != i]] = True
    roots = np.flatnonzero(~inside_other)
    open_roots = np.zeros(len(texts), int)  # per item: how many of its roots are not yet test roots
    for r in roots:
        open_roots[contained[r]] += 1
    copies = np.bincount([index[words(s)] for s in sentences], minlength=len(texts))
    in_test, target, taken = np.zeros(len(texts), bool), test_size * len(sentences), 0
    for r in np.random.default_rng(seed).permutation(roots):
        if taken >= target:
            break
        open_roots[contained[r]] -= 1
        newly = [m for m in contained[r] if open_roots[m] == 0 and not in_test[m]]
        in_test[newly] = True
        taken += copies[newly].sum()
    return np.array([in_test[index[words(s)]] for s in sentences])


def sst2_splits(cfg):
    """Train / test / validation as the config asks: GLUE train re-split, GLUE validation as it is; each a frame
    of idx, sentence, label."""
    raw = load_sst2(cfg.data_dir)
    train, test = split_train_test(raw["train"], cfg.test_size, cfg.seed, cfg.split)
    splits = {"train": train, "test": test, "validation": raw["validation"]}
    return {name: take_fraction(ds, cfg.subset_fraction, cfg.seed, name).to_pandas() for name, ds in splits.items()}
