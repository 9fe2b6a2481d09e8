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
"""

import json
import sys

import tensorflow as tf

_CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import keras_mdr as km  # noqa: E402
from keras_mdr.testing import tiny_synthetic  # noqa: E402

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


def compare(name, hyper_parameters, train_rows, validation_rows, strategy, data):
    train = data.frame.iloc[:train_rows]
    validation = data.frame.iloc[train_rows:train_rows + validation_rows] if validation_rows else None
    keras.utils.set_random_seed(SEED)
    with strategy.scope():
        mirrored = km.build_model(name, data.features, data.domain, data.tasks, data=data.frame, **hyper_parameters)
    single = km.build_model(name, data.features, data.domain, data.tasks, data=data.frame, **hyper_parameters)
    single.set_weights(mirrored.get_weights())

    # The batches `train` will draw: the same shuffle seed, split over the replicas the same way.
    dataset = strategy.experimental_distribute_dataset(mirrored.make_dataset(train, BATCH, shuffle=True, seed=SEED))
    shards = [list(zip(*(strategy.experimental_local_results(part) for part in batch))) for batch in dataset]

    history = km.training.train(mirrored, train, validation, epochs=1, batch_size=BATCH,
                                learning_rate=LEARNING_RATE, seed=SEED, verbose=0, strategy=strategy)
    logs = _single_process(single, shards, validation)
    reports = [m.evaluate_report(validation) for m in (mirrored, single)] if validation is not None else None
    return {
        "evaluate_reports": reports,
        "weight_difference": max(
            float(np.max(np.abs(a.numpy() - b.numpy())))
            for a, b in zip(mirrored.trainable_weights, single.trainable_weights)
        ),
        "state_copies_differ": [
            v.path for v in mirrored.non_trainable_weights
            if not all(np.array_equal(copy, strategy.experimental_local_results(v.value)[0])
                       for copy in strategy.experimental_local_results(v.value))
        ],
        "mirrored_logs": {key: values[-1] for key, values in history.history.items()},
        "single_logs": logs,
        "labelled_rows_per_replica": _labelled_rows_per_replica(shards, single),
    }


def main(out_path):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    data = tiny_synthetic(max(train + validation for _, train, validation in CASES.values()))
    results = {name: compare(name, *case, strategy, data) for name, case in CASES.items()}
    with open(out_path, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
