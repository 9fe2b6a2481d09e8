"""Data-parallel training on a `tf.distribute` strategy, with an XLA-compiled replica step.

`keras.Model.fit` (Keras 3.15) cannot do this: under `MirroredStrategy` it
works only with `jit_compile=False` (with XLA the whole `strategy.run` is
compiled and fails on another device's replica variables), and under
`MultiWorkerMirroredStrategy` it fails outright (keras-team/keras #20585).
So each global batch runs through a loop of our own: an outer `tf.function`
(not XLA) calls `strategy.run` on a replica step whose forward and backward
pass is a `tf.function(jit_compile=...)`; applying the gradients (with their
all-reduce), the metric updates and the all-reduce of the loss denominators
stay outside XLA (XLA on CPU has no collective gather). The same loop runs
on one machine's devices (`MirroredStrategy`) and on several machines
(`MultiWorkerMirroredStrategy`, the cluster that `TF_CONFIG` describes).

Several workers: every worker runs the same program on the same data and
keeps its replicas' part of each global batch (`distribute_dataset`: the
data set is split by rows, tf.data's `AutoShardPolicy.DATA`). That is the
smallest design that keeps the global batches of one process: the workers
shuffle with the same seed (so `train` needs one) and
`experimental_distribute_dataset` cuts every global batch into the
replicas' parts. Its cost: every worker reads and preprocesses all rows.
Training data given as CSV or TFRecord files, at least as many as workers,
is split by file instead (`shard_policy`, `AutoShardPolicy.FILE`): each
worker reads only its files and draws its share of each global batch from
them, so the global batches are no longer those of one process, and a worker
whose files run out first contributes empty parts until all are done
(tf.data's partial-batch handling).
Only the chief (`is_chief`: task 0 when the cluster has no `chief` task)
writes: the `backup_dir` checkpoint and the early-stopping state are written
by it and read by every worker when a run resumes (so `backup_dir` must be
a folder that all workers see), and `keras_mdr.run` writes the model,
`metrics.json` and the history on the chief only. Keras' `evaluate` fails
under `MultiWorkerMirroredStrategy` too (its data adapter meets the
distributed batches, seen), so there `MultiDomainModel.evaluate_report`
evaluates with this module's loop (`evaluate_distributed`, on every worker),
and `keras_mdr.run` has the chief evaluate a copy of the saved model loaded
outside the strategy.

A worker that dies stops the run: the others fail at their next collective
once its heartbeats stop ("The following tasks are unhealthy", about 10 s
after the kill in `tests/test_distributed.py`). Started again, every worker
restores the chief's last epoch checkpoint (weights, optimizer state, the
epoch, early stopping's memory) and the epoch in progress is trained again.

What equals a single-process run on the same global batches:

- The task losses, exactly. Each task's loss is a weighted mean over its
  labelled rows (or per (domain, task) group, `loss_reduction`), so its
  denominators are summed over replicas first (`loss_counts`), and each
  replica divides its own rows' loss sums (`loss_sums`) by them. The
  replicas' losses then add up to the global batch's loss and their summed
  gradients to its gradient, however the rows, masks and domains fall on
  the replicas (an uneven last batch included).
- The optimizer step: the gradients are made dense in the replica step, so
  Adam sees each embedding row's summed gradient. (`model.fit` hands Keras'
  Adam an embedding's sparse gradient, whose repeated rows it squares one by
  one: its second moment there is a sum of squares, not the square of the
  sum, and differs from this one for the rows a batch repeats.) A dense
  gradient also means that the all-reduce sends whole embedding tables.
- The streaming per-domain metrics, exactly: every replica adds its rows to
  its copy of the `TaskMetrics` histograms, and reading them sums the copies.
- Not the auxiliary losses (`model.losses`): each replica computes them on
  its own rows and they are averaged over replicas. One that is a statistic
  of the batch (CESAA's `-I(D; J)` and load-balancing losses) therefore
  differs from the global batch's, as in any data-parallel run.

Likewise a layer whose training computation depends on the batch (CESAA's
capacity dispatch, HAMUR's `DomainNormalization`) sees each replica's rows,
and random ops (dropout, gate noise) draw other numbers than a single process
does. Moving statistics are not synchronised: each replica updates its own
copy from its rows, and `get_weights` reads the first replica's (on
several workers, this worker's first replica's: the chief saves its own).

After every step a model that gained domains with a frozen method
(`keras_mdr.transfer`) writes its source domains' rows back, as under `fit`
(`keep_source_domains`). The model must have been created under
`strategy.scope()`, so that its variables are the strategy's
(`check_model_in_scope`).

Tested: `tests/test_distributed.py` (two logical CPUs, and two worker
processes on 127.0.0.1), on CPU only.
"""

import contextlib

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_mdr.data import files as files_lib
from keras_mdr.features.preprocessing import DOMAIN_ID
from keras_mdr.training.progress import with_progress_logger

