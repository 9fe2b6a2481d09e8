"""One call that compiles and fits a model the way the CLI does."""

import os

import keras

from keras_mdr import optimizers
from keras_mdr.training import distributed
from keras_mdr.training.callbacks import ResumableEarlyStopping
from keras_mdr.training.tensorboard import tensorboard_callbacks


def train(
    model,
    train_data,
    validation_data=None,
    *,
    epochs=10,
    batch_size=None,
    learning_rate=1e-3,
    optimizer="adam",
    table_optimizer=None,
    table_learning_rate=None,
    early_stopping_patience=None,
    monitor="val_auc",
    backup_dir=None,
    jit_compile=True,
    steps_per_execution=8,
    seed=None,
    verbose="auto",
    callbacks=(),
    tensorboard_dir=None,
    strategy=None,
):
    """Compiles `model` with an optimizer and fits it on raw data, on one device or on a `tf.distribute` strategy.

    Args:
        model: a `MultiDomainModel`.
        train_data, validation_data: raw data (see `MultiDomainModel.make_dataset`).
        epochs: maximum number of epochs.
        batch_size: rows per batch.
        learning_rate: the optimizer's learning rate.
        optimizer: `"adam"` (Keras' Adam), `"lazy_adam"`
            (`keras_mdr.optimizers.LazyAdam`: Adam, but an embedding table's
            rows absent from a batch are left as they are), `"adagrad"` or
            `"sgd"` (Keras', for the whole model; they too leave absent rows
            as they are). `"lazy_adam"` works on one device only: a
            `strategy`'s step loop makes the gradients dense, so it would
            update every row as Adam does, and it raises there.
        table_optimizer: `None` (`optimizer` trains everything), or one of
            the same names for the embedding tables, with `optimizer` on the
            rest (`keras_mdr.optimizers.SplitOptimizer`): `"adagrad"` tables
            with Adam towers, for example.
        table_learning_rate: the tables' learning rate (default
            `learning_rate`; Adagrad usually wants a larger one).
        early_stopping_patience: stop after this many epochs without a better
            `monitor` (needs `validation_data`); the best epoch's weights are
            always restored.
        monitor: the metric early stopping watches (`val_auc` is maximised,
            anything else named `*loss*` minimised).
        backup_dir: checkpoint every epoch there and resume from it, so an
            interrupted run loses at most the epoch in progress. On several
            workers only the chief writes it, and every worker resumes from
            it: a folder that all of them see.
        jit_compile: XLA for the train step. On by default: measured faster
            on GPU and, on CPU, as fast or faster for the eight models of
            the throughput table (`benchmarks/RESULTS.md`). Exceptions on
            CPU: m2m and ppnet trained 0.91x and 0.87x with it, and Keras'
            random ops (dropout, CESAA's gate noise) are slow under XLA
            there, so a model with dropout may train faster with `False`.
        steps_per_execution: training steps per call of the compiled
            function. Small models are bound by the per-call overhead: 8
            trained shared_bottom 1.5x as fast as 1 on CPU
            (`benchmarks/steps_per_execution.py`). Batch-level callbacks and
            the progress bar then see every 8th batch; epochs are unchanged.
            (`model.fit` only: the step loop of a `strategy` runs one step
            per call.)
        seed: shuffle seed.
        verbose: Keras verbosity (progress bars by default).
        callbacks: more Keras callbacks.
        tensorboard_dir: write TensorBoard logs there: every metric per epoch,
            per (domain, task) included, and CESAA's expert-utilisation heat
            map (`keras_mdr.training.tensorboard`; `pip install
            'keras-mdr[tensorboard]'`).
        strategy: a `tf.distribute.MirroredStrategy` to train data-parallel
            on its devices, or a `MultiWorkerMirroredStrategy` on the
            cluster of `TF_CONFIG` (every worker runs the same call, with a
            `seed`); the model must have been created under
            `strategy.scope()`, and `batch_size` is the global batch, split
            over the replicas. It trains with keras_mdr's own step loop
            (`keras_mdr.training.distributed`, which says what equals a
            single-process run) instead of `model.fit`; `tensorboard_dir`
            and M3oE's bi-level mode are not supported with it yet.
            Afterwards the model's `evaluate` and `predict` run without
            XLA. `None`: `model.fit` on one device.

    Returns:
        The Keras `History`.
    """
    optimizers.check_names(optimizer, table_optimizer)
    if strategy is not None:
        distributed.check_model_in_scope(model, strategy)
        unsupported = ["tensorboard_dir"] if tensorboard_dir is not None else []
        if "lazy_adam" in (optimizer, table_optimizer):
            # The replica step densifies the gradients (see keras_mdr.training.distributed).
            unsupported.append("optimizer='lazy_adam' (the step loop makes gradients dense; use 'adam')")
        if model.dtype_policy.name == "mixed_float16":
            # The replica step applies the gradients itself, never through LossScaleOptimizer.scale_loss.
            unsupported.append(
                "dtype_policy='mixed_float16' (the step loop does not scale the loss; use 'mixed_bfloat16')"
            )
        if getattr(model, "training_mode", "joint") != "joint":
            unsupported.append(f"training_mode={model.training_mode!r}")
        if unsupported:
            raise ValueError(f"Training with a strategy does not support {', '.join(unsupported)} yet")
    with distributed.strategy_scope(strategy):
        model.compile(
            # Made in the scope: a Keras optimizer binds to the strategy current at its creation.
            optimizer=optimizers.make_optimizer(optimizer, learning_rate, table_optimizer, table_learning_rate),
            jit_compile=jit_compile,
            steps_per_execution=steps_per_execution,
        )
        # Built now so that BackupAndRestore also restores the optimizer's state (Adam's moments).
        model.optimizer.build(model.trainable_variables)
    callbacks = list(callbacks)
    if tensorboard_dir is not None:
        heat_map_rows = validation_data if validation_data is not None else train_data
        callbacks += tensorboard_callbacks(model, tensorboard_dir, heat_map_rows)
    chief = distributed.is_chief(strategy)
    if backup_dir is not None:
        callbacks.append(
            keras.callbacks.BackupAndRestore(backup_dir) if chief else distributed.RestoreOnlyBackup(backup_dir)
        )
    if early_stopping_patience is not None:
        if validation_data is None:
            raise ValueError("early_stopping_patience needs validation data")
        callbacks.insert(
            0,
            ResumableEarlyStopping(
                state_dir=None if backup_dir is None else os.path.join(backup_dir, "early_stopping"),
                write_state=chief,
                monitor=monitor,
                mode="min" if "loss" in monitor else "max",
                patience=early_stopping_patience,
            ),
        )
    if strategy is not None:
        return distributed.fit_distributed(
            model, strategy, train_data, validation_data, epochs=epochs, batch_size=batch_size,
            jit_compile=jit_compile, seed=seed, verbose=verbose, callbacks=callbacks,
        )
    return model.fit(
        train_data,
        validation_data=validation_data,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        callbacks=callbacks,
        verbose=verbose,
    )
