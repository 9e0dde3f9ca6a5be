"""How much does fine-tuning the whole encoder buy over training only a classification head on a
frozen one?

GLUE SST-2, one model (distilbert-base-uncased by default), two runs on the same data:
  head-only:      the encoder frozen, only the classification head trained;
  full fine-tune: every weight trained.
Both are built by one helper, make_trainer, called once per run. The script loads SST-2, re-splits
its train set into train/test, tokenizes, trains both runs, scores them on GLUE validation, the
re-split test set and, if one is named, an external labelled test set, then prints metrics,
confusion matrices and the accuracy delta with its uncertainty. Run `python sst2_compare.py --help`
for every setting; defaults live in config.py.
"""

import sys
import time

from sst2kit import startup

# before the libraries below take seconds to load: config.py's errors in one line, --help at once
parse_config, PROCESS_STARTED = startup.begin(sys.argv[1:])

# isort: split

import torch
from transformers import Trainer, TrainingArguments

from sst2kit import console, processes, report, runtime
from sst2kit.batches import already_batched, tokenize_splits
from sst2kit.callbacks import (
    BestEpochRestored,
    EvaluationSchedule,
    epoch_metrics,
    evaluation_every,
)
from sst2kit.checks import check_costs, check_inputs
from sst2kit.comparison import RunHealth
from sst2kit.console import Stopwatch, say
from sst2kit.cuda_graphs import CudaGraphTrainer
from sst2kit.curve import cell_data, plan_curve
from sst2kit.data import Data, sst2_splits
from sst2kit.evaluation import evaluation_splits
from sst2kit.features import cached_features, encoder_replayed
from sst2kit.files import check_run_dir, save_model_whole
from sst2kit.health import advice, run_status
from sst2kit.metrics import predicted_labels
from sst2kit.models import load_checked_model, load_model, set_encoder_trainable
from sst2kit.names import FULL_FINETUNE, HEAD_ONLY
from sst2kit.probe import ProbeReference
from sst2kit.results import Results
from sst2kit.resume import data_fingerprint, load_stopped_run
from sst2kit.run_outcome import curves, predict, say_run_done, training_record
from sst2kit.settings import flags_given, seed_range
from sst2kit.trackers import guard_trackers, tracker_callbacks, trainer_report_to
from sst2kit.trainer_log import quiet_progress


def make_trainer(model, lr, epochs, run_name, *, data, cell, experiment):
    """The one place a TrainingArguments and a Trainer are built. data: a dataset per split (train,
    validation); cell: the seed (and training-set size) it trains."""
    cfg, name = experiment.cfg, f"{run_name}_{cell.name}"
    check_run_dir(experiment.run_dir)  # deleted mid-run? the Trainer would quietly make it anew
    args = training_arguments(cfg, lr, epochs, name=name, seed=cell.seed, experiment=experiment)
    trainer_class = CudaGraphTrainer if experiment.setup.cuda_graphs else Trainer
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=data["train"],
        eval_dataset=data["validation"],
        data_collator=already_batched,
        processing_class=experiment.tokenizer,
        compute_metrics=epoch_metrics,
        callbacks=[
            EvaluationSchedule(  # select_best_epoch chooses among every epoch
                evaluate_last_epoch=cfg.select_best_epoch,
                every=1 if cfg.select_best_epoch else evaluation_every(epochs),
            ),
            *([BestEpochRestored()] if cfg.select_best_epoch else []),
            *tracker_callbacks(cfg.report_to, experiment.run_dir, name),
        ],
    )
    guard_trackers(trainer)  # a tracker that fails mid-run costs the tracker, not the run
    # progress bars stay; the log lines (loss, learning rate, epoch metrics) go to the run folder
    return quiet_progress(trainer, experiment.run_dir / "trainer_log.jsonl", echo=cfg.verbose)