# The strategies a run config names (`training.distribution.strategy`).
STRATEGIES = {
    "mirrored": tf.distribute.MirroredStrategy,  # every GPU of this machine, else its CPU
    "multi_worker": tf.distribute.MultiWorkerMirroredStrategy,  # the cluster that TF_CONFIG describes
}


def make_strategy(distribution):
    """The strategy of a run config's `training.distribution` (`{"strategy": name}`), or `None` for none."""
    if distribution is None:
        return None
    return STRATEGIES[distribution["strategy"]]()


def strategy_scope(strategy):
    """`strategy.scope()`, or a context that does nothing for `None` (one device, no strategy)."""
    return contextlib.nullcontext() if strategy is None else strategy.scope()


def is_chief(strategy):
    """Whether this process writes checkpoints and results: not on a worker other than the chief (`None`: yes)."""
    return strategy is None or strategy.extended.should_checkpoint


def shard_policy(strategy, data):
    """How the workers of `strategy` split `data` (what `train` takes): by file or by row.

    `AutoShardPolicy.FILE` when `data` names CSV or TFRecord files
    (`keras_mdr.data.files`), at least one per worker: each worker reads its
    own files. Otherwise `AutoShardPolicy.DATA`: every worker reads all rows
    and keeps its replicas' part of each global batch.
    """
    policy = tf.data.experimental.AutoShardPolicy
    if not files_lib.is_file_source(data):
        return policy.DATA
    files = files_lib.data_files(data)
    shardable = files_lib.file_format(files[0])[0] in files_lib.FILE_SHARDABLE
    workers = strategy.num_replicas_in_sync // len(strategy.extended.worker_devices)
    return policy.FILE if shardable and len(files) >= workers else policy.DATA


def distribute_dataset(strategy, dataset, policy=tf.data.experimental.AutoShardPolicy.DATA):
    """`dataset` of global batches, each split over the replicas; a worker keeps its replicas' parts.

    `policy` (`shard_policy`): with `DATA` every worker reads all of
    `dataset`, so each global batch is the one a single process draws; with
    `FILE` each worker reads its own files and makes its part of each global
    batch from them.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


class RestoreOnlyBackup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` for a worker that is not the chief: restores from the chief's backup, never writes it.

    All workers must resume from the same epoch, so they read the one
    checkpoint the chief writes (in a folder that they all see).
    """

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass


def check_model_in_scope(model, strategy):
    """Raises unless `model` was created under `strategy.scope()` (its variables are the strategy's).

    Raises:
        ValueError: with the fix in the message.
    """
    created_in_scope = getattr(model, "_distribute_strategy", None) is strategy and all(
        strategy.extended.variable_created_in_scope(v.value) for v in model.weights
    )
    if not created_in_scope:
        raise ValueError(
            f"The model was not created under this {type(strategy).__name__}'s scope, so its variables are "
            "not replicated: build it inside `with strategy.scope():` (build_model, from_config or "
            "keras.saving.load_model), then pass the same strategy to train"
        )


def _zeros_like(spec):
    """Zeros of a traced output's dtype and shape, 0 rows where the shape is unknown (`None`, a variable
    without a gradient, stays `None`)."""
    return None if spec is None else tf.zeros([0 if d is None else d for d in spec.shape], spec.dtype)


class _ReplicaSteps:
    """The train and test steps of one model on one strategy (see the module docstring)."""

    def __init__(self, model, strategy, jit_compile):
        self.model = model
        self.strategy = strategy
        self.forward = tf.function(self._forward, jit_compile=jit_compile)
        self.forward_backward = tf.function(self._forward_backward, jit_compile=jit_compile)

    def _loss(self, x, y, y_pred, counts):
        model = self.model
        loss = model.task_loss(model.loss_sums(x, y, y_pred), counts)
        for auxiliary in model.losses:
            loss = loss + ops.cast(ops.sum(auxiliary), "float32") / self.strategy.num_replicas_in_sync
        return loss

    def _forward(self, x, y, counts):
        y_pred = self.model(x, training=False)
        return y_pred, self._loss(x, y, y_pred, counts)

    def _forward_backward(self, x, y, counts):
        with tf.GradientTape() as tape:
            y_pred = self.model(x, training=True)
            loss = self._loss(x, y, y_pred, counts)
        gradients = tape.gradient(loss, self.model.trainable_variables)
        # Dense: Keras' Adam squares the slices of a sparse gradient before summing repeated rows, so
        # its step would depend on how the replicas' slices are grouped (see the module docstring).
        return y_pred, loss, [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in gradients]

    def _replica_step(self, x, y, training):
        model = self.model
        context = tf.distribute.get_replica_context()
        counts = context.all_reduce(tf.distribute.ReduceOp.SUM, model.loss_counts(x, y))
        rows = tf.shape(x[DOMAIN_ID])[0]
        step = self.forward_backward if training else self.forward
        # A replica can get no rows (an uneven last batch; a worker whose files ran out): it then contributes
        # zeros, without running the model (XLA fails on some layers at 0 rows, and batch statistics would be NaN).
        shapes = step.get_concrete_function(x, y, counts).structured_outputs
        outputs = tf.cond(rows > 0, lambda: step(x, y, counts), lambda: tf.nest.map_structure(_zeros_like, shapes))
        if training:
            y_pred, loss, gradients = outputs
            model.optimizer.apply(gradients, model.trainable_variables)
        else:
            y_pred, loss = outputs
        model.update_task_metrics(x, y, y_pred)
        return loss, rows

    def function(self, element_spec, training):
        """A `tf.function` from a distributed batch to (the global batch's loss, its rows)."""

        @tf.function(input_signature=[element_spec])
        def step(batch):
            losses, rows = self.strategy.run(self._replica_step, args=(*batch, training))
            if training:
                self.model.keep_source_domains()
            reduce = tf.distribute.ReduceOp.SUM
            return self.strategy.reduce(reduce, losses, axis=None), self.strategy.reduce(reduce, rows, axis=None)

        return step


