"""Coverage of the across-seed interval (significance.across_seeds) by simulation: the table in
docs/statistics.md. Each trial draws a test set of sentences from a population whose difficulty and
gain from fine-tuning vary, and N seeds that shift each arm's skill (in logits); the truth is the
experiment's delta over the population and over seeds.

    python bench/interval_coverage.py --trials 1000
    python bench/interval_coverage.py --trials 1000 --items 6735 --seeds 3,5,10
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sst2kit.significance import across_seeds  # noqa: E402

# name -> (SD of the full fine-tune's seed shift, SD of head-only's, share of bad seeds, each
# outcome fixed per item (no seed-by-item noise), fine-tuning's mean gain in logits)
SCENARIOS = {
    "no seed-by-item noise": (0.15, 0.1, 0.0, True, 0.6),
    "large seed variation": (0.6, 0.3, 0.0, False, 0.6),
    "one seed in five bad (0.8 logits)": (0.1, 0.1, 0.2, False, 0.6),
    "SST-2-like": (0.12, 0.08, 0.0, False, 0.6),
    "equal arms (claims, not coverage)": (0.3, 0.3, 0.0, False, 0.0),
}
BAD_SEED_DROP = 0.8  # logits off the full fine-tune's skill in a bad seed (about 12 points)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def simulate(scenario, seeds, trials, items, rng):
    """(share of trials whose interval covers the truth, share that claim a difference)."""
    full_sd, head_sd, bad, fixed, gain_mean = SCENARIOS[scenario]
    population = 20_000
    difficulty, gain = (
        rng.normal(1.0, 1.2, population),
        rng.normal(gain_mean, 0.8, population) * (gain_mean > 0),
    )

    def shifts(n):
        return rng.normal(0, full_sd, n) - BAD_SEED_DROP * (rng.random(n) < bad), rng.normal(
            0, head_sd, n
        )

    full, head = shifts(400)
    truth = np.mean(
        sigmoid(difficulty[:, None] + gain[:, None] + full) - sigmoid(difficulty[:, None] + head)
    )
    covered = claimed = 0
    for _ in range(trials):
        chosen = rng.choice(population, items, replace=False)
        full, head = shifts(seeds)
        p_full = sigmoid(difficulty[chosen] + gain[chosen] + full[:, None])
        p_head = sigmoid(difficulty[chosen] + head[:, None])
        shape = items if fixed else (seeds, items)  # fixed: one draw per item, shared by every seed
        diffs = (rng.random(shape) < p_full).astype(float) - (rng.random(shape) < p_head)
        low, high = across_seeds(diffs, np.arange(items)).delta_accuracy_ci95
        covered += low <= truth <= high
        claimed += low > 0 or high < 0
    return covered / trials, claimed / trials


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument(
        "--items", type=int, default=872, help="test sentences per trial (GLUE validation: 872)"
    )
    parser.add_argument("--seeds", default="2,3,5", help="seed counts N, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"{'scenario':38} {'seeds':>5} {'coverage':>9} {'claims':>7}")
    for scenario in SCENARIOS:
        for seeds in (int(n) for n in args.seeds.split(",")):
            coverage, claims = simulate(scenario, seeds, args.trials, args.items, rng)
            print(f"{scenario:38} {seeds:5d} {coverage:9.3f} {claims:7.3f}")


if __name__ == "__main__":
    main()
