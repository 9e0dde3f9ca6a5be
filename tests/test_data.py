import os
import re
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from conftest import REAL_SST2, ROOT, sst2_like
from sst2kit.data import UsageError, column, load_sst2, read_split, split_train_test, take_fraction
from sst2kit.phrases import grouped_test_mask, inside_fractions, is_phrase_and_source


def test_random_split_sizes_deterministic_and_disjoint(tiny_data_dir):
    train = load_sst2(str(tiny_data_dir))["train"]
    a_train, a_test = split_train_test(train, test_size=0.1, seed=42, how="random")
    b_train, b_test = split_train_test(train, test_size=0.1, seed=42, how="random")
    assert (len(a_train), len(a_test)) == (360, 40)
    assert a_test["idx"] == b_test["idx"]
    assert not set(a_train["idx"]) & set(a_test["idx"])
    assert split_train_test(train, test_size=0.1, seed=7, how="random")[1]["idx"] != a_test["idx"]


def test_grouped_split_leaves_no_test_phrase_inside_train(tiny_data_dir):
    train = load_sst2(str(tiny_data_dir))["train"]
    g_train, g_test = split_train_test(train, test_size=0.2, seed=0, how="grouped")
    assert len(g_train) + len(g_test) == len(train)
    assert inside_fractions(g_train["sentence"], {"test": g_test["sentence"]})["test"] == 0
    assert abs(len(g_test) / len(train) - 0.2) < 0.05
    assert split_train_test(train, test_size=0.2, seed=0, how="grouped")[1]["idx"] == g_test["idx"]


def test_inside_fractions_counts_contiguous_word_spans():
    fractions = inside_fractions(
        ["the film was good", "a dull plot"],
        {"q": ["film was", "was film", "the film was good", "dull", "plot a"]},
    )
    assert fractions["q"] == pytest.approx(3 / 5)


def test_subset_fraction_is_seeded_and_sized(tiny_data_dir):
    train = load_sst2(str(tiny_data_dir))["train"]
    part = take_fraction(train, 0.25, seed=42, name="train")
    assert len(part) == 100
    assert part["idx"] == take_fraction(train, 0.25, seed=42, name="train")["idx"]
    assert take_fraction(train, None, seed=42, name="train") is train
    with pytest.raises(UsageError, match="empty"):
        take_fraction(train, 0.001, seed=42, name="train")


@pytest.mark.parametrize(
    "content, message",
    [
        (pd.DataFrame({"text": ["a"], "label": [0]}), "lacks column"),
        (pd.DataFrame({"sentence": ["a", "b"], "label": [0, 2]}), "labels must be 0"),
        (pd.DataFrame({"sentence": [], "label": []}), "no rows"),
    ],
)
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
    assert (
        splits["train"]["sentence"] == splits["validation"]["sentence"] == ["good film", "bad plot"]
    )
    assert splits["train"]["idx"] == [0, 1]


def test_a_json_array_reads_like_json_lines(tmp_path):
    frame = pd.DataFrame({"sentence": ["good film", "bad plot"], "label": [1, 0]})
    frame.to_json(tmp_path / "train.json", orient="records")  # [{...}, {...}]
    frame.to_json(tmp_path / "validation.json", orient="records", lines=True)
    splits = load_sst2(str(tmp_path))
    assert (
        splits["train"]["sentence"] == splits["validation"]["sentence"] == ["good film", "bad plot"]
    )


def test_a_folder_named_like_a_split_file_is_named_as_a_folder(tmp_path):
    (tmp_path / "train.parquet").mkdir()
    pd.DataFrame({"sentence": ["good"], "label": [1]}).to_parquet(tmp_path / "validation.parquet")
    with pytest.raises(UsageError, match=r"train\.parquet is a folder, not a file"):
        load_sst2(str(tmp_path))


def test_repeated_idx_values_are_kept_and_said(tmp_path, capsys):
    pd.DataFrame(
        {"idx": [7, 7, 8], "sentence": ["good", "bad", "fine"], "label": [1, 0, 1]}
    ).to_csv(tmp_path / "train.csv", index=False)
    assert read_split(tmp_path, "train")["idx"] == [7, 7, 8]
    assert "2 rows share an idx with another row (row(s) 1, 2)" in capsys.readouterr().out


real_data = pytest.mark.skipif(
    REAL_SST2 is None,
    reason="the real SST-2 is not here: put it in data/sst2 as the "
    "README says, or set SST2_DATA_DIR",
)


@real_data
def test_real_sst2_default_split_and_its_leakage():
    splits = load_sst2(str(REAL_SST2))
    train, test = split_train_test(splits["train"], test_size=0.1, seed=42, how="random")
    assert (len(train), len(test)) == (60_614, 6_735)
    leakage = inside_fractions(column(train, "sentence"), {"test": column(test, "sentence")})
    assert leakage["test"] == pytest.approx(0.88, abs=0.01)


