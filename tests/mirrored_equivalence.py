"""Trains models on two logical CPUs with `MirroredStrategy` and in one process; writes what differs as JSON.

Run by `test_distributed.py` in a process of its own: the logical devices
must be set before TensorFlow starts its devices, which pytest's process has
long done. Usage: `python mirrored_equivalence.py OUT.json`.

For each model: built under the strategy's scope and trained for one epoch
by `keras_mdr.training.train(..., strategy=...)` with XLA; a copy with the
same initial weights, built without a strategy, trained by a single-process
loop on the same global batches (each one the concatenation of the replicas'
shards): Adam on the dense gradient of the model's own loss, `compute_loss`,
of the global batch. As in the distributed step, each shard goes through the
model as a batch of its own (HAMUR's `DomainNormalization` uses its batch's
statistics) and the auxiliary losses are each shard's, averaged.
`multi_worker_equivalence.py` runs the same comparison on two worker processes.
"""

import json
import sys

import keras
import numpy as np
import tensorflow as tf
from keras import ops

import keras_mdr as km
from keras_mdr.features.preprocessing import DOMAIN_ID
from keras_mdr.testing import tiny_synthetic
from keras_mdr.training.distributed import distribute_dataset

# name: (hyper-parameters, training rows, validation rows). Each shape costs an XLA compilation per
# device, so only mmoe runs an uneven last batch (197 rows in batches of 64: the last 5 split 3 / 2) and
# validation; the others train two even batches.
CASES = {
    "mmoe": ({"num_experts": 2, "expert_units": [8], "tower_units": [4]}, 197, 64),
    "hamur": ({"hidden_units": [8, 6], "rank": 3, "bottleneck": 4, "hyper_units": [5], "tower_units": [4]}, 128, 0),
    # Drop-free dispatch and no gate noise: a capacity and random draws depend on the replica (distributed.py).
    "cesaa": ({"num_experts": 4, "top_k": 2, "expert_units": [8], "tower_units": [4], "domain_embedding_dim": 2,
               "dispatch": "grouped", "noisy_gating": False}, 128, 0),
}
BATCH, LEARNING_RATE, SEED = 64, 1e-2, 3


def _auxiliary(model):
    return sum((ops.sum(loss) for loss in model.losses), ops.zeros(()))


def _single_process(model, shards, validation):
    """Trains `model` on the global batches of `shards`; returns its logs as `train` writes them."""
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), jit_compile=False)
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    model.reset_metrics()
    loss_sum, rows = 0.0, 0
    for replica_batches in shards:
        x, y = (tf.nest.map_structure(lambda *parts: tf.concat(parts, 0), *part) for part in zip(*replica_batches))
        with tf.GradientTape() as tape:
            shard_predictions, auxiliary = [], []
            for shard_x, _ in replica_batches:
                shard_predictions.append(model(shard_x, training=True))
                auxiliary.append(_auxiliary(model))
            y_pred = tf.nest.map_structure(lambda *parts: tf.concat(parts, 0), *shard_predictions)
            # `compute_loss` adds the last call's auxiliary losses; each shard's count once instead.
            loss = model.compute_loss(x, y, y_pred) - _auxiliary(model) + sum(auxiliary) / len(auxiliary)
        gradients = [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.trainable_variables)]
        optimizer.apply(gradients, model.trainable_variables)
        model.update_task_metrics(x, y, y_pred)
        loss_sum += float(loss) * len(y_pred[model.tasks[0].name])
        rows += len(y_pred[model.tasks[0].name])
    logs = {key: float(value) for key, value in model.get_metrics_result().items()}
    logs["loss"] = loss_sum / rows
    if validation is not None:
        validation_logs = model.evaluate(validation, batch_size=BATCH, verbose=0, return_dict=True)
        logs.update({f"val_{key}": float(value) for key, value in validation_logs.items()})
    return logs


