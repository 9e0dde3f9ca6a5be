"""Where one full fine-tune step goes, and what replaying it as a CUDA graph saves.

A bare loop (forward, backward, gradient clipping, fused AdamW) on real SST-2 batches of 32, outside
the Trainer: eager with batches padded to their longest row (the notebook), eager padded to a
multiple of 32 tokens, and the project's graphed step (graphs.StepGraph: forward and backward
captured once per padded length) in TF32 and in bf16 autocast. Prints per variant: steady-state wall
time per step, the time of its first 20 steps (captures included), and the GPU kernel time per step.
Then checks that the graphed step computes what the eager one does (dropout off).

    python bench/step_profile.py --model_name models/distilbert-base-uncased-arch
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.profiler import ProfilerActivity, profile
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sst2kit.cuda_graphs import StepGraph  # noqa: E402


def batches(tokenizer, data_dir, count, pad_multiple, seed=0):
    sentences = pd.read_parquet(Path(data_dir) / "train.parquet")["sentence"].tolist()
    rng = np.random.default_rng(seed)
    for _ in range(count):
        rows = [sentences[i] for i in rng.integers(len(sentences), size=32)]
        batch = tokenizer(
            rows,
            padding=True,
            truncation=True,
            max_length=128,
            return_tensors="pt",
            pad_to_multiple_of=pad_multiple,
        )
        batch["labels"] = torch.as_tensor(rng.integers(2, size=32))
        yield {k: v.cuda() for k, v in batch.items() if k != "token_type_ids"}


def new_model(model_name, dropout=True):
    config = AutoConfig.from_pretrained(model_name, num_labels=2)
    if not dropout:
        config.update(
            {
                key: 0.0
                for key in (
                    "dropout",
                    "attention_dropout",
                    "seq_classif_dropout",
                    "hidden_dropout_prob",
                    "attention_probs_dropout_prob",
                )
                if hasattr(config, key)
            }
        )
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(config).cuda().train()


def step_fn(model, graphed, dtype):
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, fused=True)
    params = [p for p in model.parameters() if p.requires_grad]
    grads, graphs = [torch.zeros_like(p) for p in params], {}

    def loss_of(batch):
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            return model(**batch).loss

    def step(batch):
        if graphed:
            shape = tuple(batch["input_ids"].shape)
            if shape not in graphs:
                pool = next(iter(graphs.values())).graph.pool() if graphs else None
                graphs[shape] = StepGraph(loss_of, batch, params, grads, pool)
            loss = graphs[shape].replay(batch, params, grads)
        else:
            loss = loss_of(batch)
            loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach().clone()

    return step


def measure(model_name, prepared, graphed, dtype):
    step = step_fn(new_model(model_name), graphed, dtype)
    torch.cuda.synchronize()
    started = time.perf_counter()
    for batch in prepared[:20]:  # first steps: captures, cuBLAS set-up
        step(batch)
    torch.cuda.synchronize()
    first_20 = time.perf_counter() - started
    started = time.perf_counter()
    for batch in prepared[20:]:
        step(batch)
    torch.cuda.synchronize()
    wall_ms = 1000 * (time.perf_counter() - started) / (len(prepared) - 20)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for batch in prepared[20:40]:
            step(batch)
        torch.cuda.synchronize()
    kernel_ms = sum(e.self_device_time_total for e in prof.key_averages()) / 1000 / 20
    return wall_ms, first_20, kernel_ms


def graphed_matches_eager(model_name, prepared, steps=8):
    """Same start, same batches, dropout off: the graphed step's losses and weights against the
    eager step's."""
    runs = []
    for graphed in (False, True):
        model = new_model(model_name, dropout=False)
        step = step_fn(model, graphed, None)
        losses = torch.stack([step(batch) for batch in prepared[:steps]])
        runs.append((losses, torch.cat([p.detach().flatten() for p in model.parameters()])))
    (eager_loss, eager_w), (graph_loss, graph_w) = runs
    return (
        (graph_loss - eager_loss).abs().max().item(),
        ((graph_w - eager_w).norm() / eager_w.norm()).item(),
    )


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model_name", default=str(ROOT / "models/distilbert-base-uncased-arch"))
    parser.add_argument("--data_dir", default=str(ROOT / "data/sst2"))
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    print(f"device: {torch.cuda.get_device_name()}; model: {args.model_name}; batch 32")
    tokenizer = AutoTokenizer.from_pretrained(args.model_name)
    longest = list(batches(tokenizer, args.data_dir, args.steps, None))
    bucketed = list(batches(tokenizer, args.data_dir, args.steps, 32))
    variants = (
        ("eager fp32, padded to longest", longest, False, None, False),
        ("eager TF32, padded to longest", longest, False, None, True),
        ("eager TF32, padded to 32s", bucketed, False, None, True),
        ("graphed TF32, padded to 32s", bucketed, True, None, True),
        ("graphed bf16, padded to 32s", bucketed, True, torch.bfloat16, False),
    )
    for name, prepared, graphed, dtype, tf32 in variants:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        wall_ms, first_20, kernel_ms = measure(args.model_name, prepared, graphed, dtype)
        print(
            f"{name:32} wall {wall_ms:6.2f} ms/step   first 20 steps {first_20:5.2f} s   "
            f"GPU kernels {kernel_ms:6.2f} ms/step",
            flush=True,
        )
    torch.backends.cuda.matmul.allow_tf32 = False
    loss_diff, weight_diff = graphed_matches_eager(args.model_name, bucketed)
    print(
        f"graphed vs eager, fp32, dropout off, 8 steps: max loss difference {loss_diff:.2e}, "
        f"relative weight difference {weight_diff:.2e}"
    )


if __name__ == "__main__":
    main()
