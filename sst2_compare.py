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

import functools
import gc
import math
import signal
import sys
import textwrap
import time

from sst2kit import startup

# before the libraries below take seconds to load: config.py's errors in one line, --help at once
parse_config, PROCESS_STARTED = startup.begin(sys.argv[1:])

# isort: split

import numpy as np
import torch
from transformers import Trainer, TrainingArguments

from sst2kit import console, plots, processes, report, runtime
from sst2kit.batches import already_batched, tokenize_splits
from sst2kit.callbacks import BestEpochRestored, EvaluationSchedule, epoch_metrics
from sst2kit.checks import check_costs, check_inputs
from sst2kit.comparison import compare_runs
from sst2kit.console import Stopwatch, say
from sst2kit.cuda_graphs import CudaGraphTrainer
from sst2kit.data import sst2_splits
from sst2kit.errors import Diverged, UsageError
from sst2kit.evaluation import evaluation_splits
from sst2kit.features import cached_features, encoder_replayed
from sst2kit.files import check_run_dir, new_run_dir, save_model_whole
from sst2kit.health import LOWER_STEP, STATUS_VERBS, advice, run_status
from sst2kit.models import load_checked_model, load_model, set_encoder_trainable
from sst2kit.names import RUN_TITLES, evaluated
from sst2kit.probe import ProbeReference
from sst2kit.results import Results
from sst2kit.resume import data_fingerprint, load_stopped_run
from sst2kit.runtime import Experiment
from sst2kit.trackers import guard_trackers, tracker_callbacks, trainer_report_to
from sst2kit.trainer_log import quiet_progress


def make_trainer(model, lr, epochs, run_name, *, data, seed, experiment):
    """The one place a TrainingArguments and a Trainer are built. data: a dataset per split (train,
    validation)."""
    cfg, name = experiment.cfg, f"{run_name}_seed{seed}"
    check_run_dir(experiment.run_dir)  # deleted mid-run? the Trainer would quietly make it anew
    args = training_arguments(cfg, lr, epochs, name, seed=seed, experiment=experiment)
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
            EvaluationSchedule(evaluate_last_epoch=cfg.select_best_epoch),
            *([BestEpochRestored()] if cfg.select_best_epoch else []),
            *tracker_callbacks(cfg.report_to, experiment.run_dir, name),
        ],
    )
    guard_trackers(trainer)  # a tracker that fails mid-run costs the tracker, not the run
    # progress bars stay; the log lines (loss, learning rate, epoch metrics) go to the run folder
    return quiet_progress(trainer, experiment.run_dir / "trainer_log.jsonl", echo=cfg.verbose)


def training_arguments(cfg, lr, epochs, name, *, seed, experiment):
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


def both_runs(experiment, checked, features, batches, seed):
    """One seed's two runs on the same data: the head-only run on the frozen encoder (its head
    trained on the cached features where there are some), then the full fine-tune. Returns each
    run's P(positive) per evaluation split, and each run's record."""
    cfg, probs, records = experiment.cfg, {}, {}
    # the weights were read once, by the input checks, for the first seed; every other seed draws a
    # new head
    model = checked.model if seed == cfg.seed else fresh_model(cfg, seed, checked)
    say(f"\n=== head-only (seed {seed}) ===")
    counts = set_encoder_trainable(model, False)
    say(f"{counts[0]:,} trainable parameters (the head), {counts[1]:,} frozen")
    lr, epochs = cfg.learning_rate_head_only, cfg.epochs_head_only
    with encoder_replayed(model, enabled=features is not None):
        data = features or batches
        trainer = make_trainer(
            model, lr, epochs, "head_only", data=data, seed=seed, experiment=experiment
        )
        probs["head_only"], records["head_only"] = train_and_predict(
            trainer, data, counts, run="head_only", seed=seed, cfg=cfg
        )
    save_model(trainer, experiment)  # after the run: the model is whole again, its encoder back

    start = (
        "the trained head-only model"
        if cfg.full_finetune_init == "head_only"
        else "a pretrained model"
    )
    say(f"\n=== full fine-tune (seed {seed}), from {start} ===")
    if cfg.full_finetune_init == "pretrained":
        model = fresh_model(cfg, seed, checked)
    counts = set_encoder_trainable(model, True)
    lr, epochs = cfg.learning_rate_full_finetune, cfg.epochs_full_finetune
    trainer = make_trainer(
        model, lr, epochs, "full_finetune", data=batches, seed=seed, experiment=experiment
    )
    probs["full_finetune"], records["full_finetune"] = train_and_predict(
        trainer, batches, counts, run="full_finetune", seed=seed, cfg=cfg
    )
    save_model(trainer, experiment)
    return probs, records


def fresh_model(cfg, seed, checked):
    """The pretrained model again, with a new head drawn for this seed, from the weights checked."""
    return load_model(cfg, seed, weights_as_checked=checked.weights_signature)[0]


def save_model(trainer, experiment):
    if experiment.cfg.save_models:
        save_model_whole(trainer, experiment.run_dir / trainer.args.run_name)


