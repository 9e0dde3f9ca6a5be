"""Every knob of the experiment, with the original notebook's defaults.

Edit the defaults here, or override any field for one run on the command line with the
same name: `python sst2_compare.py --subset_fraction 0.05 --epochs_full_finetune 3`.
"""
from dataclasses import dataclass, field
from typing import Literal, Optional


@dataclass
class Config:
    # model: a hub id, or a local folder (offline use)
    model_name: str = field(default="distilbert-base-uncased", metadata={"help": "hub id or local model folder"})
    num_labels: int = field(default=2, metadata={"help": "negative and positive"})
    max_length: int = field(default=128, metadata={"help": "tokens; longer sentences are truncated"})
    allow_pickled_weights: bool = field(
        default=False, metadata={"help": "load a local model that has only pickled (.bin) weights, which can run code"}
    )

    # training: the notebook's hyperparameters
    per_device_train_batch_size: int = field(default=32, metadata={"help": "examples per step and device"})
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "examples per prediction batch"})
    epochs_headonly_finetune: float = field(default=2, metadata={"help": "passes over train, head-only run"})
    epochs_full_finetune: float = field(default=2, metadata={"help": "passes over train, full fine-tune"})
    learning_rate_headonly_finetune: float = field(default=5e-4, metadata={"help": "peak AdamW learning rate"})
    learning_rate_full_finetune: float = field(default=2e-5, metadata={"help": "peak AdamW learning rate"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    warmup_ratio: float = field(default=0.06, metadata={"help": "share of the steps with a linear warm-up"})
    full_finetune_init: Literal["headonly", "pretrained"] = field(
        default="headonly",
        metadata={"help": "headonly: continue from the trained head-only model (the notebook); "
                  "pretrained: from a fresh pretrained model"},
    )

    # data
    data_dir: Optional[str] = field(
        default=None, metadata={"help": "folder with train and validation files (parquet/csv/tsv/jsonl); unset: hub"}
    )
    test_size: float = field(default=0.1, metadata={"help": "share of GLUE train held out as the test set"})
    split: Literal["random", "grouped"] = field(
        default="random",
        metadata={"help": "random: the notebook's split; grouped: no test item is a phrase of a training item"},
    )
    subset_fraction: Optional[float] = field(
        default=None, metadata={"help": "keep this seeded share of each split (quick runs)"}
    )
    seed: int = field(default=42, metadata={"help": "the split, subsets, head initialisation, data order"})

    # statistics
    num_seeds: int = field(default=1, metadata={"help": "repeat both runs for seeds seed, seed+1, ..."})
    bootstrap_resamples: int = field(default=10_000, metadata={"help": "for the 95%% interval of the accuracy delta"})

    # speed: the defaults are the fast path; the notebook's behaviour is one field away
    cache_encoder_features: bool = field(
        default=True,
        metadata={"help": "head-only trains on encoder features computed once (a linear probe, encoder dropout off); "
                  "False: the encoder runs every step with its dropout on, as in the notebook"},
    )
    precision: Literal["auto", "fp32", "bf16"] = field(
        default="auto",
        metadata={"help": "auto: float32 weights with TF32 matmuls on an Ampere+ GPU, else fp32; "
                  "bf16: autocast (pays off only when arithmetic, not launches, dominates)"},
    )
    feature_batch_size: int = field(
        default=1024, metadata={"help": "batch of the one feature pass (no gradients, so larger is faster)"}
    )
    dataloader_num_workers: int = field(
        default=0, metadata={"help": "processes that collate batches; measured on an H200, 2 made steps slower"}
    )

    # output
    output_dir: str = field(
        default="checkpoints_sst2", metadata={"help": "each run writes a new timestamped folder here"}
    )
    save_models: bool = field(default=True, metadata={"help": "keep each run's final model (one per run)"})
