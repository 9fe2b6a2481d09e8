"""One worker of a two-process `MultiWorkerMirroredStrategy` run; writes what differs from one process as JSON.

Run by `test_distributed.py`, twice, with `TF_CONFIG` naming a cluster of
two workers on 127.0.0.1 and this one's index. Usage:
`python multi_worker_equivalence.py OUT_DIR NAME...` (names of
`mirrored_equivalence.CASES`); worker `i` writes `OUT_DIR/results{i}.json`,
`{name: result}`.

Each worker builds the model under the strategy's scope, trains it with
`keras_mdr.training.train(..., strategy=...)` on its replica's part of each
global batch, and trains a single-process copy on the same global batches
(every replica's part, gathered over the cluster) as
`mirrored_equivalence.py` does; the results are that comparison's, with
both models' `evaluate_report` of the validation rows (the distributed one
by keras_mdr's step loop: Keras' `evaluate` fails under this strategy).
"""

import json
import os
import sys

import tensorflow as tf

# Before TensorFlow starts its runtime, which the strategy must configure.
STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()

from mirrored_equivalence import CASES, compare  # noqa: E402

from keras_mdr.testing import tiny_synthetic  # noqa: E402


def main(out_dir, names):
    data = tiny_synthetic(max(CASES[name][1] + CASES[name][2] for name in names))
    results = {name: compare(name, *CASES[name], STRATEGY, data) for name in names}
    with open(os.path.join(out_dir, f"results{STRATEGY.cluster_resolver.task_id}.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
