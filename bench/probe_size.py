"""How much the best linear probe gains from being fitted on every training item instead of 10,000.

The frozen encoder's features of the re-split SST-2 (one pass), then the probe twice: its C chosen by 5-fold
cross-validation on 10,000 items and fitted on all of them (what the run does), and chosen and fitted on those
10,000 alone (what it did before). Prints each one's C, GLUE validation and test accuracy, and seconds.

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
from sst2kit.features import FirstTokenStates, encoder_features  # noqa: E402
from sst2kit.models import load_model, load_tokenizer  # noqa: E402
from sst2kit.probe import CV_ITEMS, best_linear_probe  # noqa: E402


def accuracies(probs, features):
    return {split: float(np.mean((p > 0.5) == features[split].labels.numpy())) for split, p in probs.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name", default=str(ROOT / "models/minilm-l6-h384-uncased"))
    parser.add_argument("--data_dir", default=str(ROOT / "data/sst2"))
    args = parser.parse_args()
    cfg = Config(model_name=args.model_name, data_dir=args.data_dir)
    frames, _ = sst2_splits(cfg)
    _, batches = tokenize_splits(frames, load_tokenizer(cfg), max_length=cfg.max_length, train_pad_multiple=1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    features = encoder_features(load_model(cfg, cfg.seed)[0].to(device), batches, batch_size=256,
                                autocast_dtype=None)
    train = features["train"]
    rows = np.random.default_rng(cfg.seed).permutation(len(train))[:CV_ITEMS]  # the items the run's search uses
    subset = {**features, "train": FirstTokenStates(train.states[rows], train.labels[rows])}
    for name, these in ((f"C chosen on {CV_ITEMS:,}, fitted on all {len(train):,}", features),
                        (f"C chosen and fitted on those {CV_ITEMS:,} alone", subset)):
        started = time.perf_counter()
        probs, fit = best_linear_probe(these, cfg.seed)
        scores = accuracies(probs, features)
        print(f"{name}: C = {fit['C']:g}, validation {scores['validation']:.4f}, test {scores['test']:.4f}, "
              f"{time.perf_counter() - started:.1f}s", flush=True)


if __name__ == "__main__":
    main()