@pytest.mark.slow
@real_data
def test_real_sst2_grouped_split():
    full = load_sst2(str(REAL_SST2))["train"]
    train, test = split_train_test(full, test_size=0.1, seed=42, how="grouped")
    assert (
        inside_fractions(column(train, "sentence"), {"test": column(test, "sentence")})["test"] == 0
    )
    assert abs(len(test) / len(full) - 0.1) <= 0.02
    assert np.array_equal(
        split_train_test(full, test_size=0.1, seed=42, how="grouped")[1]["idx"], test["idx"]
    )


def test_tsv_is_read_exactly_with_quotes_inside_sentences(tmp_path):
    sentences = [
        f'" a lone quote opens this {i}' if i % 3 == 0 else f'a "quoted" word {i}'
        for i in range(1500)
    ]
    lines = ["sentence\tlabel"] + [f"{s}\t{i % 2}" for i, s in enumerate(sentences)]
    (tmp_path / "train.tsv").write_text("\n".join(lines) + "\n")
    split = read_split(tmp_path, "train")
    assert len(split) == 1500
    assert split["sentence"] == sentences and split["label"] == [i % 2 for i in range(1500)]


@pytest.mark.parametrize(
    "frame, message",
    [
        (
            pd.DataFrame({"sentence": ["good", None, "  ", "bad"], "label": [1, 0, 1, 0]}),
            "row(s) 2, 3 have no sentence",
        ),
        (
            pd.DataFrame({"sentence": ["a", "b", "c"], "label": [0, "1", [1]]}),
            "row(s) 2, 3 have '1', [1]",
        ),
        (
            pd.DataFrame({"sentence": ["a", "b"], "label": [0, 1], "idx": [1, "x"]}),
            "idx must be whole numbers within",
        ),
        (
            pd.DataFrame({"sentence": ["a", "b"], "label": [0, 1], "idx": [1, None]}),
            "64 bits; row(s) 2 are not",
        ),
        (
            pd.DataFrame({"sentence": ["a", "b"], "label": [0, 1], "idx": [1, "inf"]}),
            "64 bits; row(s) 2 are not",
        ),
        (
            pd.DataFrame({"sentence": ["a", "b"], "label": [0, 1], "idx": ["1", str(2**64)]}),
            "64 bits; row(s) 2 are not",
        ),
        (
            pd.DataFrame({"sentence": ["a", "\u200b\ufeff", "\x00"], "label": [0, 1, 0]}),
            "row(s) 2, 3 have no sentence",
        ),
    ],
)
def test_bad_rows_are_named(tmp_path, frame, message):
    frame.to_json(tmp_path / "train.jsonl", orient="records", lines=True)
    with pytest.raises(UsageError, match=re.escape(message)):
        read_split(tmp_path, "train")


def test_two_files_for_one_split_are_refused(tmp_path):
    frame = pd.DataFrame({"sentence": ["good film"], "label": [1]})
    frame.to_parquet(tmp_path / "train.parquet")
    frame.to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(UsageError, match="several train files"):
        read_split(tmp_path, "train")


def test_items_longer_than_any_span_bound_are_still_matched():
    long_container = " ".join(f"w{i}" for i in range(100))
    inside, across = (
        " ".join(f"w{i}" for i in range(10, 80)),
        " ".join(f"w{i}" for i in range(90, 100)) + " w0",
    )
    fractions = inside_fractions([long_container], {"q": [inside, across, "w1", "w1 w2 w1"]})
    assert fractions["q"] == pytest.approx(2 / 4)
    assert (
        inside_fractions([long_container], {"q": [" ".join(f"w{i}" for i in range(10, 80)) + "0"]})[
            "q"
        ]
        == 0
    )


def test_one_huge_sentence_costs_seconds_not_hours():
    """Spans are enumerated up to 64 words: a 40,000-word item adds work in proportion to its
    length."""
    sentences = list(sst2_like(300, seed=0)["sentence"]) + [" ".join(["good film"] * 20_000)]
    started = time.monotonic()
    inside_fractions(sentences, {"test": sentences[:50] + sentences[-1:]})
    grouped_test_mask(sentences, 0.2, 0)
    assert time.monotonic() - started < 60


def test_items_are_grouped_by_the_one_source_sentence_they_come_from():
    shared = ["the film was good", "film was", "good", "a dull plot", "dull", "other thing"]
    corpus = [*shared, "the film was dull", "the film"]
    items = [*shared, "the film", "The  Film"]
    phrases, units = is_phrase_and_source(items, corpus)
    assert phrases.tolist() == [False, True, True, False, True, False, True, True]
    assert units[0] == units[2]  # "good" lies only in "the film was good"
    assert units[3] != units[4]  # "dull" lies in two sentences: a unit of its own, chaining neither
    # "film was": in two as well
    assert len({units[0], units[1], units[3], units[4], units[5], units[6]}) == 6
    assert units[6] == units[7]  # identical items, whitespace and case aside, are one unit


