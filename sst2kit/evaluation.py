"""Each evaluation split as one value that flows through the run: its items in token-batch order,
labels, the independent units its uncertainty is measured over, lengths, leakage, majority floor and
its parts.

What is special about a split is decided here, where it is built, and nowhere else: GLUE validation
and an external file are whole sentences (identical ones merged into one unit); the re-split test
set is phrases and sentences cut from GLUE train, so its units are source sentences and it has two
parts, whole sentences and phrases.
"""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sst2kit.metrics import majority_floor
from sst2kit.names import SPLIT_TITLES, evaluated
from sst2kit.phrases import duplicate_units, inside_fractions, is_phrase_and_source, words


@dataclass(frozen=True, kw_only=True)
class EvalSplit:
    name: str
    frame: pd.DataFrame  # idx, sentence, label: rows in the order of the split's token batches
    units: np.ndarray  # an independent-unit id per item
    unit_name: str  # what a unit is, in words
    lengths: np.ndarray  # tokens per item
    leakage: float  # share of items that are word-for-word phrases of training items
    # part name -> item mask (the test set's whole sentences and phrases)
    parts: dict = field(default_factory=dict)

    @property
    def title(self):
        return SPLIT_TITLES[self.name]

    @property
    def labels(self):
        return self.frame["label"].to_numpy()

    @property
    def positive_share(self):
        return float(self.labels.mean()) if len(self.labels) else 0.0

    @property
    def majority_floor(self):
        return majority_floor(self.labels)

    @property
    def close_to_balanced(self):
        """Accuracy is a fair summary here: neither class is 60% or more of the items."""
        return max(self.positive_share, 1 - self.positive_share) < 0.6

    @property
    def unit_count(self):
        return int(len(np.unique(self.units)))

    @property
    def largest_unit_items(self):
        return int(np.bincount(self.units).max()) if len(self.units) else 0

    @property
    def units_said(self):
        """The units in words with their counts: '872 sentences', or for a split of sentences and
        phrases '4,363 units: 683 holding a whole sentence, 3,680 only phrases'."""
        whole = self.parts.get("whole_sentences")
        if whole is None:
            return f"{self.unit_count:,} {self.unit_name}"
        with_sentence = len(np.unique(self.units[whole]))
        return (
            f"{self.unit_count:,} {self.unit_name}: {with_sentence:,} holding a whole sentence, "
            f"{self.unit_count - with_sentence:,} only phrases"
        )

    @property
    def duplicated_items(self):
        """Items that repeat an earlier item of the split word for word: they share its unit."""
        return len(self.frame) - len(set(map(words, self.frame["sentence"])))


def evaluation_splits(frames, batches, corpus):
    """name -> EvalSplit for every evaluation split among the frames (already in token-batch order).
    corpus: every SST-2 item before any subset, which tells whole sentences from phrases and phrases
    from their sources."""
    names = evaluated(frames)
    leakage = inside_fractions(
        frames["train"]["sentence"], {name: frames[name]["sentence"] for name in names}
    )
    splits = {}
    for name in names:
        sentences = frames[name]["sentence"].tolist()
        lengths = batches[name].lengths.numpy()
        if name == "test":
            is_phrase, units = is_phrase_and_source(sentences, corpus)
            splits[name] = EvalSplit(
                name=name,
                frame=frames[name],
                units=units,
                unit_name="units",
                lengths=lengths,
                leakage=leakage[name],
                parts={"whole_sentences": ~is_phrase, "phrases": is_phrase},
            )
        else:
            splits[name] = EvalSplit(
                name=name,
                frame=frames[name],
                units=duplicate_units(sentences),
                unit_name="sentences",
                lengths=lengths,
                leakage=leakage[name],
            )
    return splits
