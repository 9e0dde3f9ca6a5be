"""What a learning curve costs against one full-size run with the same seeds: both run back to back
through the script in this process, on the same device; one line of ratios comes out.

  GPU (the issue's sizes, real MiniLM weights, full SST-2):
    python bench/curve_cost.py --model_name models/minilm-l6-h384-uncased --data_dir data/sst2
  CPU, a subset (the first --train_rows rows of GLUE train, all of validation):
    python bench/curve_cost.py --model_name models/minilm-l6-h384-uncased --data_dir data/sst2 \\
        --train_rows 6000

The curve shares its data, tokenization, model weights and frozen features across sizes; what it
adds is each smaller size's training (raised to the minimum steps) and one prediction pass over
the evaluation sets per size. Without the minimum, sizes of 1%, 3%, 10%, 30% and 100% train for
1.44 times the full run's steps; on full SST-2 the minimum adds 262 full fine-tune steps to the
1%/3% points (3,790 steps in the full run), so the expected ratio is about 1.5 plus the prediction
passes. On a small subset the minimum dominates and the ratio is larger (the subset's full run has
few steps to compare with).
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd

os.environ.setdefault("TQDM_DISABLE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sst2_compare as app  # noqa: E402


def timed_run(argv, out):
    """The script's run with these flags, into out: its results.json."""
    if app.main([*argv, "--output_dir", str(out)]) != 0:
        raise SystemExit(f"the run {' '.join(argv)} failed")
    (run_dir,) = out.iterdir()
    return json.loads((run_dir / "results.json").read_text())


def metrics(record):
    """Every seed's metrics per model and split (results.json's seeds[].metrics)."""
    return [seed["metrics"] for seed in record["seeds"]]


def subset_data(data_dir, rows, folder):
    """The first `rows` rows of train and all of validation, as parquet in folder."""
    folder.mkdir()
    for split, keep in (("train", rows), ("validation", None)):
        frame = pd.read_parquet(Path(data_dir) / f"{split}.parquet")
        frame.iloc[:keep].to_parquet(folder / f"{split}.parquet")
    return folder


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_name", default="models/minilm-l6-h384-uncased")
    parser.add_argument("--data_dir", default="data/sst2")
    parser.add_argument("--sizes", default="1%,3%,10%,30%,all")
    parser.add_argument("--num_seeds", default="1")
    parser.add_argument("--train_rows", type=int, help="a subset: the first rows of GLUE train")
    parser.add_argument("--out", help="a JSON file for the two runs' timings and the ratio")
    args, extra = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        data = args.data_dir
        if args.train_rows:
            data = subset_data(args.data_dir, args.train_rows, scratch / "data")
        common = ["--model_name", args.model_name, "--data_dir", str(data)]
        common += ["--num_seeds", args.num_seeds, "--save_models", "false", *extra]
        single = timed_run(common, scratch / "single")
        curve = timed_run([*common, "--train_sizes", args.sizes], scratch / "curve")
    seconds = {
        "single": single["timings_seconds"]["total"],
        "curve": curve["timings_seconds"]["total"],
    }
    single_steps = {run: t["steps"] for run, t in single["seeds"][0]["training"].items()}
    record = {
        "sizes": curve["curve"]["sizes"],
        "seconds": seconds,
        "ratio": seconds["curve"] / seconds["single"],
        "steps": {str(p["size"]): p["steps"] for p in curve["curve"]["points"]},
        "single_run_steps": single_steps,
        "device": single["environment"]["device"],
        # their numbers, not their times
        "full_size_equal": metrics(curve) == metrics(single),
    }
    # on a small training set the minimum steps raise the whole-set point too: then it cannot equal
    # the single run, which trains its configured epochs
    raised = record["steps"][str(record["sizes"][-1])] != single_steps
    print(
        f"curve at {args.sizes} ({record['sizes']}): {seconds['curve']:.1f} s; one full-size run: "
        f"{seconds['single']:.1f} s; ratio {record['ratio']:.2f}x on {record['device']}; "
        f"the full-size point equals the single run: {record['full_size_equal']}"
        + (" (its steps were raised to the minimum)" if raised else "")
    )
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
