"""A full training run: build, fit, evaluate per domain, save. Shared by the CLI's commands."""

import json
import os
import shutil

import keras
import tensorflow as tf

from keras_mdr.models.registry import build_model
from keras_mdr.training.report import format_report
from keras_mdr.training.distributed import is_chief, strategy_scope
from keras_mdr.training.report_plot import history_for_json, plot_report
from keras_mdr.training.trainer import train
from keras_mdr.transfer.new_domain import add_domain

MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.json"
REPORT_PLOT = "report.png"
TENSORBOARD_DIR = "tensorboard"


def save_model(model, output_dir):
    """Saves `output_dir/model.keras` atomically (a crash never leaves a half-written file)."""
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, MODEL_FILE)
    partial = os.path.join(output_dir, ".partial." + MODEL_FILE)
    model.save(partial)
    os.replace(partial, path)
    return path


def write_json(value, path):
    partial = path + ".partial"
    with open(partial, "w") as f:
        json.dump(value, f, indent=2)
    os.replace(partial, path)


def evaluate_splits(model, splits, batch_size=None, echo=print):
    """`{split_name: report}` for each non-empty split, printing each table."""
    metrics = {}
    for name, frame in splits.items():
        if frame is None or len(frame) == 0:
            continue
        metrics[name] = model.evaluate_report(frame, batch_size=batch_size)
        echo(format_report(metrics[name], title=f"\n{name}: AUC / logloss per domain and task"))
    return metrics


def train_and_evaluate(
    model_name,
    params,
    features,
    domain,
    tasks,
    train_frame,
    validation_frame,
    test_frame,
    training,
    output_dir,
    verbose="auto",
    echo=print,
    strategy=None,
):
    """Builds `model_name`, trains it with early stopping and checkpoints, evaluates and saves.

    Writes `output_dir/model.keras`, `output_dir/metrics.json`
    (`{"validation": M, "test": M}`, `M` as `MultiDomainModel.evaluate_report`),
    `output_dir/history.json` (each metric per epoch), `output_dir/report.png`
    (`plot_report`; needs matplotlib) and, with `training["tensorboard"]`,
    TensorBoard logs in `output_dir/tensorboard`.
    An interrupted run resumes from `output_dir/backup` when run again.
    With a `strategy` (`make_strategy(training["distribution"])`, made before
    TensorFlow starts) the model is built under its scope and trained on it.

    Returns:
        `(model, metrics)`.
    """
    keras.utils.set_random_seed(training["seed"])
    with strategy_scope(strategy):
        model = build_model(
            model_name,
            features=features,
            domain=domain,
            tasks=tasks,
            data=train_frame,
            batch_size=training["batch_size"],
            **params,
        )
    metrics = fit_evaluate_save(
        model, train_frame, validation_frame, test_frame, training, output_dir, verbose=verbose, echo=echo,
        strategy=strategy,
    )
    return model, metrics


def transfer_and_evaluate(
    source,
    transfer,
    train_frame,
    validation_frame,
    test_frame,
    training,
    output_dir,
    verbose="auto",
    echo=print,
    strategy=None,
):
    """Adds new domains to a saved model (`keras_mdr.transfer.add_domain`), trains, evaluates and saves.

    Args:
        source: the model loaded from `transfer["from"]`.
        transfer: the config's transfer section (`from`, `domain_values`,
            `method`, `init_from`, `params`).
        train_frame, validation_frame, test_frame: raw rows; training rows
            must hold the new domains.

    Writes `output_dir/model.keras` and `output_dir/metrics.json` as
    `train_and_evaluate` does, with every domain (source and new) per split;
    the source model's file is only read. With a `strategy` the new model is
    built under its scope and trained on it.

    Returns:
        `(model, metrics)`.
    """
    source_path = os.path.abspath(transfer["from"])
    if os.path.abspath(os.path.join(output_dir, MODEL_FILE)) == source_path:
        raise ValueError(f"output {output_dir} would overwrite the source model {source_path}; choose another output")
    keras.utils.set_random_seed(training["seed"])
    with strategy_scope(strategy):
        model = add_domain(
            source,
            transfer["domain_values"],
            data=train_frame,
            method=transfer["method"],
            init_from=transfer["init_from"],
            **transfer["params"],
        )
    model.trainable_report(print_fn=echo)
    metrics = fit_evaluate_save(
        model, train_frame, validation_frame, test_frame, training, output_dir, verbose=verbose, echo=echo,
        strategy=strategy,
    )
    return model, metrics


def fit_evaluate_save(
    model, train_frame, validation_frame, test_frame, training, output_dir, verbose="auto", echo=print, strategy=None
):
    """Trains `model` (on `strategy`, if any) with early stopping and checkpoints, saves it, evaluates it per domain.

    On several workers only the chief saves and evaluates; the others return `None`.
    """
    backup_dir = os.path.join(output_dir, "backup")
    history = train(
        model,
        train_frame,
        validation_frame,
        epochs=training["epochs"],
        learning_rate=training["learning_rate"],
        optimizer=training["optimizer"],
        table_optimizer=training["table_optimizer"],
        table_learning_rate=training["table_learning_rate"],
        early_stopping_patience=training["early_stopping_patience"] if validation_frame is not None else None,
        backup_dir=backup_dir,
        jit_compile=training["jit_compile"],
        steps_per_execution=training["steps_per_execution"],
        seed=training["seed"],
        verbose=verbose,
        tensorboard_dir=os.path.join(output_dir, TENSORBOARD_DIR) if training.get("tensorboard") else None,
        strategy=strategy,
    )
    if not is_chief(strategy):
        echo(f"\nTrained; the chief writes {output_dir}")
        return None
    path = save_model(model, output_dir)
    evaluated = model
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # Keras' evaluate fails under this strategy (keras_mdr.training.distributed): a copy without it evaluates.
        evaluated = keras.saving.load_model(path)
    metrics = evaluate_splits(evaluated, {"validation": validation_frame, "test": test_frame}, echo=echo)
    write_json(metrics, os.path.join(output_dir, METRICS_FILE))
    history = history_for_json(history.history)
    write_json(history, os.path.join(output_dir, HISTORY_FILE))
    write_report_plot(metrics, os.path.join(output_dir, REPORT_PLOT), history, echo=echo)
    shutil.rmtree(backup_dir, ignore_errors=True)
    return metrics


def write_report_plot(metrics, path, history=None, echo=print, required=False):
    """Writes the report PNG (`plot_report`); without matplotlib, says how to get it (or raises if `required`)."""
    try:
        plot_report(metrics, path, history, title=os.path.basename(os.path.dirname(os.path.abspath(path))))
    except ImportError as error:
        if required:
            raise
        echo(f"\n{error} (for {path}).")
        return None
    return path
