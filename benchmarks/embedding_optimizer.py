"""Train step time and peak memory of shared_bottom with small and big embedding tables, per optimizer.

Keras' Adam updates every row of an embedding table every step, so its step
time grows with the table; `LazyAdam` (`keras_mdr.optimizers`), Adagrad and
SGD update only the batch's rows. An optimizer is a name of
`km.optimizers.OPTIMIZERS`, or `REST:TABLES` for `km.training.train`'s
`optimizer=REST, table_optimizer=TABLES` (`adam:adagrad`: Adagrad tables,
Adam towers). The synthetic data's `user_id` is hashed into `--rows` rows
(the other features keep their small learned vocabularies); each (rows,
optimizer) model, in a process of its own so that its peak memory is its
own, is compiled as `km.training.train` compiles it (XLA, its default
`steps_per_execution`) and trains on 8 cached preprocessed batches
(`throughput.cached_batches`), so the numeric core alone is timed.
Reported: milliseconds per train step, the median of `--repeats` timed fits
of `--steps` steps after one that compiles, the process's peak resident
memory, and the 1-minute load average at the end of each.

Usage:
    nice -n 10 python benchmarks/embedding_optimizer.py --rows 10000 1000000 10000000 \
        --optimizers adam lazy_adam adam:adagrad
"""

import argparse
import dataclasses
import os
import resource
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
from throughput import cached_batches  # noqa: E402
from timing import median_seconds  # noqa: E402

import keras_mdr as km  # noqa: E402
from keras_mdr.config import TRAINING_DEFAULTS  # noqa: E402


def measure(rows, optimizer, batch_size, steps, repeats):
    """Milliseconds per train step and peak resident MiB of shared_bottom with `rows` user_id rows."""
    data = km.data.synthetic(num_rows=8 * batch_size, num_users=100_000, seed=0)
    features = [dataclasses.replace(f, num_hash_bins=rows) if f.name == "user_id" else f for f in data.features]
    rest, _, tables = optimizer.partition(":")
    keras.utils.set_random_seed(0)
    model = km.build_model("shared_bottom", features=features, domain=data.domain, tasks=data.tasks,
                           data=data.frame, bottom_units=[128], tower_units=[8])
    # Adagrad tables usually want a larger learning rate; the step's cost does not depend on it.
    model.compile(optimizer=km.optimizers.make_optimizer(rest, 1e-3, tables or None), jit_compile=True,
                  steps_per_execution=TRAINING_DEFAULTS["steps_per_execution"])
    batches = cached_batches(model, data.frame, batch_size)
    seconds = median_seconds(lambda: model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0), repeats)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return f"| {rows:,} | {optimizer} | {1000 * seconds / steps:.1f} | {peak:,.0f} | {os.getloadavg()[0]:.1f} |"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", type=int, default=[10_000, 1_000_000], help="user_id table rows")
    parser.add_argument("--optimizers", nargs="+", default=["adam", "lazy_adam"],
                        help="names of km.optimizers.OPTIMIZERS, or REST:TABLES")
    # Not 4096 as in throughput.py: this model's XLA compile at 4096 had not ended after 5 minutes on the
    # 2-core machine at load 7-9, where batch 512 compiled in 43 s.
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=16, help="steps per timed fit")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", nargs=2, metavar=("ROWS", "OPTIMIZER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(measure(int(args.one[0]), args.one[1], args.batch_size, args.steps, args.repeats))
        return
    for optimizer in args.optimizers:
        for name in optimizer.split(":"):
            km.optimizers.check_names(name)
    print(f"batch {args.batch_size}, {args.steps} steps per timed fit, median of {args.repeats}")
    print("| user_id rows | optimizer | ms / train step | peak MiB | load (1 min) |")
    print("|---:|---|---:|---:|---:|")
    for rows in args.rows:
        for optimizer in args.optimizers:
            command = [sys.executable, __file__, "--one", str(rows), optimizer, "--batch-size", str(args.batch_size),
                       "--steps", str(args.steps), "--repeats", str(args.repeats)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            print(output.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