def run(cfg, given=()):
    """The experiment, top to bottom (given: the settings typed as flags). Returns its folder."""
    stopwatch = Stopwatch(PROCESS_STARTED)  # every second of the process, each in one stage
    setup = runtime.start(cfg)  # processes, device, precision, CUDA graphs: decided once
    with stopwatch("input checks"), processes.agreeing():  # a bad input in any process stops all
        cfg, stopped = load_stopped_run(cfg, given=given)  # --resume's run (or None), its settings
        check_inputs(cfg)  # the config, the output folder, the data and model files, hub, trackers
    with stopwatch("model"), processes.agreeing():
        checked = load_checked_model(cfg)  # the model and its tokenizer, loaded once
    with stopwatch("data"), processes.agreeing():  # SST-2 re-split, tokenized, its splits described
        data = load_data(cfg, checked.tokenizer, setup)
    with stopwatch("setup"), processes.agreeing():  # the run folder, a stopped run's seeds kept
        results = Results.start(cfg, setup, checked, stopped=stopped, data=data)
        report.print_setup(results)
    with stopwatch("features"):  # the frozen encoder's output, the same in every seed
        features = cached_features(cfg, checked.model, data.batches, setup=setup)
    probe = ProbeReference.start(cfg, features, data.plan)  # on the CPU, beside a GPU's training
    with results.rescued_on_write_error():  # finished seeds kept elsewhere if the folder fails
        for turn in processes.turns(results.cells_to_train, setup.parallel, stopwatch):
            with stopwatch(turn.cell.name), turn:  # a seed's two runs (at one size, on a curve)
                turn.result = both_runs(
                    turn.cell, results.experiment, checked, data=(features, data.batches)
                )
            for cell, (probs, trained) in turn.gathered():  # on the main process, in cell order
                with stopwatch("waiting for the probe"):  # fitted while the first seed trained
                    probs.update(probe.outcome(cell, features))
                with stopwatch("statistics"):  # the cell compared; the answer over seeds again
                    results.add(cell, trained, probs)
                with stopwatch("files"):  # every file rewritten with every seed so far
                    results.save(probe.fit, stopwatch.total())
                    report.write(results)  # report.md and the figures
    if processes.is_main():
        with stopwatch("report"):  # seeds restored without the probe get it first
            results.add_reference(probe, features, stopwatch.total())
            report.print_metrics(results)
            report.print_confusion_matrices(results)
            report.print_delta(results)  # its interval, the verdict, the flips; a curve's sizes
            report.save(results)  # report.md and the figures, the answer to the trackers
        say(f"total wall time {results.finish(stopwatch.total()):.1f}s")  # in results.json too
    return results.run_dir


def load_data(cfg, tokenizer, setup):
    """GLUE train re-split into train/test, GLUE validation as it is, an external test set if one
    is named; tokenized; each evaluation split described (labels, independent units, lengths,
    leakage, parts), in batch order. With train_sizes, the learning curve's plan, and only the
    training rows some size uses are kept. Returns them as Data."""
    say("=== data ===")
    frames, corpus = sst2_splits(cfg)
    whole_train = frames["train"]  # what --resume compares: the data, whichever rows are used
    plan = plan_curve(
        cfg,
        frames["train"]["label"].to_numpy(),
        seeds=seed_range(cfg),
        processes=setup.data_parallel_processes,
    )
    if plan and plan.pool is not None:  # the rest would be tokenized and encoded for nothing
        frames["train"] = frames["train"].iloc[plan.pool].reset_index(drop=True)
    pad = cfg.pad_to_multiple_of if setup.cuda_graphs else 1  # CUDA graphs replay one shape
    frames, batches = tokenize_splits(
        frames, tokenizer, max_length=cfg.max_length, train_pad_multiple=pad
    )
    eval_splits = evaluation_splits(frames, batches, corpus)
    check_costs(
        cfg,
        eval_splits,
        train_rows=len(frames["train"]),
        processes=setup.data_parallel_processes,
    )
    fingerprint = data_fingerprint({**frames, "train": whole_train})
    return Data(frames, batches, eval_splits, plan, fingerprint)


