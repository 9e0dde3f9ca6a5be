"""Frozen-encoder features: the encoder's first-token states computed once, and a head trained on
them.

A frozen encoder gives the same output for the same sentence at every step and in every seed (its
dropout off), so the head-only run need not run it 3,790 times: one pass over every split, then the
head trains on the stored states through a stand-in encoder that hands them over.
"""

import time
from contextlib import contextmanager

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers.modeling_outputs import BaseModelOutputWithPooling

from sst2kit.console import say


class ReplayEncoder(torch.nn.Module):
    """Stands in for the frozen encoder: hands the head the encoder outputs computed once
    beforehand.

    The cached first-token states arrive as `inputs_embeds` of shape (batch, 1, hidden); heads that
    read the first token (DistilBERT, RoBERTa) or the pooler (BERT, which pools the first token) see
    what the real encoder in eval mode would have given them.
    """

    def __init__(self, encoder):
        super().__init__()
        self.pooler = getattr(encoder, "pooler", None)

    def forward(self, *args, inputs_embeds=None, **kwargs):
        pooled = self.pooler(inputs_embeds) if self.pooler is not None else None
        return BaseModelOutputWithPooling(last_hidden_state=inputs_embeds, pooler_output=pooled)


@contextmanager
def encoder_replayed(model, enabled=True):
    """The model with its encoder swapped for a ReplayEncoder; the real one is back in place
    afterwards."""
    if not enabled:
        yield model
        return
    encoder = model.base_model
    setattr(model, model.base_model_prefix, ReplayEncoder(encoder))
    try:
        yield model
    finally:
        setattr(model, model.base_model_prefix, encoder)


class FirstTokenStates(torch.utils.data.Dataset):
    """A split's stored first-token states and labels; a batch is fetched whole with one
    `__getitems__` call."""

    def __init__(self, states, labels):
        self.states, self.labels = states, torch.as_tensor(labels)

    def __len__(self):
        return len(self.labels)

    def subset(self, rows):
        rows = torch.as_tensor(rows, dtype=torch.long)
        return FirstTokenStates(self.states[rows], self.labels[rows])

    def __getitems__(self, rows):
        rows = torch.as_tensor(rows, dtype=torch.long)
        return {"inputs_embeds": self.states[rows, None], "labels": self.labels[rows]}


def on_device(batch, device):
    return {name: value.to(device) for name, value in batch.items() if name != "labels"}


@torch.inference_mode()
def first_token_states(model, batches, *, batch_size, autocast_dtype, desc="encoder features"):
    """The frozen encoder's last-layer first-token state for every row, in one pass without dropout.
    Batches are formed in length order so little is padding."""
    encoder = model.base_model.eval()
    batches = batches.padded_to_multiple_of(1)  # one pass, no graphs: pad to each batch's longest
    order = np.argsort(batches.lengths.numpy(), kind="stable")
    states = torch.empty(len(order), model.config.hidden_size)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", leave=False):
        rows = order[start : start + batch_size]
        with torch.autocast(
            model.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None
        ):
            first = encoder(
                **on_device(batches.__getitems__(rows), model.device)
            ).last_hidden_state[:, 0]
        states[torch.as_tensor(rows)] = first.float().cpu()
    return states


@torch.inference_mode()
def replay_is_faithful(model, batches):
    """Does the head on replayed first-token states give the real model's logits? (Not for
    last-token heads, such as GPT-2's, which may also fail outright on the stand-in: that is a no as
    well.)"""
    batch = on_device(batches.__getitems__(list(range(min(8, len(batches))))), model.device)
    model.eval()
    real = model(**batch).logits
    states = model.base_model(**batch).last_hidden_state[:, :1]
    try:
        with encoder_replayed(model):
            replayed = model(inputs_embeds=states).logits
    except Exception:  # noqa: BLE001 - any failure of a head on the stand-in means: do not replay
        return False
    return replayed.shape == real.shape and torch.allclose(real, replayed, rtol=1e-3, atol=1e-4)


def cached_features(cfg, model, batches, *, setup):
    """The frozen encoder's features when cache_encoder_features is on (None otherwise), on the
    run's device."""
    if not cfg.cache_encoder_features:
        return None
    return encoder_features(
        model.to(setup.torch_device),
        batches,
        batch_size=cfg.feature_batch_size,
        autocast_dtype=setup.precision.autocast_dtype,
    )


def encoder_features(model, batches, *, batch_size, autocast_dtype):
    """Every split's first-token states from the pretrained encoder, the same for every seed, and a
    line saying so; None when this architecture's head reads more than the first token (the encoder
    then runs at every head-only step)."""
    started = time.perf_counter()
    if not replay_is_faithful(model, batches["validation"]):
        say(
            "this model's head reads more than the first token: the encoder runs at every "
            "head-only step instead"
        )
        return None
    features = {
        split: FirstTokenStates(
            first_token_states(
                model,
                rows,
                batch_size=batch_size,
                autocast_dtype=autocast_dtype,
                desc=f"encoder features {split}",
            ),
            rows.labels,
        )
        for split, rows in batches.items()
    }
    say(
        f"frozen-encoder features computed once, in {time.perf_counter() - started:.1f}s; the "
        "encoder's dropout is off in them (the notebook ran it with dropout on at every step)"
    )
    return features