def _run_epoch(model, step, dataset, callbacks=None):
    """Runs `step` over `dataset`; returns the logs: row-weighted mean loss and the model's metrics."""
    model.reset_metrics()
    loss_sum, rows = 0.0, 0
    for batch_index, batch in enumerate(dataset):
        if callbacks is not None:
            callbacks.on_train_batch_begin(batch_index)
        loss, batch_rows = step(batch)
        loss_sum += float(loss) * int(batch_rows)
        rows += int(batch_rows)
        if callbacks is not None:
            callbacks.on_train_batch_end(batch_index, {"loss": loss_sum / max(rows, 1)})
    logs = {key: float(np.asarray(value)) for key, value in model.get_metrics_result().items()}
    logs["loss"] = loss_sum / max(rows, 1)
    return logs


def _evaluation(model, strategy, steps, data, batch_size):
    """`data` distributed over `strategy`'s replicas, and the replica step that evaluates a batch of it."""
    dataset = distribute_dataset(strategy, model.make_dataset(data, batch_size), shard_policy(strategy, data))
    return dataset, steps.function(dataset.element_spec, training=False)


def evaluate_distributed(model, strategy, data, batch_size=None):
    """Evaluates `model` on `data` with the step loop of `fit_distributed`; returns its logs.

    The model's streaming metrics then hold the whole data set's values, every
    replica's rows summed. Keras' `evaluate` fails under
    `MultiWorkerMirroredStrategy` (see the module docstring);
    `MultiDomainModel.evaluate_report` comes here instead. Every worker must
    call it, as every worker calls `train`: the metrics are all-reduced.
    """
    dataset, step = _evaluation(model, strategy, _ReplicaSteps(model, strategy, jit_compile=False), data, batch_size)
    return _run_epoch(model, step, dataset)


def fit_distributed(
    model, strategy, train_data, validation_data=None, *, epochs, batch_size, jit_compile, seed, verbose, callbacks
):
    """Trains a compiled `model` on `strategy`, epoch by epoch, with Keras callbacks; returns the `History`.

    `batch_size` is the global batch; `distribute_dataset` splits each one
    over the replicas. The callbacks see what they see under `fit`: epoch
    logs with every metric (and `val_` ones), `model.stop_training`.

    Raises:
        ValueError: on several workers without a `seed` (each would shuffle
            the rows its own way, and the global batches would lose rows).
    """
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and seed is None:
        raise ValueError("Training on a MultiWorkerMirroredStrategy needs a seed, the same on every worker, so that "
                         "the workers split the same shuffled global batches")
    train = distribute_dataset(
        strategy, model.make_dataset(train_data, batch_size, shuffle=True, seed=seed), shard_policy(strategy, train_data)
    )
    steps = _ReplicaSteps(model, strategy, jit_compile)
    train_step = steps.function(train.element_spec, training=True)
    if validation_data is not None:
        validation, test_step = _evaluation(model, strategy, steps, validation_data, batch_size)

    callbacks = keras.callbacks.CallbackList(
        with_progress_logger(callbacks),
        add_history=True,
        model=model,
        verbose=1 if verbose == "auto" else verbose,
        epochs=epochs,
        steps=None,
    )
    with strategy.scope():
        model.snapshot_source_domains()
    model.stop_training = False
    callbacks.on_train_begin()
    # Set by `keras.callbacks.BackupAndRestore` when it restored a run, as `fit` reads it.
    for epoch in range(model._initial_epoch or 0, epochs):
        callbacks.on_epoch_begin(epoch)
        logs = _run_epoch(model, train_step, train, callbacks)
        if validation_data is not None:
            logs.update({f"val_{key}": value for key, value in _run_epoch(model, test_step, validation).items()})
        callbacks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callbacks.on_train_end()
    # Keras' own `evaluate` and `predict` compile the whole `strategy.run`, which XLA cannot do
    # over several devices' variables; without XLA they work (and this loop does not read the flag).
    model.jit_compile = False
    return model.history
