"""How much the best linear probe gains from being fitted on every training item instead of 10,000.

The frozen encoder's features of the re-split SST-2 (one pass), then the probe's C chosen once, as
the run does (repeated 5-fold cross-validation on 10,000 items), and the probe with that same C
fitted twice: on every training item (what the run does) and on those 10,000 alone. C is held fixed,
so the difference is the sample size's alone. Prints the C, each fit's GLUE validation and test
accuracy, and seconds.

    python bench/probe_size.py --model_name models/minilm-l6-h384-uncased   # ~3 min on 2 CPU cores
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from config import Config  # noqa: E402
from sst2kit.batches import tokenize_splits  # noqa: E402
from sst2kit.data import sst2_splits  # noqa: E402
from sst2kit.features import encoder_features  # noqa: E402
from sst2kit.models import load_model, load_tokenizer  # noqa: E402
from sst2kit.probe import CV_ITEMS, best_linear_probe, fitted_probe  # noqa: E402


def accuracies(probe, features):
    return {
        split: float(
            np.mean(probe.predict(features[split].states.numpy()) == features[split].labels.numpy())
        )
        for split in ("validation", "test")
    }


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model_name", default=str(ROOT / "models/minilm-l6-h384-uncased"))
    parser.add_argument("--data_dir", default=str(ROOT / "data/sst2"))
    args = parser.parse_args()
    cfg = Config(model_name=args.model_name, data_dir=args.data_dir)
    frames, _ = sst2_splits(cfg)
    _, batches = tokenize_splits(
        frames, load_tokenizer(cfg), max_length=cfg.max_length, train_pad_multiple=1
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    features = encoder_features(
        load_model(cfg, cfg.seed)[0].to(device), batches, batch_size=256, autocast_dtype=None
    )
    train = features["train"]
    started = time.perf_counter()
    _, fit = best_linear_probe(features, cfg.seed)
    print(
        f"C = {fit['C']:g}, chosen by {fit['repeats']} x {fit['folds']}-fold cross-validation on "
        f"{fit['cross_validated_on']:,} items, {time.perf_counter() - started:.1f}s",
        flush=True,
    )
    # the items the run's search uses
    rows = np.random.default_rng(cfg.seed).permutation(len(train))[:CV_ITEMS]
    states, labels = train.states.numpy(), train.labels.numpy()
    for name, these in (
        (f"fitted on all {len(train):,}", slice(None)),
        (f"fitted on those {CV_ITEMS:,}", rows),
    ):
        started = time.perf_counter()
        scores = accuracies(
            fitted_probe(states[these], labels[these], c=fit["C"], seed=cfg.seed), features
        )
        print(
            f"C = {fit['C']:g} {name}: validation {scores['validation']:.4f}, test "
            f"{scores['test']:.4f}, {time.perf_counter() - started:.1f}s",
            flush=True,
        )


if __name__ == "__main__":
    main()
