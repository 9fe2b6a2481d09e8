"""One worker of a two-process `MultiWorkerMirroredStrategy` run on TFRecord shards; writes what it read as JSON.

Run by `test_input_pipeline.py`, twice, with `TF_CONFIG` naming a cluster of
two workers on 127.0.0.1. Usage: `python multi_worker_files.py DIR`: `DIR`
holds `rows-*.tfrecord` (shards of unequal size, with a `row` column) and
`train-*.tfrecord`; worker `i` writes `DIR/read{i}.json`: the `row` values its
replicas received through `distribute_dataset` with `shard_policy`'s policy,
and the epochs `keras_mdr.training.train` completed on the train shards.
"""

import glob
import json
import os
import sys

import tensorflow as tf

# Before TensorFlow starts its runtime, which the strategy must configure.
STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()

import keras  # noqa: E402

import keras_mdr as km  # noqa: E402
from keras_mdr.training.distributed import distribute_dataset, shard_policy  # noqa: E402


def main(folder):
    data = km.testing.tiny_synthetic(300)
    features, domain = km.adapt(data.features, data.domain, data.frame)
    rows = sorted(glob.glob(os.path.join(folder, "rows-*.tfrecord")))
    policy = shard_policy(STRATEGY, rows)
    batches = km.data.file_dataset(rows, [km.DenseFeature("row")], domain, batch_size=8)
    seen = []
    for batch in distribute_dataset(STRATEGY, batches, policy):
        for part in STRATEGY.experimental_local_results(batch):
            seen.extend(int(r) for r in part["row"].numpy())

    keras.utils.set_random_seed(1)
    with STRATEGY.scope():
        model = km.build_model("shared_bottom", features=features, domain=domain, tasks=data.tasks,
                               bottom_units=[8], tower_units=[4])
    history = km.training.train(model, os.path.join(folder, "train-*.tfrecord"), epochs=2, batch_size=32,
                                seed=1, strategy=STRATEGY, verbose=0)
    result = {"policy": policy.name, "rows": seen, "epochs": len(history.history["loss"])}
    with open(os.path.join(folder, f"read{STRATEGY.cluster_resolver.task_id}.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1])
