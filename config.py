"""The experiment's settings. Edit a value here, or override any of them for one run on the command
line under the same name: `python sst2_compare.py --subset_fraction 0.05 --epochs_full_finetune 3`.
`python sst2_compare.py --help` explains each one. The training values are the course notebook's;
the speed values are this project's fast path, each one field away from the notebook's behaviour."""

from dataclasses import dataclass
from typing import Literal, Optional


@dataclass
class Config:
    # model: a hub id, or a local folder (offline use)
    model_name: str = "distilbert-base-uncased"
    max_length: int = 128  # tokens; longer sentences are truncated
    allow_pickled_weights: bool = False  # .bin weights can run code as they load

    # training: the notebook's hyperparameters
    per_device_train_batch_size: int = 32
    per_device_eval_batch_size: int = 64
    epochs_head_only: float = 2
    epochs_full_finetune: float = 2
    learning_rate_head_only: float = 5e-4
    learning_rate_full_finetune: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06  # share of the steps with a linear warm-up
    select_best_epoch: bool = False  # choosing on validation flatters validation's score
    full_finetune_init: Literal["head_only", "pretrained"] = "head_only"  # the notebook's

    # data
    data_dir: Optional[str] = None  # None: GLUE SST-2 from the hub
    test_size: float = 0.1  # share of GLUE train held out as the re-split test set
    split: Literal["random", "grouped"] = "random"  # grouped: no test item is a training phrase
    subset_fraction: Optional[float] = None  # 0.05 for a quick look
    seed: int = 42
    external_test_file: Optional[str] = None  # labelled whole sentences outside GLUE

    # learning curve: the comparison at several training-set sizes, on the same evaluation sets
    train_sizes: Optional[str] = None  # e.g. "500,2000,10%,all"; unset: one run on all of train
    min_steps_head_only: int = 1000  # at a small size, epochs raised to reach this many steps
    min_steps_full_finetune: int = 150

    # statistics
    num_seeds: int = 1
    bootstrap_resamples: int = 10_000
    probe_reference: bool = True  # also fit the best linear probe on the frozen features

    # speed: the fast path
    cache_encoder_features: bool = True  # False: the encoder runs every head-only step
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    cuda_graphs: bool = True
    pad_to_multiple_of: int = 32  # tokens; 1 pads each batch to its longest, as the notebook
    feature_batch_size: int = 1024
    parallel: Literal["auto", "seeds", "data"] = "auto"  # under torchrun
    dataloader_num_workers: int = 0  # batches are tensor slices: 0 is fastest

    # output
    output_dir: str = "checkpoints_sst2"  # each run writes a new timestamped folder here
    save_models: bool = True
    verbose: bool = False  # also print the Trainer's log lines
    resume: Optional[str] = None  # a stopped run's folder, or latest
    report_to: Literal["none", "tensorboard", "mlflow", "wandb", "all"] = "none"