def train_and_predict(trainer, data, parameter_counts, *, run, seed, cfg):
    """Train, then one prediction pass per evaluation split, then the run's health judged on the
    weights scored. Returns P(positive) per split, and the run's record."""
    record = train(trainer, parameter_counts, run=run, cfg=cfg)
    probs, predicted = predict(trainer, data, record, run=run, cfg=cfg)
    validation = predicted["validation"]
    record.update(
        judge_health(
            trainer.state.log_history,
            validation,
            probs["validation"],
            run=run,
            selected_epoch=record.get("selected_epoch"),
            cfg=cfg,
        )
    )
    say_run_done(run, seed, record, validation.metrics["test_accuracy"])
    record["history"] = curves(trainer.state.log_history)
    return probs, record


def say_run_done(run, seed, record, validation_accuracy):
    """The run's one line, and a warning naming what broke and the flags to change."""
    selected = record.get("selected_epoch")
    say(
        f"{RUN_TITLES[run]} (seed {seed}) done: validation accuracy {validation_accuracy:.4f} "
        f"after {record['steps']:,} steps ({record['train_seconds']:.1f}s training, "
        f"{record['predict_seconds']:.1f}s predicting)"
        + (
            f"; weights of epoch {selected:g}, its lowest validation loss (select_best_epoch)"
            if selected
            else ""
        )
    )
    if record["status"] != "ok":
        warning = (
            f"warning: the {RUN_TITLES[run]} run (seed {seed}) {STATUS_VERBS[record['status']]}: "
            f"{record['status_why']}. No finding is drawn from it; {record['status_advice']}."
        )
        say(textwrap.fill(warning, report.WIDTH, subsequent_indent="    "))


def curves(log_history):
    """The training loss and the validation loss and accuracy, as [epoch, value] points."""
    logged = (
        ("train_loss", "loss"),
        ("eval_loss", "eval_loss"),
        ("eval_accuracy", "eval_accuracy"),
    )
    return {curve: [[e["epoch"], e[key]] for e in log_history if key in e] for curve, key in logged}


def train(trainer, parameter_counts, *, run, cfg):
    """The Trainer's training loop; a loss that stops being a number ends the run here (nothing can
    be scored)."""
    started = time.perf_counter()
    trainer.train()
    record = {
        "trainable_parameters": parameter_counts[0],
        "frozen_parameters": parameter_counts[1],
        "train_seconds": time.perf_counter() - started,
        "steps": trainer.state.global_step,
    }
    broken = next(
        (e for e in trainer.state.log_history if "loss" in e and not math.isfinite(e["loss"])), None
    )
    if broken:
        raise Diverged(
            f"the {RUN_TITLES[run]} run diverged: its training loss was {broken['loss']} by step "
            f"{broken['step']}; {run_advice(LOWER_STEP, run, cfg)}"
        )
    best = next(
        (
            callback
            for callback in trainer.callback_handler.callbacks
            if isinstance(callback, BestEpochRestored)
        ),
        None,
    )
    if best:  # the weights scored are those of the selected epoch
        record["selected_epoch"] = best.best_epoch
    return record


def predict(trainer, data, record, *, run, cfg):
    """P(positive) per evaluation split from the weights the run ends with, and the Trainer's
    prediction output."""
    started = time.perf_counter()
    predicted = {split: trainer.predict(data[split]) for split in evaluated(data)}
    probs = {
        split: torch.as_tensor(p.predictions).float().softmax(-1)[:, 1].numpy()
        for split, p in predicted.items()
    }
    if not all(np.isfinite(p).all() for p in probs.values()):
        raise Diverged(
            f"the {RUN_TITLES[run]} run diverged: its predictions are not finite numbers; "
            f"{run_advice(LOWER_STEP, run, cfg)}"
        )
    # the final weights' validation score is the curve's last point
    if "selected_epoch" not in record:
        trainer.state.log_history.append(
            {
                "epoch": trainer.state.epoch,
                "eval_loss": predicted["validation"].metrics["test_loss"],
                "eval_accuracy": predicted["validation"].metrics["test_accuracy"],
            }
        )
    record["predict_seconds"] = time.perf_counter() - started
    return probs, predicted


def judge_health(log_history, validation, validation_probs, *, run, selected_epoch, cfg):
    """The run's status on the weights scored, why, and the exact flags to change when it is
    broken."""
    status, why, remedy = run_status(
        log_history,
        labels=validation.label_ids,
        answers=(validation_probs > 0.5).astype(int),
        selected_epoch=selected_epoch,
    )
    fix = run_advice(remedy, run, cfg) if status != "ok" else ""
    return {"status": status, "status_why": why, "status_advice": fix}


def run_advice(remedy, run, cfg):
    return advice(
        remedy,
        run=run,
        learning_rate=getattr(cfg, f"learning_rate_{run}"),
        epochs=getattr(cfg, f"epochs_{run}"),
        weight_decay=cfg.weight_decay,
    )