@pytest.mark.slow
@real_data
@pytest.mark.parametrize("how, units, largest", [("random", 4363, 10), ("grouped", 784, 32)])
def test_real_sst2_test_units_are_source_sentences(how, units, largest):
    """No unit chains unrelated sentences: union-find over nested spans put 1,580 random-split items
    in one."""
    raw = load_sst2(str(REAL_SST2))
    _, test = split_train_test(raw["train"], test_size=0.1, seed=42, how=how)
    corpus = np.concatenate(
        [column(raw["train"], "sentence"), column(raw["validation"], "sentence")]
    )
    sizes = np.bincount(is_phrase_and_source(list(column(test, "sentence")), corpus)[1])
    assert (len(sizes), sizes.max()) == (units, largest)


def test_long_sentences_are_told_from_their_phrases():
    long_sentence = " ".join(f"w{i}" for i in range(80))
    phrases, _ = is_phrase_and_source(
        [long_sentence, " ".join(f"w{i}" for i in range(70))], [long_sentence, "w1 w2"]
    )
    assert phrases.tolist() == [False, True]


def test_external_sentences_shared_with_validation_are_counted_word_for_word():
    from sst2kit.phrases import shared_items

    validation = ["a gem of a film .", "dull , dull , dull"]
    assert shared_items(["a  gem of a film .", "a gem", "dull , dull , dull "], validation) == 2


def test_numeric_sentences_in_json_lines_stay_text(tmp_path):
    pd.DataFrame({"sentence": ["123", "4.5", "good"], "label": [1, 0, 1]}).to_json(
        tmp_path / "train.jsonl", orient="records", lines=True
    )
    assert read_split(tmp_path, "train")["sentence"] == ["123", "4.5", "good"]


def test_big_idx_values_are_kept_exactly(tmp_path):
    pd.DataFrame(
        {"sentence": ["a", "b"], "label": [0, 1], "idx": [2**62 + 1, -(2**63 - 1)]}
    ).to_parquet(tmp_path / "train.parquet")
    assert read_split(tmp_path, "train")["idx"] == [2**62 + 1, -(2**63 - 1)]


DATA_STAGE_PEAKS = """
import resource, sys
sys.path.insert(0, {root!r})
from config import Config
from sst2kit.batches import tokenize_splits
from sst2kit.data import sst2_splits
from sst2kit.evaluation import evaluation_splits
from sst2kit.models import load_tokenizer
for data in sys.argv[1:]:
    cfg = Config(model_name={model!r}, data_dir=data)
    frames, corpus = sst2_splits(cfg)
    tokenizer = load_tokenizer(cfg)
    frames, batches = tokenize_splits(frames, tokenizer, max_length=128, train_pad_multiple=1)
    evaluation_splits(frames, batches, corpus)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_one_huge_row_costs_its_own_text_not_rows_times_its_length(tmp_path, tiny_model_dir):
    """The data stage's peak memory in a fresh process: 1,500 rows, then the same with one 250 kB
    sentence among them. Stored at the width of the longest row, the sentences would cost 1,500 x
    250 k x 4 bytes = 1.5 GB a copy, and the peak would rise by that much."""
    folders = []
    for name, huge in (("plain", None), ("huge", "good " + "film " * 50_000)):
        folder = tmp_path / name
        folder.mkdir()
        train = sst2_like(1500, seed=0)
        if huge:
            train.loc[5, "sentence"] = huge
        train.to_parquet(folder / "train.parquet")
        sst2_like(60, seed=1).to_parquet(folder / "validation.parquet")
        folders.append(str(folder))
    script = DATA_STAGE_PEAKS.format(root=str(ROOT), model=str(tiny_model_dir))
    done = subprocess.run(
        [sys.executable, "-c", script, *folders],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # kB: the peak after each, on lines of their own among the data stage's messages
    plain, huge = (int(line) for line in done.stdout.splitlines() if line.isdigit())
    assert huge < plain + 300_000, (plain, huge)


def test_long_items_are_found_inside_long_texts_as_a_brute_force_search_finds_them():
    """Items over LONG_ITEM words go through LongSpans (a look-up per start position), not a search
    of every long text for every long item (20,000 rows of 65 words took 92 s): the same spans as
    comparing every pair."""
    import random

    from sst2kit.phrases import LONG_ITEM, roots_and_members, spans_found

    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(40)]
    texts = [
        tuple(rng.choices(vocab, k=rng.randint(LONG_ITEM + 5, LONG_ITEM + 60))) for _ in range(150)
    ]
    for source in texts[:60]:  # long spans of long texts, and short ones
        start = rng.randint(0, len(source) - LONG_ITEM - 2)
        texts.append(source[start : start + rng.randint(LONG_ITEM + 1, len(source) - start)])
        texts.append(source[start : start + 5])
    texts = set(texts)

    def brute(query, text, proper):
        n = len(query)
        return (n < len(text) or not proper) and any(
            text[i : i + n] == query for i in range(len(text) - n + 1)
        )

    for proper in (True, False):
        expected = {
            q for q in texts if any(brute(q, t, proper) for t in texts if not proper or t != q)
        }
        assert spans_found(texts, texts, proper=proper) == expected
    members = roots_and_members(texts, desc="test")
    assert set(members) == {t for t in texts if not any(brute(t, o, True) for o in texts if o != t)}
    assert all(
        members[root] == {t for t in texts if t == root or brute(t, root, True)} for root in members
    )
