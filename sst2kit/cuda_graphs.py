"""Training steps replayed as CUDA graphs: forward and backward captured once per batch shape, no
compiler.

A DistilBERT step of batch 32 launches hundreds of small kernels, and issuing them from Python costs
about three times what the kernels take on the GPU (measured on an H200: 14-16 ms of host time per
step for 4.7 ms of TF32 kernels). A captured graph is issued with one call. Capturing runs the eager
step twice on a side stream, then records it once: milliseconds per shape, where `torch.compile`
needs tens of seconds. With batches padded to a multiple of 32 tokens there are at most four shapes.
"""

import inspect

import torch
from transformers import Trainer

from sst2kit.console import say

# cuBLAS and autograd set themselves up on first use; that must happen outside the capture
WARMUP_STEPS = 2


# What CudaGraphTrainer relies on in the Trainer it extends: the training step's signature, how it
# prepares a batch and enters autocast, and the loss. Checked once at start-up against the installed
# transformers.
TRAINER_INTERNALS = {
    "_prepare_inputs",
    "compute_loss_context_manager",
    "compute_loss",
    "training_step",
}
TRAINING_STEP_PARAMETERS = ["self", "model", "inputs", "num_items_in_batch"]


def missing_trainer_internals(trainer_class=Trainer):
    """The Trainer internals this module relies on that the installed transformers lacks (empty when
    all are there)."""
    missing = sorted(
        name for name in TRAINER_INTERNALS if not callable(getattr(trainer_class, name, None))
    )
    if (
        not missing
        and list(inspect.signature(trainer_class.training_step).parameters)
        != TRAINING_STEP_PARAMETERS
    ):
        missing = ["training_step(model, inputs, num_items_in_batch)"]
    return missing


def cuda_graphs_apply(
    wanted, precision, *, processes, device_type, gpus_visible, trainer_class=Trainer
):
    """Why the training steps cannot be graphed here; empty when they can."""
    if not wanted:
        return "turned off (cuda_graphs false)"
    if device_type != "cuda":
        return "no CUDA device"
    if precision.name == "fp16":  # the loss scaler reads its scale on the host at every step
        return "fp16 training scales its loss on the host"
    if processes > 1:  # gradient all-reduce across processes is not captured here
        return "several processes"
    if gpus_visible > 1:  # one process, several GPUs: the Trainer wraps the model in DataParallel
        return (
            f"one process sees {gpus_visible} GPUs (DataParallel); launch one process per GPU with "
            "torchrun, or pick one GPU with CUDA_VISIBLE_DEVICES"
        )
    missing = missing_trainer_internals(trainer_class)
    if missing:
        return f"this transformers' Trainer lacks {', '.join(missing)}"
    return ""


def graphs_refused_by(args):
    """What in a Trainer's own arguments the graphed step cannot do (empty when nothing): it runs
    one whole batch per optimizer step on one device, with no loss division or averaging across
    replicas."""
    if args.gradient_accumulation_steps > 1:
        return f"gradient accumulation ({args.gradient_accumulation_steps} steps)"
    if args.n_gpu > 1:
        return f"DataParallel over {args.n_gpu} GPUs"
    return ""


def attach(params, grads):
    """Point every trainable parameter's .grad at its static gradient buffer (the Trainer sets them
    to None)."""
    for param, grad in zip(params, grads):
        param.grad = grad


class StepGraph:
    """One captured forward+backward for one batch shape: copy a batch in, replay, read the loss."""

    def __init__(self, loss_fn, batch, *, params, grads, pool):
        self.inputs = {name: value.clone() for name, value in batch.items()}
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                attach(params, grads)
                loss_fn(self.inputs).backward()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        attach(params, grads)
        with torch.cuda.graph(self.graph, pool=pool):
            # backward then adds into the buffers in place, at fixed addresses
            torch._foreach_zero_(grads)
            loss = loss_fn(self.inputs)
            loss.backward()
        self.loss = loss.detach()

    def replay(self, batch, params, grads):
        for name, value in batch.items():
            self.inputs[name].copy_(value, non_blocking=True)
        attach(params, grads)
        self.graph.replay()
        return self.loss


class CudaGraphTrainer(Trainer):
    """A Trainer whose training steps replay a CUDA graph of forward and backward, one graph per
    batch shape.

    Batches of another size (an epoch's last, smaller one) and everything else the Trainer does
    (clipping, the optimizer, the schedule, logging, evaluation) run as they always do. Dropout
    draws fresh masks at every replay: the graph advances the CUDA generator's offset. Where its
    arguments ask for what a graphed step does not do (gradient accumulation, DataParallel), or
    capturing fails, training goes on eagerly and says why.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.step_graphs, self.graph_pool = {}, None
        self.graphs_off_because = graphs_refused_by(self.args)  # empty while graphs are in use
        if self.graphs_off_because:
            say(
                f"CUDA graphs off for {self.args.run_name}: {self.graphs_off_because}; this run "
                "trains eagerly"
            )
        self.trainable, self.static_grads = None, None  # made at the first graphed step
        self.parameter_count = self.model.num_parameters(exclude_embeddings=True)

    def floating_point_ops(self, inputs):
        # the Trainer's own counts the model's parameters again at every step: a millisecond of host
        # time
        return (
            6 * inputs["input_ids"].numel() * self.parameter_count if "input_ids" in inputs else 0
        )

    def graph_loss(self, model, batch):
        with self.compute_loss_context_manager():
            return self.compute_loss(model, batch)

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self.graphs_off_because:
            return super().training_step(model, inputs, num_items_in_batch)
        # what the Trainer's own step does first; a schedule-free optimizer needs its train mode
        # too
        model.train()
        if callable(getattr(self.optimizer, "train", None)):
            self.optimizer.train()
        inputs = self._prepare_inputs(inputs)
        rows = next(iter(inputs.values())).shape[0]
        if rows != self.args.per_device_train_batch_size:
            return super().training_step(model, inputs, num_items_in_batch)
        if self.static_grads is None:
            self.trainable = [p for p in model.parameters() if p.requires_grad]
            self.static_grads = [torch.zeros_like(p) for p in self.trainable]
        shape = tuple((name, tuple(value.shape)) for name, value in sorted(inputs.items()))
        if shape not in self.step_graphs:
            try:
                self.step_graphs[shape] = StepGraph(
                    lambda batch: self.graph_loss(model, batch),
                    inputs,
                    params=self.trainable,
                    grads=self.static_grads,
                    pool=self.graph_pool,
                )
            except RuntimeError as err:
                self.graphs_off_because = str(err).splitlines()[0][:200]
                for param in self.trainable:
                    param.grad = None
                say(
                    f"CUDA graph capture failed ({self.graphs_off_because}): this run goes on "
                    "without graphs"
                )
                return super().training_step(model, inputs, num_items_in_batch)
            self.graph_pool = self.graph_pool or self.step_graphs[shape].graph.pool()
        return self.step_graphs[shape].replay(inputs, self.trainable, self.static_grads)
