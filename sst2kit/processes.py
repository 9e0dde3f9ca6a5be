"""Several processes, two ways (torchrun or accelerate launch): which this one is, and the few messages they
exchange. The main process (rank 0) decides, prints and writes.

  data:  every process trains every run on its shard of each batch (accelerate and the Trainer's data-parallel
         training): the effective batch is the per-device batch times the number of processes.
  seeds: every process trains whole seeds alone, with the single-process recipe (batch 32, CUDA graphs where they
         apply), seeds dealt round-robin; the processes share a small gloo group of their own only to agree on the
         run folder and to hand each finished seed to the main process. accelerate and the Trainer are not told of
         the other processes, so nothing is sharded or all-reduced.
"""
import os

import torch
import torch.distributed as dist
from accelerate import PartialState

# what torchrun sets and accelerate reads to go data-parallel; hidden from it in seeds mode
LAUNCHER_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
                      "ROLE_WORLD_SIZE", "GROUP_WORLD_SIZE")


def parallel_mode(wanted, num_seeds, processes):
    """'single' for one process; else 'seeds' or 'data' (auto: seeds when there are several seeds to spread)."""
    if processes <= 1:
        return "single"
    if wanted == "auto":
        return "seeds" if num_seeds > 1 else "data"
    return wanted


def start(wanted, num_seeds):
    """Set up this process for the mode the launch and the config ask for; returns the mode."""
    mode = parallel_mode(wanted, num_seeds, int(os.environ.get("WORLD_SIZE", 1)))
    if mode == "seeds":
        local_rank = int(os.environ["LOCAL_RANK"])
        dist.init_process_group("gloo")  # reads MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE: torchrun's rendezvous
        for name in LAUNCHER_VARIABLES:
            os.environ.pop(name, None)
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
    PartialState(cpu=not torch.cuda.is_available())
    return mode


def index():
    """This process's rank (from the launcher's variables until a process group exists)."""
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", 0))


def count():
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main():
    return index() == 0


def seed_parallel():
    """Each process trains whole seeds alone (our own group exists, accelerate sees one process)."""
    return count() > 1 and PartialState().num_processes == 1


def from_main(value):
    """The main process's value, in every process."""
    if count() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def to_main(value):
    """Every process's value, as a list in rank order, on the main process (None elsewhere)."""
    if count() == 1:
        return [value]
    gathered = [None] * count() if is_main() else None
    dist.gather_object(value, gathered, dst=0)
    return gathered

