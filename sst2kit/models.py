"""The pretrained encoder with a new two-label head, its tokenizer, freezing, and the arithmetic precision."""
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import constants as hub_constants
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, set_seed
from transformers.utils import logging as hf_logging

from sst2kit.errors import UsageError
from sst2kit.names import LABEL_NAMES

# A loader can raise anything for a malformed folder (a config value of the wrong type, an unknown activation, a
# pickle that is not a state dict): every failure while loading is the folder's fault, reported in one line.
LOAD_ERRORS = (Exception,)


def model_not_found(cfg, err):
    offline = (" (offline: point --model_name at a local model folder)"
               if hub_constants.HF_HUB_OFFLINE and not Path(cfg.model_name).is_dir() else "")
    cause = (str(err).splitlines() or [""])[0][:160] or type(err).__name__
    return UsageError(f"cannot load model {cfg.model_name!r} ({type(err).__name__}: {cause}){offline}")


def load_tokenizer(cfg):
    """The model's own tokenizer; a stand-in with a near-empty vocabulary would turn every word into [UNK]."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(cfg.model_name, trust_remote_code=False)
        vocab_size = AutoConfig.from_pretrained(cfg.model_name, trust_remote_code=False).vocab_size
    except LOAD_ERRORS as err:
        raise model_not_found(cfg, err) from None
    if tokenizer.pad_token is None:  # decoders (GPT-2) have none: batches pad with the end-of-text token
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if tokenizer.pad_token_id is None:
        raise UsageError(f"{cfg.model_name}: its tokenizer has no padding, end-of-text or unknown token to pad "
                         "batches with: set pad_token in its tokenizer_config.json")
    if not vocab_size // 2 <= len(tokenizer) <= vocab_size:
        raise UsageError(f"{cfg.model_name}: its tokenizer has {len(tokenizer):,} tokens but the model's vocabulary "
                         f"{vocab_size:,}: the tokenizer files are missing or belong to another model; copy the "
                         "model's own tokenizer files into the folder")
    return tokenizer


def load_model(cfg, seed):
    """The pretrained encoder with a new two-label head, in float32; seeded so the head's initialisation repeats.
    A checkpoint that already has a head of another size gets a fresh two-label one. Returns the model and the
    names of the tensors that were newly initialised (only the head's: anything else is refused)."""
    set_seed(seed)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its load report lists the new head as missing: the run says it plainly
    hf_logging.disable_progress_bar()
    try:
        model, loading = AutoModelForSequenceClassification.from_pretrained(
            cfg.model_name, num_labels=len(LABEL_NAMES), id2label=dict(enumerate(LABEL_NAMES)), dtype=torch.float32,
            use_safetensors=None if cfg.allow_pickled_weights else True, trust_remote_code=False,
            ignore_mismatched_sizes=True, output_loading_info=True)  # a head of another size is replaced
    except LOAD_ERRORS as err:
        raise model_not_found(cfg, err) from None
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    fresh = sorted({*loading["missing_keys"], *(key for key, *_ in loading["mismatched_keys"])})
    not_head = [key for key in fresh if key.startswith(f"{model.base_model_prefix}.")]
    unused = [key for key in loading["unexpected_keys"] if is_encoder_key(model, key)]
    if not_head or unused:
        what = (f"its encoder tensor {not_head[0]} is missing from the weights or has another shape" if not_head
                else f"the weights' encoder tensor {unused[0]} has no place in the model its config builds")
        raise UsageError(f"{cfg.model_name}: {what} ({len(not_head) + len(unused)} such tensor(s)): config.json does "
                         "not match the weights, and the encoder would train from random values; use the config "
                         "that was saved with these weights")
    if model.config.pad_token_id is None:  # a decoder's head finds each row's last token by the pad token
        model.config.pad_token_id = model.config.eos_token_id
    broken = next((name for name, tensor in model.named_parameters() if not torch.isfinite(tensor).all()), None)
    if broken:
        raise UsageError(f"{cfg.model_name}: its weights hold values that are not finite numbers (NaN or "
                         f"infinity) in {broken}: the checkpoint is damaged; download or save it again")
    return model, fresh


def is_encoder_key(model, key):
    """Does a checkpoint tensor's name belong to the encoder (stored with or without the encoder's prefix)?
    Other unused tensors, such as a masked-language-model head, are expected and dropped."""
    top = key.removeprefix(f"{model.base_model_prefix}.").split(".")[0]
    return top in dict(model.base_model.named_children())


def set_encoder_trainable(model, trainable):
    """Freeze or unfreeze the encoder of any *ForSequenceClassification; returns (trainable, frozen) counts."""
    for param in model.base_model.parameters():
        param.requires_grad = trainable
    counts = [sum(p.numel() for p in model.parameters() if p.requires_grad == flag) for flag in (True, False)]
    return tuple(counts)


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

    auto: TF32 matmuls on float32 weights from Ampere (8.x) on: measured on an H200, bf16 autocast made a
    DistilBERT step of batch 32 slower, its casts costing more launches than the arithmetic they save. Volta and
    Turing (7.x: V100, Colab's T4) have fp16 tensor cores but no TF32 or bf16, and their steps are bound by
    arithmetic, so fp16 autocast there. Anything older, or a CPU: plain fp32.
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
    """Set the TF32 switches explicitly: a process's earlier runs must not decide them for this one."""
    torch.backends.cuda.matmul.allow_tf32 = precision.name == "tf32"
    torch.backends.cudnn.allow_tf32 = precision.name == "tf32"
