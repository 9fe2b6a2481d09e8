"""The run report as a picture: AUC per domain and task, and the training curves.

`plot_report` draws, for each task, the AUC of every domain (and `all`) as
bars, one colour per evaluated split (validation, test), and below them the
loss and the mean AUC per epoch, training and validation, from the fit's
history. It uses matplotlib's object API with the Agg canvas (no display, no
pyplot state), a fixed size and no timestamp, so equal inputs give equal
files. matplotlib is the `plots` extra.
"""

import math

import numpy as np

SPLIT_COLOURS = {"validation": "#4C72B0", "test": "#DD8452", "training": "#55A868"}


def _matplotlib_figure():
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("Plotting the report needs matplotlib. Run: pip install 'keras-mdr[plots]'") from error
    return Figure


def _auc(values):
    return np.nan if values is None or values.get("auc") is None else values["auc"]


def _plot_domain_aucs(axes, metrics, task):
    splits = list(metrics)
    domains = list(metrics[splits[0]]["tasks"][task]["domains"]) + ["all"]
    width = 0.8 / len(splits)
    positions = np.arange(len(domains))
    lowest = 0.5
    for index, split in enumerate(splits):
        report = metrics[split]["tasks"][task]
        aucs = np.array([_auc(report["domains"][d]) for d in domains[:-1]] + [_auc(report)], dtype=float)
        bars = axes.bar(positions + (index - (len(splits) - 1) / 2) * width, aucs, width,
                        label=split, color=SPLIT_COLOURS.get(split))
        if len(domains) * len(splits) <= 24:  # the values themselves, while they fit
            labels = ["-" if np.isnan(a) else f"{a:.3f}" for a in aucs]
            axes.bar_label(bars, labels, fontsize=6, padding=1)
        if not np.all(np.isnan(aucs)):
            lowest = min(lowest, np.nanmin(aucs))
    axes.set_xticks(positions, domains, rotation=45 if len(domains) > 8 else 0)
    # Bars start at 0.5 (chance), lower only when an AUC is below it, so differences stay visible.
    axes.set_ylim(min(0.5, np.floor(lowest * 10) / 10), 1.0)
    axes.axhline(0.5, color="grey", linewidth=0.8)
    axes.set_title(f"{task}: AUC per domain")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="upper right", fontsize=8)


def _plot_curve(axes, history, name, title):
    from matplotlib.ticker import MaxNLocator

    for key, label, style in ((name, "training", "-o"), (f"val_{name}", "validation", "-s")):
        values = history.get(key)
        if values:
            epochs = np.arange(1, len(values) + 1)
            values = [np.nan if v is None else v for v in values]
            axes.plot(epochs, values, style, label=label, color=SPLIT_COLOURS[label], markersize=3)
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)


def plot_report(metrics, path, history=None, title=None):
    """Writes the report PNG.

    Args:
        metrics: `{split: report}` (`metrics.json`: `evaluate_report` per split).
        path: the PNG's path (or a binary file object).
        history: `{metric: [value per epoch]}` (`History.history`), or `None`
            for the bars alone.
        title: the figure's title.

    Returns:
        `path`.
    """
    Figure = _matplotlib_figure()
    tasks = list(next(iter(metrics.values()))["tasks"])
    columns = max(len(tasks), 2 if history else 1)
    rows = 2 if history else 1
    figure = Figure(figsize=(4.5 * columns, 3.6 * rows))
    grid = figure.subplots(rows, columns, squeeze=False)
    for index, task in enumerate(tasks):
        _plot_domain_aucs(grid[0][index], metrics, task)
    for axes in grid[0][len(tasks):]:
        axes.set_axis_off()
    if history:
        _plot_curve(grid[1][0], history, "loss", "loss")
        _plot_curve(grid[1][1], history, "auc", "AUC (mean over tasks)")
        for axes in grid[1][2:]:
            axes.set_axis_off()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png", metadata={"Software": None})
    return path


def history_for_json(history):
    """`History.history` with plain floats and `None` for NaN, as JSON allows."""
    return {
        name: [None if math.isnan(float(v)) else float(v) for v in values] for name, values in history.items()
    }
