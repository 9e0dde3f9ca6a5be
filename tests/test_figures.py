"""The figures a reader looks at first: every label inside its axes and clear of the bars, and each
run's training curve on its own epochs."""

import numpy as np
from test_report import experiment

from sst2kit import plots


def overlaps(a, b):
    return not (a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0)


def test_the_metric_figures_reference_values_sit_inside_their_axes_clear_of_every_bar():
    results = experiment(
        [{"head_only": 0.70, "full_finetune": 0.95}],
        probe=0.80,
        sizes=(("validation", 300), ("test", 300)),
    )
    fig = plots.draw_metrics(results.findings.per_seed, results.eval_splits, None)
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        frame = ax.get_window_extent(renderer)
        bars = [patch.get_window_extent(renderer) for patch in ax.patches]
        labels = [t for t in ax.texts if "majority" in t.get_text() or "probe" in t.get_text()]
        assert len(labels) == 2
        for label in labels:
            box = label.get_window_extent(renderer)
            assert (
                frame.x0 <= box.x0
                and box.x1 <= frame.x1
                and frame.y0 <= box.y0 <= box.y1 <= frame.y1
            )
            assert not any(overlaps(box, bar) for bar in bars), label.get_text()


def test_each_runs_training_curve_spans_its_own_epochs():
    """A 2-epoch fine-tune beside a 20-epoch head: each run's axes end at its own last epoch."""
    results = experiment([{"head_only": 0.70, "full_finetune": 0.95}])
    (seed,) = results.findings.per_seed
    for run, epochs in (("head_only", 20), ("full_finetune", 2)):
        steps = np.linspace(0, epochs, 9)
        seed.training[run].history = {
            "train_loss": [(e, 0.7 - 0.01 * e) for e in steps[1:]],
            "eval_accuracy": [(e, 0.5 + 0.01 * e) for e in range(epochs + 1)],
        }
    fig = plots.draw_curves(results.findings.per_seed)
    (head_loss, head_accuracy), (full_loss, full_accuracy) = np.reshape(fig.axes, (2, 2))
    for ax, epochs in ((head_loss, 20), (head_accuracy, 20), (full_loss, 2), (full_accuracy, 2)):
        low, high = ax.get_xlim()
        assert high - low < 1.2 * epochs and high >= epochs
