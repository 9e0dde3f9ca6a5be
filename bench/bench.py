"""Wall time of the whole experiment: the original notebook's settings against this project's
defaults.

Both run back to back in one process on the same device, through the same script; one table comes
out.

  GPU timing (random weights, the real model's arithmetic):
    python bench/bench.py --model_name models/distilbert-base-uncased-arch
  GPU accuracy (real weights):
    python bench/bench.py --model_name models/minilm-l6-h384-uncased
  CPU mode, under a minute on 2 cores (a tiny random model, 2% of the data):
    python bench/bench.py --tiny

A model folder without weights gets random ones (timing only: its accuracies mean nothing).
--variant NAME:FIELD=VALUE,... adds a column that changes config fields from the defaults (an
ablation).
"""

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars would bury the table
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from transformers import AutoConfig, AutoModel, AutoTokenizer  # noqa: E402

import sst2_compare as app  # noqa: E402
from config import Config  # noqa: E402
from sst2kit.settings import parse_config  # noqa: E402

# what the notebook did, as config fields: fp32, the encoder run at every head-only step (dropout
# on), every kernel launched from Python, batches padded to their longest row, each run ending at
# its epoch of lowest validation loss (so validation is scored after the last epoch too). It also
# wrote a checkpoint to disk every epoch and scored the test set twice; this baseline does neither
# (it keeps the chosen weights in memory), so the ratio measured here understates the gain.
NOTEBOOK = {
    "precision": "fp32",
    "cache_encoder_features": False,
    "cuda_graphs": False,
    "select_best_epoch": True,
}


def random_weights_model(model_name, tiny, folder):
    """A checkpoint of the architecture with random weights: the real arithmetic, no download."""
    config = AutoConfig.from_pretrained(model_name)
    if tiny:
        config.update(
            {"n_layers": 2, "dim": 32, "hidden_dim": 64, "n_heads": 2}
            if config.model_type == "distilbert"
            else {
                "num_hidden_layers": 2,
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_attention_heads": 2,
            }
        )
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(model_name).save_pretrained(folder)
    return str(folder)


def has_weights(model_name):
    return any(Path(model_name).glob("*.safetensors"))


def warm_up_device():
    """Create the CUDA context and cuBLAS's handle before either arm, so neither pays for them.
    Nothing else carries over between arms: no compiler runs, so there is no compile or autotune
    cache."""
    if torch.cuda.is_available():
        x = torch.randn(256, 256, device="cuda")
        (x @ x).sum().item()


def run_once(cfg):
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the report and the Trainer's log lines
        run_dir = app.run(cfg)
    wall = time.perf_counter() - started
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    return summarize(results, wall), results


STAGES = (
    "input checks",
    "data",
    "setup",
    "features",
    "waiting for the probe",
    "statistics",
    "files",
    "report",
    "outside stages",
)


def summarize(results, wall):
    first_seed, timings = results["seeds"][0], results["timings_seconds"]
    head, full = first_seed["training"]["head_only"], first_seed["training"]["full_finetune"]
    scored = first_seed["metrics"]
    seeds = sum(seconds for stage, seconds in timings.items() if stage.startswith("seed"))
    return {
        **{f"{stage} s": timings.get(stage, 0.0) for stage in STAGES},
        "both runs (seeds) s": seeds,
        "head-only s": timings.get("features", 0) + head["train_seconds"] + head["predict_seconds"],
        # not in total
        "probe, beside s": (results["probe_fit"] or {}).get("seconds", 0),
        "full fine-tune s": full["train_seconds"] + full["predict_seconds"],
        "evaluation s": head["predict_seconds"] + full["predict_seconds"],
        "total s": wall,
        "head-only steps/s": head["steps"] / head["train_seconds"],
        "full steps/s": full["steps"] / full["train_seconds"],
        "peak GPU GiB": torch.cuda.max_memory_allocated() / 2**30
        if torch.cuda.is_available()
        else float("nan"),
        "head-only val acc": scored["head_only"]["validation"]["accuracy"],
        "head-only test acc": scored["head_only"]["test"]["accuracy"],
        "full val acc": scored["full_finetune"]["validation"]["accuracy"],
        "full test acc": scored["full_finetune"]["test"]["accuracy"],
    }


def parse_variant(text):
    name, _, assignments = text.partition(":")
    fields = {f.name: f.type for f in Config.__dataclass_fields__.values()}
    overrides = {}
    for assignment in filter(None, assignments.split(",")):
        key, _, value = assignment.partition("=")
        if key not in fields:
            raise SystemExit(f"error: --variant {text}: {key} is not a config field")
        overrides[key] = parse_config(Config, [f"--{key}", value]).__dict__[key]
    return name, overrides


def print_table(columns, baseline="notebook"):
    names = list(columns)
    print(f"\n{'':20}" + "".join(f"{n:>14}" for n in names))
    for row in columns[baseline]:
        print(f"{row:20}" + "".join(f"{columns[n][row]:14.3f}" for n in names))
    for name in names[1:]:
        print(
            f"speed ratio {name} vs {baseline} (total wall time): "
            f"{columns[baseline]['total s'] / columns[name]['total s']:.2f}x"
        )


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model_name", default=str(ROOT / "models/distilbert-base-uncased-arch"))
    parser.add_argument("--data_dir", default=str(ROOT / "data/sst2"))
    parser.add_argument("--subset_fraction", type=float, default=None)
    parser.add_argument(
        "--tiny", action="store_true", help="a tiny random model and 2%% of the data"
    )
    parser.add_argument(
        "--variant", action="append", default=[], help="NAME:FIELD=VALUE,... (repeatable)"
    )
    parser.add_argument("--out", help="also write the table as JSON here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        model_name = args.model_name
        if args.tiny or not has_weights(model_name):
            model_name = random_weights_model(model_name, args.tiny, Path(scratch) / "model")
        common = {
            "model_name": model_name,
            "data_dir": args.data_dir,
            "output_dir": str(Path(scratch) / "runs"),
            "subset_fraction": args.subset_fraction or (0.02 if args.tiny else None),
            "save_models": False,
        }
        plans = {"notebook": NOTEBOOK, "defaults": {}, **dict(map(parse_variant, args.variant))}
        RANDOM_WEIGHTS = " (random weights: accuracies mean nothing)"
        device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
        print(
            f"device: {device}; model: {args.model_name}{' (tiny, random)' if args.tiny else ''}"
            f"{'' if has_weights(args.model_name) else RANDOM_WEIGHTS}; "
            f"data: {args.data_dir}, subset_fraction {common['subset_fraction']}",
            flush=True,
        )
        warm_up_device()
        columns, full_results = {}, {}
        for name, overrides in plans.items():
            columns[name], full_results[name] = run_once(Config(**common, **overrides))
            print(
                f"{name}: total {columns[name]['total s']:.1f}s ({full_results[name]['speed']})",
                flush=True,
            )
    print_table(columns)
    if args.out:
        report = {
            "device": device,
            "model": args.model_name,
            "columns": columns,
            "plans": plans,
            "results": full_results,
        }
        Path(args.out).write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
