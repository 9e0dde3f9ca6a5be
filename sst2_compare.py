"""How much does fine-tuning the whole encoder buy over training only a classification head on a frozen one?

GLUE SST-2, one model (distilbert-base-uncased by default), two runs on the same data:
  head-only:      the encoder frozen, only the classification head trained;
  full fine-tune: every weight trained.
Both are built by one helper, make_trainer, called once per run. The script loads SST-2, re-splits its
train set into train/test, tokenizes, trains both runs, scores them on GLUE validation, the re-split test set and,
if one is named, an external labelled test set, then prints metrics, confusion matrices and the accuracy delta with
its uncertainty. Run `python sst2_compare.py --help` for every setting; defaults live in config.py.
"""
import sys

try:
    from config import Config, parse_config
except ValueError as err:  # a dataclass refuses, at import, a list or dict as a default value in config.py
    print(f"error: config.py: {err}", file=sys.stderr)
    sys.exit(2)

if __name__ == "__main__" and {"-h", "--help"} & set(sys.argv[1:]):
    parse_config()  # prints the settings and exits, before the imports below take their ten seconds

import dataclasses  # noqa: E402
import math  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from accelerate import PartialState  # noqa: E402
from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402

from sst2kit import plots, processes, report  # noqa: E402
from sst2kit.batches import already_batched, tokenize_splits  # noqa: E402
from sst2kit.checks import check_inputs, check_training_cost  # noqa: E402
from sst2kit.console import Stopwatch, say  # noqa: E402
from sst2kit.cuda_graphs import CudaGraphTrainer, cuda_graphs_apply  # noqa: E402
from sst2kit.data import sst2_splits  # noqa: E402
from sst2kit.errors import Diverged, UsageError  # noqa: E402
from sst2kit.evaluation import evaluation_splits  # noqa: E402
from sst2kit.features import encoder_features, encoder_replayed  # noqa: E402
from sst2kit.metrics import classification_metrics, compare_runs  # noqa: E402
from sst2kit.models import Precision, apply_precision, decide_precision, load_model, set_encoder_trainable  # noqa: E402
from sst2kit.names import PROBE, evaluated  # noqa: E402
from sst2kit.probe import linear_probe_in_background, probe_outcome  # noqa: E402
from sst2kit.results import Results, environment, flips, new_run_dir, save_model_whole, save_report, \
    write_atomic  # noqa: E402
from sst2kit.trainer_log import quiet_progress  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Experiment:
    """What every run of one experiment shares."""
    cfg: Config
    run_dir: Path
    tokenizer: object
    precision: Precision
    graphs_off_because: str = None  # None: training steps replay CUDA graphs


def make_trainer(model, lr, epochs, run_name, *, data, seed, experiment):
    """The one place a TrainingArguments and a Trainer are built. data: a dataset per split (train, validation)."""
    cfg = experiment.cfg
    name = f"{run_name}_seed{seed}"
    on_gpu = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(experiment.run_dir),  # the Trainer writes nothing there itself: no checkpoints, see below
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
        # the filter reads the loss back every step (a GPU sync per step); train_and_predict's divergence check
        # needs the non-finite losses it would hide
        logging_nan_inf_filter=False,
        remove_unused_columns=False,  # batches arrive whole from the dataset's __getitems__
        dataloader_num_workers=cfg.dataloader_num_workers,
        dataloader_persistent_workers=cfg.dataloader_num_workers > 0,
        dataloader_pin_memory=on_gpu,
        accelerator_config={"non_blocking": on_gpu},  # pinned batches copied while the GPU works
        ddp_find_unused_parameters=False,  # frozen weights are simply not registered with DDP
        report_to="none",
        use_cpu=not on_gpu,
        **experiment.precision.trainer_flags,
    )
    trainer_class = Trainer if experiment.graphs_off_because else CudaGraphTrainer
    trainer = trainer_class(model=model, args=args, train_dataset=data["train"], eval_dataset=data["validation"],
                            data_collator=already_batched, processing_class=experiment.tokenizer,
                            compute_metrics=epoch_metrics, callbacks=[NoEvaluationAfterTheLastEpoch()])
    # progress bars stay; the log lines (loss, learning rate, per-epoch metrics) go to the run folder
    return quiet_progress(trainer, experiment.run_dir / "trainer_log.jsonl", echo=cfg.verbose)