def run(cfg):
    """The experiment, top to bottom. Returns the run folder."""
    stopwatch = Stopwatch(PROCESS_STARTED)  # every second from the process's start, in one stage
    timed = stopwatch.timed  # timed(stage, work, *args): work(*args), its seconds under stage
    setup = runtime.start(cfg)  # processes, device, precision, CUDA graphs: decided once
    with processes.agreeing():  # a bad input any process finds stops them all, said once
        # the config, the output folder, the data and external files, the hub, the trackers
        timed("input checks", check_inputs, cfg)
        stopped = timed("input checks", load_stopped_run, cfg)  # --resume's run, or None
        checked = timed("model", load_checked_model, cfg)  # model and tokenizer, loaded once

    say("=== data ===")
    with stopwatch("data"), processes.agreeing():
        # GLUE train re-split into train/test; GLUE validation as it is; an external test set
        frames, corpus = sst2_splits(cfg)
        pad = cfg.pad_to_multiple_of if setup.cuda_graphs else 1
        frames, batches = tokenize_splits(frames, checked.tokenizer, cfg.max_length, pad)
        # labels, independent units, lengths, leakage, parts of every split scored, in batch order
        eval_splits = evaluation_splits(frames, batches, corpus)
        check_costs(cfg, eval_splits, len(frames["train"]), setup.data_parallel_processes)
    results = timed("setup", start_results, cfg, setup, checked, frames, eval_splits, stopped)

    # the frozen encoder's output, the same in every seed: computed once
    features = timed("features", cached_features, cfg, checked.model, batches, setup)
    probe = ProbeReference.start(cfg, features)  # on the CPU, while the GPU trains the runs
    train_seed = functools.partial(both_runs, results.experiment, checked, features, batches)
    compare_seeds(results, train_seed, probe, stopwatch=stopwatch)  # both runs, every seed

    if processes.is_main():
        with stopwatch("report"):
            report.print_metrics(results)
            report.print_confusion_matrices(results)
            report.print_delta(results)  # with its interval, the verdict, the examples that flipped
            report.save(results, figures=plots.save_figures(results))
        results.finish(stopwatch.total())  # results.json again, with every stage's time
        say(f"total wall time {stopwatch.total()['total']:.1f}s")
    return results.run_dir


def start_results(cfg, setup, checked, frames, eval_splits, stopped):
    """The run folder (a stopped run's own when resuming, its finished seeds kept) and its record,
    the setup printed."""
    experiment = Experiment(
        cfg, stopped.folder if stopped else new_run_dir(cfg.output_dir), checked.tokenizer, setup
    )
    results = Results(
        experiment,
        eval_splits,
        train_labels=frames["train"]["label"].to_numpy(),
        new_head_tensors=checked.new_head_tensors,
        data_fingerprint=data_fingerprint(frames),
        stopped=stopped,
    )
    report.print_setup(results)
    return results


def compare_seeds(results, train_seed, probe, *, stopwatch):
    """Each seed not yet recorded: both runs trained (processes.deal_seeds spreads them over
    processes), compared, and every file rewritten with it."""
    cfg, setup = results.cfg, results.experiment.setup
    seeds = range(cfg.seed, cfg.seed + cfg.num_seeds)
    seeds = [seed for seed in seeds if seed not in results.resumed_seeds]
    with results.rescued_on_write_error():  # finished seeds kept elsewhere if the run folder fails
        dealt = processes.deal_seeds(seeds, setup.parallel, train=train_seed, stopwatch=stopwatch)
        for seed, probs, records in dealt:
            # fitted while the first seed trained: on a GPU, no wait
            probs.update(stopwatch.timed("waiting for the probe", probe.outcome))
            comparison = stopwatch.timed(
                "statistics",
                compare_runs,
                seed,
                records,
                probs=probs,
                eval_splits=results.eval_splits,
                resamples=cfg.bootstrap_resamples,
            )
            timings = stopwatch.total()
            stopwatch.timed(
                "files", results.add_seed, comparison, probs, probe_fit=probe.fit, timings=timings
            )
        if not seeds and processes.is_main():  # all were recorded: the report again, with the probe
            results.update(
                reference=probe.outcome(), probe_fit=probe.fit, timings=stopwatch.total()
            )


class Terminated(KeyboardInterrupt):
    """SIGTERM, which docker, Slurm and Kubernetes send to stop a job: handled like Ctrl-C."""


def stop_on_sigterm(signum, frame):
    raise Terminated


def main(argv=None):
    # the libraries' half a million objects live as long as the process: frozen, they are skipped by
    # the full garbage collection each Trainer.train starts with (accelerate's free_memory: 0.3 s)
    gc.freeze()
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    # Ctrl-C from here on: the run's own clean stop
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        run(parse_config(argv))
    except UsageError as err:  # every process stops; the main one says why
        console.error(err)
        return 2
    except KeyboardInterrupt as stop:
        if processes.is_main():
            print(
                f"\n{'terminated' if isinstance(stop, Terminated) else 'interrupted'}: "
                "results.json and "
                "predictions.csv hold every seed finished before it (none if none had); no file or "
                "model folder is left half-written.",
                file=sys.stderr,
            )
        return 128 + (signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT)
    finally:
        processes.close()
    return console.exit_status()


if __name__ == "__main__":
    console.leave(main())