def both_runs(cell, experiment, checked, *, data):
    """One cell's two runs on the same data: the head-only run on the frozen encoder (its head
    trained on the cached features where there are some), then the full fine-tune. checked: the
    model as the input checks loaded it; data: the cached features (or None) and the tokenized
    batches, of which the cell trains on its own training subset. Returns each run's P(positive)
    per evaluation split, and each run's Training."""
    cfg, (features, batches), probs, trained = experiment.cfg, cell_data(cell, *data), {}, {}
    # the weights were read once, by the input checks, for the first cell; every other cell draws a
    # new head
    model = checked.model if cell.first else fresh_model(cfg, cell.seed, checked)
    say(f"\n=== head-only ({cell}) ===")
    counts = set_encoder_trainable(model, False)
    say(f"{counts[0]:,} trainable parameters (the head), {counts[1]:,} frozen")
    lr, epochs, head_data = cfg.learning_rate_head_only, cell.epochs[HEAD_ONLY], features or batches
    with encoder_replayed(model, enabled=features is not None):
        trainer = make_trainer(
            model, lr, epochs, HEAD_ONLY, data=head_data, cell=cell, experiment=experiment
        )
        probs[HEAD_ONLY], trained[HEAD_ONLY] = train_one(
            trainer, HEAD_ONLY, data=head_data, parameter_counts=counts, cell=cell, cfg=cfg
        )
    save_model(trainer, experiment)  # after the run: the model is whole again, its encoder back

    pretrained = cfg.full_finetune_init == "pretrained"
    start = "a pretrained model" if pretrained else "the trained head-only model"
    say(f"\n=== full fine-tune ({cell}), from {start} ===")
    model = fresh_model(cfg, cell.seed, checked) if pretrained else model
    counts = set_encoder_trainable(model, True)
    lr, epochs = cfg.learning_rate_full_finetune, cell.epochs[FULL_FINETUNE]
    trainer = make_trainer(
        model, lr, epochs, FULL_FINETUNE, data=batches, cell=cell, experiment=experiment
    )
    probs[FULL_FINETUNE], trained[FULL_FINETUNE] = train_one(
        trainer, FULL_FINETUNE, data=batches, parameter_counts=counts, cell=cell, cfg=cfg
    )
    save_model(trainer, experiment)
    return probs, trained


def fresh_model(cfg, seed, checked):
    """The pretrained model again, with a new head drawn for this seed, from the weights checked."""
    return load_model(cfg, seed, weights_as_checked=checked.weights_signature)[0]


def save_model(trainer, experiment):
    if experiment.cfg.save_models:
        save_model_whole(trainer, experiment.run_dir / trainer.args.run_name)


def train_one(trainer, run, *, data, parameter_counts, cell, cfg):
    """Train, then one prediction pass per evaluation split, then the run's health judged on the
    weights scored. Returns P(positive) per split, and the run's Training."""
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    trained = training_record(
        trainer, run, parameter_counts=parameter_counts, seconds=seconds, cfg=cfg
    )
    probs, validation = predict(trainer, run, data=data, trained=trained, cfg=cfg)
    status, why, remedy = run_status(
        trainer.state.log_history,
        labels=validation.label_ids,
        answers=predicted_labels(probs["validation"]),
        selected_epoch=trained.selected_epoch,
    )
    trained.health = RunHealth(status, why, advice(remedy, run, cfg) if status != "ok" else "")
    trained.history = curves(trainer.state.log_history)
    say_run_done(run, trained, cell=cell, validation_accuracy=validation.metrics["test_accuracy"])
    return probs, trained


def training_arguments(cfg, lr, epochs, *, name, seed, experiment):
    on_gpu = torch.cuda.is_available()
    return TrainingArguments(
        output_dir=str(experiment.run_dir),  # nothing written there by the Trainer: no checkpoints
        run_name=name,
        seed=seed,
        learning_rate=lr,
        num_train_epochs=epochs,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=cfg.per_device_eval_batch_size,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float below 1 is a share of all steps
        eval_strategy="epoch",  # validation accuracy per epoch, for the curves
        eval_on_start=True,  # and where each run starts from
        save_strategy="no",  # the final weights are saved once, by the caller
        logging_steps=0.025,  # a share of all steps: 40 points on the loss curve
        # the filter reads the loss back every step (a GPU sync per step); the divergence check
        # needs the non-finite losses it would hide
        logging_nan_inf_filter=False,
        remove_unused_columns=False,  # batches arrive whole from the dataset's __getitems__
        dataloader_num_workers=cfg.dataloader_num_workers,
        dataloader_persistent_workers=cfg.dataloader_num_workers > 0,
        dataloader_pin_memory=on_gpu,
        accelerator_config={"non_blocking": on_gpu},  # pinned batches copied while the GPU works
        ddp_find_unused_parameters=False,  # frozen weights are simply not registered with DDP
        report_to=trainer_report_to(cfg.report_to),  # TensorBoard's callback: make_trainer's
        use_cpu=not on_gpu,
        **experiment.setup.precision.trainer_flags,
    )


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    return startup.guarded(lambda: run(parse_config(argv), flags_given(argv)))


if __name__ == "__main__":
    console.leave(main())