class NoEvaluationAfterTheLastEpoch(TrainerCallback):
    """Validation after the last epoch would score the final weights, which the prediction pass scores next:
    that pass gives the curve's last point instead, and validation is scored once."""

    def on_epoch_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_evaluate = False


def epoch_metrics(prediction):
    metrics = classification_metrics(prediction.label_ids, prediction.predictions.argmax(-1))
    return {k: metrics[k] for k in ("accuracy", "f1", "macro_f1")}


def both_runs(model, seed, experiment, features, batches):
    """One seed's two runs on the same data: the head-only run on the frozen encoder (its head trained on the
    cached features where there are some), then the full fine-tune. Returns each run's P(positive) per evaluation
    split, and each run's record."""
    cfg, probs, records = experiment.cfg, {}, {}

    say(f"\n=== head-only (seed {seed}) ===")
    counts = set_encoder_trainable(model, False)
    say(f"{counts[0]:,} trainable parameters (the head), {counts[1]:,} frozen")
    with encoder_replayed(model, enabled=features is not None):
        trainer = make_trainer(model, cfg.learning_rate_head_only, cfg.epochs_head_only, "head_only",
                               data=features or batches, seed=seed, experiment=experiment)
        probs["head_only"], records["head_only"] = train_and_predict(trainer, features or batches, counts)
    if cfg.save_models:  # after the run: the model is whole again, its real encoder back in place
        save_model_whole(trainer, experiment.run_dir / trainer.args.run_name)

    start = "the trained head-only model" if cfg.full_finetune_init == "head_only" else "a pretrained model"
    say(f"\n=== full fine-tune (seed {seed}), from {start} ===")
    if cfg.full_finetune_init == "pretrained":
        model = load_model(cfg, seed)[0]
    counts = set_encoder_trainable(model, True)
    trainer = make_trainer(model, cfg.learning_rate_full_finetune, cfg.epochs_full_finetune, "full_finetune",
                           data=batches, seed=seed, experiment=experiment)
    probs["full_finetune"], records["full_finetune"] = train_and_predict(trainer, batches, counts)
    if cfg.save_models:
        save_model_whole(trainer, experiment.run_dir / trainer.args.run_name)
    return probs, records


def train_and_predict(trainer, data, parameter_counts):
    """Train, then one prediction pass per evaluation split. Returns P(positive) per split, and the run's record."""
    started = time.perf_counter()
    trainer.train()
    record = {"trainable_parameters": parameter_counts[0], "frozen_parameters": parameter_counts[1],
              "train_seconds": time.perf_counter() - started, "steps": trainer.state.global_step}
    history = trainer.state.log_history
    diverged = next((e for e in history if "loss" in e and not math.isfinite(e["loss"])), None)
    if diverged:
        raise Diverged(f"the {trainer.args.run_name} run diverged: its training loss was {diverged['loss']} by step "
                       f"{diverged['step']}; {settings_to_lower(trainer.args)}")
    started = time.perf_counter()
    predicted = {split: trainer.predict(data[split]) for split in evaluated(data)}
    probs = {split: torch.as_tensor(p.predictions).float().softmax(-1)[:, 1].numpy() for split, p in predicted.items()}
    history.append({"epoch": trainer.state.epoch, "eval_loss": predicted["validation"].metrics["test_loss"],
                    "eval_accuracy": predicted["validation"].metrics["test_accuracy"]})
    if not all(np.isfinite(p).all() for p in probs.values()):
        raise Diverged(f"the {trainer.args.run_name} run diverged: its predictions are not finite numbers; "
                       f"{settings_to_lower(trainer.args)}")
    record["predict_seconds"] = time.perf_counter() - started
    record["history"] = {curve: [[e["epoch"], e[key]] for e in history if key in e]
                         for curve, key in (("train_loss", "loss"), ("eval_loss", "eval_loss"),
                                            ("eval_accuracy", "eval_accuracy"))}
    return probs, record