def _labelled_rows_per_replica(shards, model):
    """`[batch][replica][task]` labelled rows: unequal ones make a per-replica mean differ from the global one."""
    return [
        [[int(np.sum(np.asarray(y[t.name]) >= 0)) for t in model.tasks] for _, y in replica_batches]
        for replica_batches in shards
    ]


def replica_shards(strategy, dataset):
    """`[batch][replica] = (x, y)`: every replica's part of each global batch, gathered onto this worker."""

    @tf.function
    def gather(batch):
        rows = strategy.run(lambda x: tf.shape(x[DOMAIN_ID])[:1], args=(batch[0],))
        return strategy.gather(rows, axis=0), tf.nest.map_structure(lambda part: strategy.gather(part, axis=0), batch)

    shards = []
    for batch in distribute_dataset(strategy, dataset):
        rows, gathered = gather(batch)
        rows = rows.numpy()
        ends = np.cumsum(rows)
        shards.append([tf.nest.map_structure(lambda t: t[end - n:end], gathered) for n, end in zip(rows, ends)])
    return shards


def train_both(name, hyper_parameters, train_rows, validation_rows, strategy, data):
    """Trains `name` on `strategy` and in one process on the same global batches; returns what both did.

    Returns:
        `(distributed_model, single_model, validation_rows, result)`, `result`
        a dict of `weight_difference`, both `..._logs`, the
        `labelled_rows_per_replica` and `global_batches_match`: whether the
        replicas' parts of each batch make up the batch one process draws.
    """
    train = data.frame.iloc[:train_rows]
    validation = data.frame.iloc[train_rows:train_rows + validation_rows] if validation_rows else None
    keras.utils.set_random_seed(SEED)
    with strategy.scope():
        distributed = km.build_model(name, data.features, data.domain, data.tasks, data=data.frame, **hyper_parameters)
    single = km.build_model(name, data.features, data.domain, data.tasks, data=data.frame, **hyper_parameters)
    single.set_weights(distributed.get_weights())

    # The batches `train` will draw: the same shuffle seed, split over the replicas the same way.
    # (A fresh dataset each time: a second pass over one would reshuffle.)
    shards = replica_shards(strategy, single.make_dataset(train, BATCH, shuffle=True, seed=SEED))
    batches = list(single.make_dataset(train, BATCH, shuffle=True, seed=SEED))
    global_batches_match = len(shards) == len(batches) and all(
        np.array_equal(np.concatenate([x[column] for x, _ in replicas]), batch[column])
        for replicas, (batch, _) in zip(shards, batches)
        for column in batch
    )

    history = km.training.train(distributed, train, validation, epochs=1, batch_size=BATCH,
                                learning_rate=LEARNING_RATE, seed=SEED, verbose=0, strategy=strategy)
    logs = _single_process(single, shards, validation)
    return distributed, single, validation, {
        "weight_difference": max(
            float(np.max(np.abs(a.numpy() - b.numpy())))
            for a, b in zip(distributed.trainable_weights, single.trainable_weights)
        ),
        "distributed_logs": {key: values[-1] for key, values in history.history.items()},
        "single_logs": logs,
        "labelled_rows_per_replica": _labelled_rows_per_replica(shards, single),
        "global_batches_match": global_batches_match,
    }


def compare(name, hyper_parameters, train_rows, validation_rows, strategy, data):
    """`train_both`'s result, with both models' `evaluate_reports` and the state whose replica copies differ."""
    mirrored, single, validation, result = train_both(name, hyper_parameters, train_rows, validation_rows, strategy,
                                                      data)
    result["evaluate_reports"] = (
        [m.evaluate_report(validation) for m in (mirrored, single)] if validation is not None else None
    )
    result["state_copies_differ"] = [
        v.path for v in mirrored.non_trainable_weights
        if not all(np.array_equal(copy, strategy.experimental_local_results(v.value)[0])
                   for copy in strategy.experimental_local_results(v.value))
    ]
    return result


def main(out_path):
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    data = tiny_synthetic(max(train + validation for _, train, validation in CASES.values()))
    results = {name: compare(name, *case, strategy, data) for name, case in CASES.items()}
    with open(out_path, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
