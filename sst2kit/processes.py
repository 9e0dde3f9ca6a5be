"""Several processes, two ways (torchrun or accelerate launch): which this one is, and the few
messages they exchange. The main process (rank 0) decides, prints and writes.

  data:  every process trains every run on its shard of each batch (accelerate and the Trainer's
  data-parallel
         training): the effective batch is the per-device batch times the number of processes.
  seeds: every process trains whole seeds alone, with the single-process recipe (batch 32, CUDA
  graphs where they
         apply), seeds dealt round-robin; the processes share a small gloo group of their own only
         to agree on the run folder and to hand each finished seed to the main process. accelerate
         and the Trainer are not told of the other processes, so nothing is sharded or all-reduced.
"""

import os
from contextlib import contextmanager

import torch
import torch.distributed as dist
from accelerate import PartialState

from sst2kit.errors import UsageError

# what torchrun sets and accelerate reads to go data-parallel; hidden from it in seeds mode
LAUNCHER_VARIABLES = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "ROLE_RANK",
    "ROLE_WORLD_SIZE",
    "GROUP_WORLD_SIZE",
)


def parallel_mode(wanted, cells, processes):
    """'single' for one process; else 'seeds' or 'data' (auto: seeds when there are several cells,
    seeds or a learning curve's sizes of them, to spread)."""
    if processes <= 1:
        return "single"
    if wanted == "auto":
        return "seeds" if cells > 1 else "data"
    return wanted


def start(wanted, cells):
    """Set up this process for the mode the launch and the config ask for; returns the mode."""
    mode = parallel_mode(wanted, cells, int(os.environ.get("WORLD_SIZE", 1)))
    if mode == "seeds":
        local_rank = int(os.environ["LOCAL_RANK"])
        # reads MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE: torchrun's rendezvous
        dist.init_process_group("gloo")
        for name in LAUNCHER_VARIABLES:
            os.environ.pop(name, None)
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
    PartialState(cpu=not torch.cuda.is_available())
    return mode


def close():
    """Leave the process group (if any) before the process exits: a group left open aborts the
    process at exit ("terminate called without an active exception") instead of letting it exit with
    its own status."""
    if dist.is_initialized():
        dist.destroy_process_group()


def index():
    """This process's rank (from the launcher's variables until a process group exists)."""
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", 0))


def count():
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main():
    return index() == 0


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


def everyone(value):
    """Every process's value, as a list in rank order, in every process."""
    if count() == 1:
        return [value]
    gathered = [None] * count()
    dist.all_gather_object(gathered, value)
    return gathered


@contextmanager
def agreeing():
    """A block every process runs (the input checks, the data): a bad input that any one of them
    finds stops all of them with the same one line (naming the process when it is not the main one),
    instead of one process leaving and the others failing in their next exchange with it."""
    problem = None
    try:
        yield
    except UsageError as err:
        if count() == 1:
            raise
        problem = str(err)
    found = [(rank, seen) for rank, seen in enumerate(everyone(problem)) if seen]
    if found:
        rank, seen = found[0]
        raise UsageError(seen if rank == 0 else f"process {rank}: {seen}")


class Turn:
    """This process's cell in one round of the loop over cells, and the round's exchange. As a
    context around the cell's training: in seeds mode a failure is kept, not raised, so that the
    cells the other processes finished this round are still recorded before every process stops."""

    def __init__(self, cell, parallel, stopwatch):
        self.cell, self.parallel, self.stopwatch = cell, parallel, stopwatch
        self.result, self.failure = None, None

    def __enter__(self):
        return self

    def __exit__(self, kind, err, traceback):
        if isinstance(err, UsageError) and self.parallel == "seeds":
            self.failure = f"{self.cell} failed in process {index()}: {err}"
            return True
        return False

    def gathered(self):
        """The round's cells on the main process, (cell, its result) in process order; then, in
        every process, the round's first failure raised."""
        if self.parallel != "seeds":  # every process trained this cell together
            if is_main():
                yield self.cell, self.result
            return
        with self.stopwatch("waiting for other processes"):
            round_outcomes = to_main((self.cell, self.result, self.failure))
        failure = None
        if is_main():
            try:
                yield from ((cell, result) for cell, result, _ in round_outcomes if result)
            # the main process stopped while recording: the others must not wait for it
            except GeneratorExit:
                from_main("the main process stopped (it says why)")
                raise
            failure = next((message for *_, message in round_outcomes if message), None)
        with self.stopwatch("waiting for other processes"):
            failure = from_main(failure)
        if failure:  # the seeds recorded stay; every process stops, and the main one says why
            raise UsageError(failure)


def turns(cells, parallel, stopwatch):
    """This process's cell (a seed's two runs, at one training-set size on a learning curve) of
    each round, as a Turn. seeds mode: process k trains cells k, k + n, ... alone, and after each
    round the main process receives the round's cells; a process with no cell left takes part in
    the round's exchange only. Other modes: every process takes part in every cell."""
    spread = count() if parallel == "seeds" else 1
    for round_start in range(0, len(cells), spread):
        mine = round_start + (index() if parallel == "seeds" else 0)
        if mine < len(cells):
            yield Turn(cells[mine], parallel, stopwatch)
        else:
            list(Turn(None, parallel, stopwatch).gathered())
