import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_SST2

from data import UsageError, column, inside_fractions, load_sst2, read_split, split_train_test, take_fraction


def test_random_split_sizes_deterministic_and_disjoint(tiny_data_dir):
    train = load_sst2(str(tiny_data_dir))["train"]
    a_train, a_test = split_train_test(train, 0.1, 42, "random")
    b_train, b_test = split_train_test(train, 0.1, 42, "random")
    assert (len(a_train), len(a_test)) == (360, 40)
    assert a_test["idx"] == b_test["idx"]
    assert not set(a_train["idx"]) & set(a_test["idx"])
    assert split_train_test(train, 0.1, 7, "random")[1]["idx"] != a_test["idx"]


def test_grouped_split_leaves_no_test_phrase_inside_train(tiny_data_dir):
    train = load_sst2(str(tiny_data_dir))["train"]
    g_train, g_test = split_train_test(train, 0.2, 0, "grouped")
    assert len(g_train) + len(g_test) == len(train)
    assert inside_fractions(g_train["sentence"], {"test": g_test["sentence"]})["test"] == 0
    assert abs(len(g_test) / len(train) - 0.2) < 0.05
    assert split_train_test(train, 0.2, 0, "grouped")[1]["idx"] == g_test["idx"]


def test_inside_fractions_counts_contiguous_word_spans():
    fractions = inside_fractions(["the film was good", "a dull plot"],
                                 {"q": ["film was", "was film", "the film was good", "dull", "plot a"]})
    assert fractions["q"] == pytest.approx(3 / 5)


def test_subset_fraction_is_seeded_and_sized(tiny_data_dir):
    train = load_sst2(str(tiny_data_dir))["train"]
    part = take_fraction(train, 0.25, 42, "train")
    assert len(part) == 100
    assert part["idx"] == take_fraction(train, 0.25, 42, "train")["idx"]
    assert take_fraction(train, None, 42, "train") is train
    with pytest.raises(UsageError, match="empty"):
        take_fraction(train, 0.001, 42, "train")


@pytest.mark.parametrize("content, message", [
    (pd.DataFrame({"text": ["a"], "label": [0]}), "lacks column"),
    (pd.DataFrame({"sentence": ["a", "b"], "label": [0, 2]}), "labels must be 0"),
    (pd.DataFrame({"sentence": [], "label": []}), "no rows"),
])
def test_bad_split_files_are_named(tmp_path, content, message):
    content.to_parquet(tmp_path / "train.parquet")
    with pytest.raises(UsageError, match=message):
        read_split(tmp_path, "train")


def test_unreadable_and_missing_files(tmp_path):
    (tmp_path / "train.parquet").write_text("not parquet")
    with pytest.raises(UsageError, match="cannot read"):
        read_split(tmp_path, "train")
    with pytest.raises(UsageError, match="no validation file"):
        read_split(tmp_path, "validation")
    with pytest.raises(UsageError, match="not a folder"):
        load_sst2(str(tmp_path / "absent"))


def test_csv_and_jsonl_read_like_parquet(tmp_path):
    frame = pd.DataFrame({"sentence": ["good film", "bad plot"], "label": [1, 0]})
    frame.to_csv(tmp_path / "train.csv", index=False)
    frame.to_json(tmp_path / "validation.jsonl", orient="records", lines=True)
    splits = load_sst2(str(tmp_path))
    assert splits["train"]["sentence"] == splits["validation"]["sentence"] == ["good film", "bad plot"]
    assert splits["train"]["idx"] == [0, 1]


real_data = pytest.mark.skipif(not SHARED_SST2.is_dir(), reason="../shared/data/sst2 is not here")


@real_data
def test_real_sst2_default_split_and_its_leakage():
    splits = load_sst2(str(SHARED_SST2))
    train, test = split_train_test(splits["train"], 0.1, 42, "random")
    assert (len(train), len(test)) == (60_614, 6_735)
    leakage = inside_fractions(column(train, "sentence"), {"test": column(test, "sentence")})
    assert leakage["test"] == pytest.approx(0.88, abs=0.01)


@real_data
def test_real_sst2_grouped_split():
    full = load_sst2(str(SHARED_SST2))["train"]
    train, test = split_train_test(full, 0.1, 42, "grouped")
    assert inside_fractions(column(train, "sentence"), {"test": column(test, "sentence")})["test"] == 0
    assert abs(len(test) / len(full) - 0.1) <= 0.02
    assert np.array_equal(split_train_test(full, 0.1, 42, "grouped")[1]["idx"], test["idx"])
