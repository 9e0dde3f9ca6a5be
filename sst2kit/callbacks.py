"""What the Trainer does around each evaluation: when validation runs, what it measures, and
(select_best_epoch) which epoch's weights a run ends with."""

import math

import torch
from transformers import TrainerCallback

from sst2kit.metrics import classification_metrics

MAX_EVALUATIONS = 10  # validation passes a run's curve gets, whatever its epochs


def evaluation_every(epochs):
    """Every how many epochs a run of this many is scored on validation."""
    return max(1, math.ceil(epochs / MAX_EVALUATIONS))


class EvaluationSchedule(TrainerCallback):
    """Validation where the curves need it, without changing the training:

    - at the start, its random-number state put back afterwards: the evaluation's data loader draws
    from torch's
      generator, and every later dropout draw would shift (the notebook, which has no such
      evaluation, and the notebook mode then trained differently);
    - every `every` epochs only, where a run has many (at most about MAX_EVALUATIONS passes);
    - not after the last epoch: that would score the final weights, which the prediction pass scores
    next and
      which gives the curve's last point instead, so validation is scored once (unless
      select_best_epoch needs the last epoch's loss to choose)."""

    def __init__(self, *, evaluate_last_epoch=False, every=1):
        self.generator_state = None
        # select_best_epoch needs the last epoch's loss too
        self.evaluate_last_epoch = evaluate_last_epoch
        # a small training set raised to many epochs (a learning curve) is scored every few epochs:
        # 19 validation passes in a 150-step run would cost more than its training on a CPU
        self.every = every

    def on_train_begin(self, args, state, control, **kwargs):
        self.generator_state = torch.random.get_rng_state()

    def on_evaluate(self, args, state, control, **kwargs):
        if state.global_step == 0 and self.generator_state is not None:
            torch.random.set_rng_state(self.generator_state)
            self.generator_state = None

    def on_epoch_end(self, args, state, control, **kwargs):
        last = state.global_step >= state.max_steps
        if (last and not self.evaluate_last_epoch) or (
            not last and round(state.epoch) % self.every
        ):
            control.should_evaluate = False


class BestEpochRestored(TrainerCallback):
    """select_best_epoch: the notebook's load_best_model_at_end, without its checkpoints on disk.
    After each epoch's evaluation the trained weights (the frozen ones cannot change) with the
    lowest validation loss so far are copied on their device; when training ends they are copied
    back in place (CUDA graphs keep pointing at the same tensors). The evaluation at the start is
    not a candidate: the notebook saved a checkpoint only at each epoch's end; on a tie the earlier
    epoch stays, as there."""

    def __init__(self):
        self.best_loss, self.best_epoch, self.best_weights = math.inf, None, None

    def on_evaluate(self, args, state, control, *, metrics=None, model=None, **kwargs):
        if state.global_step == 0 or metrics["eval_loss"] >= self.best_loss:
            return
        self.best_loss, self.best_epoch = metrics["eval_loss"], state.epoch
        self.best_weights = {
            name: weight.detach().clone()
            for name, weight in model.named_parameters()
            if weight.requires_grad
        }

    def on_train_end(self, args, state, control, *, model=None, **kwargs):
        if self.best_weights is not None:
            with torch.no_grad():
                for name, weight in model.named_parameters():
                    if name in self.best_weights:
                        weight.copy_(self.best_weights[name])
            self.best_weights = None  # the copy's memory back before the next run


def epoch_metrics(prediction):
    predicted = prediction.predictions.argmax(-1)
    metrics = classification_metrics(prediction.label_ids, predicted)
    # the share answered positive: a run whose answers collapse to one class is told from one that
    # learned
    return {
        "accuracy": metrics.accuracy,
        "f1": metrics.f1,
        "macro_f1": metrics.macro_f1,
        "positive_share": float(predicted.mean()),
    }
