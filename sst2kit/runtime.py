"""Where and how the run computes, decided once at start-up: the processes and how they share the
work, the device, the arithmetic precision, and whether training steps replay CUDA graphs (and why
not). The Experiment carries the one Setup; results.json, the printed setup and the trainer read it
from there."""

import logging
import platform
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import PartialState

from sst2kit import processes
from sst2kit.cuda_graphs import cuda_graphs_apply


@dataclass(frozen=True)
class Precision:
    """How the arithmetic runs, decided once per device: 'fp32', 'tf32', 'bf16' or 'fp16'."""

    name: str

    @property
    def trainer_flags(self):
        return {"bf16": {"bf16": True}, "fp16": {"fp16": True}}.get(self.name, {})

    @property
    def autocast_dtype(self):
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)


def decide_precision(asked, capability):
    """The precision for a GPU of this compute capability ((major, minor); None on a CPU).

    auto: TF32 matmuls on float32 weights from Ampere (8.x) on: measured on an H200, bf16 autocast
    made a DistilBERT step of batch 32 slower, its casts costing more launches than the arithmetic
    they save. Volta and Turing (7.x: V100, Colab's T4) have fp16 tensor cores but no TF32 or bf16,
    and their steps are bound by arithmetic, so fp16 autocast there. Anything older, or a CPU: plain
    fp32.
    """
    if capability is None or asked == "fp32":
        return Precision("fp32")
    major = capability[0]
    if asked == "auto":
        return Precision("tf32" if major >= 8 else "fp16" if major >= 7 else "fp32")
    if asked == "bf16" and major < 8:
        return Precision("fp16")
    return Precision(asked)


def apply_precision(precision):
    """Set the TF32 switches explicitly: a process's earlier runs must not decide them for this
    one."""
    torch.backends.cuda.matmul.allow_tf32 = precision.name == "tf32"
    torch.backends.cudnn.allow_tf32 = precision.name == "tf32"


@dataclass(frozen=True)
class Setup:
    parallel: str  # single, data (every process trains every run on a shard of each batch) or seeds
    processes: int
    device: str  # in words, as results.json and the printed setup name it
    precision: Precision
    cuda_graphs_off_because: str  # empty when the training steps replay CUDA graphs

    @property
    def cuda_graphs(self):
        return not self.cuda_graphs_off_because

    @property
    def cuda_graphs_said(self):
        return "on" if self.cuda_graphs else self.cuda_graphs_off_because

    @property
    def torch_device(self):
        return PartialState().device

    @property
    def data_parallel_processes(self):
        """The processes that share each batch (one unless the mode is data)."""
        return self.processes if self.parallel == "data" else 1

    def record(self):
        """results.json's `speed`."""
        return {
            "precision": self.precision.name,
            "cuda_graphs": self.cuda_graphs_said,
            "parallel": self.parallel,
            "processes": self.processes,
        }


class SeedsAreNotDistributedTraining(logging.Filter):
    """In seeds mode each process trains whole seeds alone, on purpose: transformers' advice,
    printed by every process for every run, to launch distributed training another way does not
    apply."""

    def filter(self, record):
        return "parallel_mode != ParallelMode.DISTRIBUTED" not in record.getMessage()


def start(cfg):
    """Join the launch's processes (if any) and decide the run's Setup from the config and the
    hardware."""
    sizes = len(str(cfg.train_sizes).split(",")) if cfg.train_sizes else 1
    parallel = processes.start(cfg.parallel, cells=cfg.num_seeds * sizes)
    if parallel == "seeds":
        logging.getLogger("transformers.training_args").addFilter(SeedsAreNotDistributedTraining())
    state = PartialState()
    on_gpu = state.device.type == "cuda"
    precision = decide_precision(
        cfg.precision, torch.cuda.get_device_capability() if on_gpu else None
    )
    apply_precision(precision)
    graphs_off_because = cuda_graphs_apply(
        cfg.cuda_graphs,
        precision,
        processes=state.num_processes,
        device_type=state.device.type,
        gpus_visible=torch.cuda.device_count(),
    )
    device = (
        torch.cuda.get_device_name()
        if on_gpu
        else f"cpu ({platform.processor() or platform.machine()})"
    )
    return Setup(
        parallel=parallel,
        processes=processes.count(),
        device=device,
        precision=precision,
        cuda_graphs_off_because=graphs_off_because,
    )


@dataclass(frozen=True)
class Experiment:
    """What every run of one experiment shares."""

    cfg: object  # config.py's Config
    run_dir: Path
    tokenizer: object
    setup: Setup