def settings_to_lower(args):
    """What a divergence can be blamed on: the step size, and the decay that shrinks every weight each step."""
    return (f"lower its learning rate ({args.learning_rate:g}) or the weight decay ({args.weight_decay:g}; AdamW "
            "takes learning rate x weight decay off every weight each step)")


def run(cfg):
    """The experiment, top to bottom. Returns the run folder."""
    state, stopwatch = PartialState(), Stopwatch()  # every second of the run lands in one named stage
    mode = "seeds" if processes.seed_parallel() else "data" if state.num_processes > 1 else "single"
    with stopwatch("input checks"):
        # every bad input is found here, before anything is written; the checked model is the first seed's
        pretrained, tokenizer, new_head_tensors = check_inputs(cfg)
    precision = decide_precision(cfg.precision, torch.cuda.get_device_capability() if state.device.type == "cuda"
                                 else None)
    apply_precision(precision)
    graphs_off_because = cuda_graphs_apply(cfg.cuda_graphs, precision, state.num_processes, state.device.type,
                                           torch.cuda.device_count())

    say("=== data ===")
    with stopwatch("data"):
        # GLUE train re-split into train/test; GLUE validation kept as it is; and an external test set, if named
        frames, corpus = sst2_splits(cfg)
        check_training_cost(cfg, len(frames["train"]), state.num_processes)
        frames, batches = tokenize_splits(frames, tokenizer, cfg.max_length,
                                          1 if graphs_off_because else cfg.pad_to_multiple_of)
        # labels, independent units, lengths, leakage and parts of every split scored, in token-batch order
        eval_splits = evaluation_splits(frames, batches, corpus)
    with stopwatch("setup"):
        experiment = Experiment(cfg, new_run_dir(cfg.output_dir), tokenizer, precision, graphs_off_because)
        sizes = {name: len(frame) for name, frame in frames.items()}
        results = Results(experiment.run_dir, cfg, eval_splits, frames["train"]["label"], sizes,
                          {"precision": precision.name, "cuda_graphs": graphs_off_because or "on", "parallel": mode,
                           "processes": processes.count()},
                          new_head_tensors)
        printed = report.print_setup(cfg, experiment.run_dir, sizes, eval_splits, results.balance, new_head_tensors,
                                     environment()["device"], precision, graphs_off_because, mode)

    features = None  # the frozen encoder's output, the same in every seed: computed once
    if cfg.cache_encoder_features:
        with stopwatch("features"):
            features = encoder_features(pretrained.to(state.device), batches, cfg.feature_batch_size,
                                        precision.autocast_dtype)
        say("this model's head reads more than the first token: the encoder runs at every head-only step instead"
            if features is None else f"frozen-encoder features computed once, in {stopwatch.seconds['features']:.1f}s;"
            " the encoder's dropout is off in them (the notebook ran it with dropout on at every step)")
    probe_fitting, probe_probs, probe_fit = None, None, None  # a well-fit classifier on the same frozen features
    if cfg.probe_reference and features is None:
        say("no linear probe reference: it needs the cached encoder features (cache_encoder_features)")
    elif cfg.probe_reference and processes.is_main():  # fitted once, by the process that reports
        probe_fitting = linear_probe_in_background(features, cfg.seed)  # on the CPU, while the GPU trains the runs

    seeds = list(range(cfg.seed, cfg.seed + cfg.num_seeds))
    # seeds mode: process k trains seeds k, k + n, ... alone; otherwise every process takes part in every seed
    spread = processes.count() if mode == "seeds" else 1
    for round_start in range(0, len(seeds), spread):
        mine = round_start + (processes.index() if mode == "seeds" else 0)
        seed, trained, failure = (seeds[mine] if mine < len(seeds) else None), None, None
        if seed is not None:
            try:
                with stopwatch(f"seed{seed}"):
                    # the weights were read once, by the input checks, for the first seed; others draw a new head
                    model = pretrained if seed == cfg.seed else load_model(cfg, seed)[0]
                    trained = (seed, *both_runs(model, seed, experiment, features, batches))
            except UsageError as err:
                if mode != "seeds":
                    raise
                failure = f"seed {seed} failed in process {processes.index()}: {err}"
        # the main process receives every seed of the round (its own, in the other modes), records and writes it
        with stopwatch("waiting for other processes"):
            round_outcomes = processes.to_main((trained, failure)) if mode == "seeds" else [(trained, None)]
        if processes.is_main():
            for trained_elsewhere, _ in round_outcomes:
                if trained_elsewhere is None:
                    continue
                seed, probs, records = trained_elsewhere
                if seed == cfg.seed:
                    with stopwatch("waiting for the probe"):  # fitted while the first seed trained: on a GPU, no wait
                        probe_probs, probe_fit = probe_outcome(probe_fitting)
                    printed += report.print_probe_fit(probe_fit) if probe_fit else []
                with stopwatch("statistics"):
                    comparison = compare_runs(seed, records, {**probs, **({PROBE: probe_probs} if probe_probs else {})},
                                              eval_splits, cfg.bootstrap_resamples)
                with stopwatch("files"):
                    results.add_seed(comparison, probs, stopwatch.total(), probe_fit)  # every file rewritten
            failure = next((message for _, message in round_outcomes if message), None)
        with stopwatch("waiting for other processes"):
            failure = processes.from_main(failure) if mode == "seeds" else failure
        if failure:  # the seeds already in results.json stay; every process stops, and the main one says why
            raise UsageError(failure)

    if processes.is_main():
        stopwatch.start("report")
        first, summary = results.per_seed[0], results.summary
        printed += report.print_metrics(first)
        printed += report.print_confusion_matrices(first)
        printed += report.print_delta(first, eval_splits, results.balance, summary)
        printed += report.print_summary(summary) if summary else []
        printed += report.print_flips(flips(results.predictions), first["seed"])
        figures = plots.save_figures(results.per_seed, eval_splits, experiment.run_dir, write_atomic)
        save_report(experiment.run_dir, printed, report.classification_reports(first), figures)
        stopwatch.stop("report")
        results.finish(stopwatch.total())  # results.json again, with every stage's time
        say(f"\nwrote to {experiment.run_dir}:\n  report.md, results.json, predictions.csv, flips.csv, "
            f"trainer_log.jsonl, {', '.join(f.name for f in figures)}")
        say(f"total wall time {stopwatch.total()['total']:.1f}s")
    return experiment.run_dir


class Terminated(KeyboardInterrupt):
    """SIGTERM, which docker, Slurm and Kubernetes send to stop a job: handled like Ctrl-C."""


def stop_on_sigterm(signum, frame):
    raise Terminated


def main(argv=None):
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        cfg = parse_config(argv)
        # one process per GPU, or several CPU processes (gloo), under torchrun or accelerate launch: see processes.py
        processes.start(cfg.parallel, cfg.num_seeds)
        run(cfg)
    except UsageError as err:
        if processes.is_main():  # every process finds it; one says it
            print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        print(f"\n{'terminated' if isinstance(stop, Terminated) else 'interrupted'}: results.json and "
              "predictions.csv hold every seed finished before it (none if none had); no file is left half-written.",
              file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
