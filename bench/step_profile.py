"""Where one full fine-tune step goes: the GPU's kernels, or the CPU that launches them.

A bare loop (forward, backward, gradient clipping, fused AdamW) on SST-2-shaped batches of 32, in fp32 and
bf16 autocast, outside the Trainer. Prints per step: wall time, and the summed time of the GPU kernels.
Wall well above kernel time means the step is bound by launch and Python overhead, not arithmetic.

    python bench/step_profile.py --model_name ../shared/models/distilbert-base-uncased-arch
"""
import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.profiler import ProfilerActivity, profile
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

ROOT = Path(__file__).resolve().parents[1]


def batches(tokenizer, data_dir, count, seed=0):
    sentences = pd.read_parquet(Path(data_dir) / "train.parquet")["sentence"].tolist()
    rng = np.random.default_rng(seed)
    for _ in range(count):
        rows = [sentences[i] for i in rng.integers(len(sentences), size=32)]
        batch = tokenizer(rows, padding=True, truncation=True, max_length=128, return_tensors="pt")
        batch["labels"] = torch.as_tensor(rng.integers(2, size=32))
        yield {k: v.cuda() for k, v in batch.items()}


def step_fn(model, optimizer, dtype):
    def step(batch):
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def measure(model_name, data_dir, dtype, steps=200):
    config = AutoConfig.from_pretrained(model_name, num_labels=2)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config).cuda().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, fused=True)
    step = step_fn(model, optimizer, dtype)
    tokenizer = AutoTokenizer.from_pretrained(model_name)
    prepared = list(batches(tokenizer, data_dir, steps))
    for batch in prepared[:10]:
        step(batch)
    torch.cuda.synchronize()
    started = time.perf_counter()
    for batch in prepared:
        step(batch)
    torch.cuda.synchronize()
    wall_ms = 1000 * (time.perf_counter() - started) / steps
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for batch in prepared[:20]:
            step(batch)
        torch.cuda.synchronize()
    kernel_ms = sum(e.self_device_time_total for e in prof.key_averages()) / 1000 / 20
    return wall_ms, kernel_ms, np.mean([b["input_ids"].shape[1] for b in prepared])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name", default=str(ROOT.parent / "shared/models/distilbert-base-uncased-arch"))
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared/data/sst2"))
    args = parser.parse_args()
    print(f"device: {torch.cuda.get_device_name()}; model: {args.model_name}; batch 32")
    variants = (("fp32", None, False), ("fp32 + TF32", None, True), ("bf16 autocast", torch.bfloat16, False))
    for name, dtype, tf32 in variants:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        wall_ms, kernel_ms, length = measure(args.model_name, args.data_dir, dtype)
        print(f"{name:14} wall {wall_ms:6.2f} ms/step   GPU kernels {kernel_ms:6.2f} ms/step   "
              f"(mean padded length {length:.0f} tokens)")


if __name__ == "__main__":
    main()
