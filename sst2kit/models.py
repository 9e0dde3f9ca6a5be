"""The pretrained encoder with a new two-label head and its tokenizer, each loaded and checked in
one call; freezing."""

import hashlib
from pathlib import Path
from typing import NamedTuple

import torch
from huggingface_hub import constants as hub_constants
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, set_seed
from transformers.utils import logging as hf_logging

from sst2kit.errors import UsageError
from sst2kit.names import LABEL_NAMES

# A loader can raise anything for a malformed folder (a config value of the wrong type, an unknown
# activation, a pickle that is not a state dict): every failure while loading is the folder's fault,
# reported in one line.
LOAD_ERRORS = (Exception,)


def model_not_found(cfg, err):
    cause = (str(err).splitlines() or [""])[0][:160] or type(err).__name__
    if Path(cfg.model_name).expanduser().is_dir():
        return UsageError(f"cannot load model {cfg.model_name!r} ({type(err).__name__}: {cause})")
    if hub_constants.HF_HUB_OFFLINE:
        return UsageError(
            f"model_name {cfg.model_name}: no such folder, and the hub was not tried "
            "(HF_HUB_OFFLINE=1): check the path, or fetch the model as the README says"
        )
    return UsageError(
        f"model_name {cfg.model_name}: no such folder, and the hub, tried, has no model of that "
        f"name ({type(err).__name__}: {cause}): check the path or the hub id"
    )


