"""A reference for the head-only run: the best linear probe on the same frozen-encoder features.

The head-only run is the notebook's recipe (its head, learning rate and two epochs), which can leave a frozen
encoder's features under-used. A logistic regression on the standardised features, its regularisation chosen by
cross-validation on train, shows what a well-fit classifier on the frozen encoder reaches: the gap from it to the
full fine-tune is what freezing the encoder costs, the gap from the head-only run to it what the recipe costs.
"""
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegressionCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from config import EVAL_SPLITS
from report import say

MAX_TRAIN_ITEMS = 10_000  # cross-validated fits on more buy little and cost tens of seconds on a CPU


def best_linear_probe(features, seed):
    """P(positive) per evaluation split from a cross-validated logistic regression on the cached features,
    and what was fit; None (saying why) when there are no cached features."""
    if features is None:
        say("no linear probe reference: it needs the cached encoder features (cache_encoder_features)")
        return None
    train = features["train"]
    rows = np.random.default_rng(seed).permutation(len(train))[:MAX_TRAIN_ITEMS]
    probe = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=np.logspace(-4, 1, 6), cv=5, max_iter=1000,
                                                                 random_state=seed))
    with warnings.catch_warnings():  # scikit-learn announces changes of defaults that do not touch this fit
        warnings.simplefilter("ignore", FutureWarning)
        probe.fit(train.states[rows].numpy(), train.labels[rows].numpy())
    probs = {split: probe.predict_proba(features[split].states.numpy())[:, 1] for split in EVAL_SPLITS}
    fit = {"train_items": len(rows), "C": float(probe[-1].C_[0])}
    say(f"best linear probe (reference): regularisation C = {fit['C']:.3g} chosen by 5-fold cross-validation on "
        f"{fit['train_items']:,} training items")
    return probs, fit