def load_tokenizer(cfg, model_config=None):
    """The model's own tokenizer (checked against model_config, read here when not given); a
    stand-in with a near-empty vocabulary would turn every word into [UNK]."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(cfg.model_name, trust_remote_code=False)
        model_config = model_config or AutoConfig.from_pretrained(
            cfg.model_name, trust_remote_code=False
        )
        vocab_size = model_config.vocab_size
    except LOAD_ERRORS as err:
        raise model_not_found(cfg, err) from None
    # decoders (GPT-2) have none: batches pad with the end-of-text token
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if tokenizer.pad_token_id is None:
        raise UsageError(
            f"{cfg.model_name}: its tokenizer has no padding, end-of-text or unknown token to pad "
            "batches with: set pad_token in its tokenizer_config.json"
        )
    if not vocab_size // 2 <= len(tokenizer) <= vocab_size:
        raise UsageError(
            f"{cfg.model_name}: its tokenizer has {len(tokenizer):,} tokens but the model's "
            "vocabulary "
            f"{vocab_size:,}: the tokenizer files are missing or belong to another model; copy the "
            "model's own tokenizer files into the folder"
        )
    return tokenizer


WEIGHT_FILES = ("*.safetensors", "*.bin", "*.pt", "*.pth")


def weights_signature(model_name):
    """Name, size and modification time of a local model folder's weight files (None for a hub id:
    its cache is not rewritten in place). A later seed reloads the weights: they must be the ones
    the checks read."""
    folder = Path(model_name).expanduser()
    if not folder.is_dir():
        return None
    return sorted(
        (path.name, path.stat().st_size, path.stat().st_mtime_ns)
        for pattern in WEIGHT_FILES
        for path in folder.glob(pattern)
    )


def load_model(cfg, seed, *, weights_as_checked=None):
    """The pretrained encoder with a new two-label head, in float32; seeded so the head's
    initialisation repeats. A checkpoint that already has a head of another size gets a fresh
    two-label one. Returns the model and the names of the tensors that were newly initialised (only
    the head's: anything else is refused).

    weights_as_checked: the weights_signature the input checks saw; a reload after the files changed
    is refused (another seed would train from other weights). The weights are copied into memory: a
    file that is memory- mapped and then rewritten in place would kill the process (SIGBUS) the next
    time a tensor is read."""
    if weights_as_checked is not None and weights_signature(cfg.model_name) != weights_as_checked:
        raise UsageError(
            f"{cfg.model_name}: its weight files changed on disk during the run, so the next seed "
            "would train from other weights than the first; the seeds already finished are kept: "
            "run again once the model folder stays as it is"
        )
    set_seed(seed)
    model, loading = pretrained_with_new_head(cfg)
    fresh = sorted({*loading["missing_keys"], *(key for key, *_ in loading["mismatched_keys"])})
    check_only_the_head_is_new(cfg, model, fresh=fresh, unexpected=loading["unexpected_keys"])
    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            # out of the memory-mapped file (shared tensors stay shared)
            tensor.data = tensor.data.clone()
    # a decoder's head finds each row's last token by the pad token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = model.config.eos_token_id
    broken = next(
        (name for name, tensor in model.named_parameters() if not torch.isfinite(tensor).all()),
        None,
    )
    if broken:
        raise UsageError(
            f"{cfg.model_name}: its weights hold values that are not finite numbers (NaN or "
            f"infinity) in {broken}: the checkpoint is damaged; download or save it again"
        )
    return model, fresh


def pretrained_with_new_head(cfg):
    """from_pretrained with a two-label head, and its loading report (not printed: its list of the
    new head's tensors as missing would read as an error; the run says it plainly)."""
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            cfg.model_name,
            num_labels=len(LABEL_NAMES),
            id2label=dict(enumerate(LABEL_NAMES)),
            dtype=torch.float32,
            use_safetensors=None if cfg.allow_pickled_weights else True,
            trust_remote_code=False,
            ignore_mismatched_sizes=True,  # a head of another size is replaced
            output_loading_info=True,
        )
    except LOAD_ERRORS as err:
        raise model_not_found(cfg, err) from None
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()


def check_only_the_head_is_new(cfg, model, *, fresh, unexpected):
    """Every encoder tensor came from the weights: else config.json does not match them."""
    not_head = [key for key in fresh if key.startswith(f"{model.base_model_prefix}.")]
    unused = [key for key in unexpected if is_encoder_key(model, key)]
    if not_head or unused:
        what = (
            f"its encoder tensor {not_head[0]} is missing from the weights or has another shape"
            if not_head
            else f"the weights' encoder tensor {unused[0]} has no place in the model its config "
            "builds"
        )
        raise UsageError(
            f"{cfg.model_name}: {what} ({len(not_head) + len(unused)} such tensor(s)): config.json "
            "does not match the weights, and the encoder would train from random values; use the "
            "config that was saved with these weights"
        )


def is_encoder_key(model, key):
    """Does a checkpoint tensor's name belong to the encoder (stored with or without the encoder's
    prefix)? Other unused tensors, such as a masked-language-model head, are expected and
    dropped."""
    top = key.removeprefix(f"{model.base_model_prefix}.").split(".")[0]
    return top in dict(model.base_model.named_children())


def set_encoder_trainable(model, trainable):
    """Freeze or unfreeze the encoder of any *ForSequenceClassification; returns (trainable, frozen)
    counts."""
    for param in model.base_model.parameters():
        param.requires_grad = trainable
    counts = [
        sum(p.numel() for p in model.parameters() if p.requires_grad == flag)
        for flag in (True, False)
    ]
    return tuple(counts)


def looks_like_a_path(name):
    """A model name a person meant as a local path (a hub id is 'org/name' or 'name')."""
    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or "\\" in name


def check_model_path(cfg):
    """A local model path that is not there says so, rather than 'cannot reach the hub'."""
    path = Path(cfg.model_name).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(
            f"model_name {cfg.model_name} is a file: point it at the model's folder (with "
            "config.json, its weights and its tokenizer files)"
        )
    # 'models/x' where models/ is a folder here is a path, however it is written: never looked up on
    # the hub
    parent_is_here = len(path.parts) > 1 and Path(path.parts[0]).is_dir()
    if not path.exists() and (looks_like_a_path(cfg.model_name) or parent_is_here):
        raise UsageError(
            f"model_name {cfg.model_name}: no such folder (not looked up on the hub); check the "
            "path, or fetch the model as the README says"
        )
    if path.is_dir():
        missing = [
            what
            for what, there in (
                ("config.json", (path / "config.json").is_file()),
                (
                    "weights (*.safetensors or *.bin)",
                    any(path.glob("*.safetensors")) or any(path.glob("*.bin")),
                ),
            )
            if not there
        ]
        if missing:
            raise UsageError(
                f"model_name {cfg.model_name} is not a model folder: it has no "
                f"{' and no '.join(missing)}; point it at a saved model (such as "
                "models/minilm-l6-h384-uncased), or at a hub id"
            )


class CheckedModel(NamedTuple):
    """What the model check loaded, kept for the run: its weights and tokenizer are read once."""

    model: object  # seeded with cfg.seed: the first seed's model
    tokenizer: object
    # the names of the tensors its load initialised afresh (the classification head's)
    new_head_tensors: list
    # what the weight files were when read (weights_signature): a reload must match it
    weights_signature: object
    # a hash of the pretrained weights as loaded (the head aside): a resumed run trains from them
    weights_fingerprint: str


def load_checked_model(cfg):
    """The model and its tokenizer, loaded once and checked: the name leads to a folder or hub id (a
    wrong local path says so), to a config whose limits fit the run, to the model's own tokenizer,
    and to weights that are safe, whole and match that config. The model is seeded with cfg.seed:
    the first seed's."""
    check_model_path(cfg)
    folder = Path(cfg.model_name)
    if folder.is_dir() and not list(folder.glob("*.safetensors")) and not cfg.allow_pickled_weights:
        raise UsageError(
            f"{folder} has no .safetensors weights; pickled weights can run code when loaded: "
            "convert them, or pass --allow_pickled_weights true if you trust the source"
        )
    try:
        model_config = AutoConfig.from_pretrained(cfg.model_name, trust_remote_code=False)
    except LOAD_ERRORS as err:
        raise model_not_found(cfg, err) from None
    check_model_sizes(cfg, model_config)
    tokenizer = load_tokenizer(cfg, model_config)
    # corrupt, truncated, non-finite or mismatched weights are found now, not after the run folder
    # exists
    signature = weights_signature(cfg.model_name)
    model, fresh = load_model(cfg, cfg.seed)
    parameters = sum(p.numel() for p in model.parameters())
    if parameters > MAX_PARAMETERS:
        raise UsageError(
            f"{cfg.model_name} has {parameters:,} parameters, over this experiment's bound of "
            f"{MAX_PARAMETERS:,}: pick a smaller model"
        )
    return CheckedModel(model, tokenizer, fresh, signature, pretrained_fingerprint(model, fresh))


def pretrained_fingerprint(model, fresh):
    """A hash of every pretrained tensor as loaded (the newly drawn head's aside), the same on any
    machine for the same weights, wherever they were loaded from."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        if name not in fresh:
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


# Sane bounds on a model config's sizes: far above any encoder this experiment is for, far below
# what would take hours to build. A value outside them is a damaged or hand-edited config.json.
SIZE_BOUNDS = {
    "num_hidden_layers": 128,
    "n_layers": 128,
    "n_layer": 128,
    "hidden_size": 16_384,
    "dim": 16_384,
    "n_embd": 16_384,
    "intermediate_size": 65_536,
    "hidden_dim": 65_536,
    "num_attention_heads": 256,
    "n_heads": 256,
    "n_head": 256,
    "vocab_size": 1_000_000,
    "max_position_embeddings": 1_000_000,
    "n_positions": 1_000_000,
}
MAX_PARAMETERS = 2_000_000_000


def check_model_sizes(cfg, model_config):
    for name, bound in SIZE_BOUNDS.items():
        if name not in model_config.to_dict():
            continue
        value = getattr(model_config, name)
        if type(value) is not int or not 1 <= value <= bound:
            raise UsageError(
                f"{cfg.model_name}: config.json's {name} is {value!r}, not a whole number in "
                f"[1, {bound:,}]: the config is damaged; use the one saved with the weights"
            )
    limit = getattr(model_config, "max_position_embeddings", None)
    if limit is not None and cfg.max_length > limit:
        raise UsageError(
            f"max_length {cfg.max_length} exceeds what {cfg.model_name} supports ({limit}): lower "
            "it"
        )
