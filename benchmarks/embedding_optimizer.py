"""Train step time of shared_bottom with a small and a big embedding table, under Adam and LazyAdam.

Keras' Adam updates every row of an embedding table every step, so its step
time grows with the table; `LazyAdam` (`keras_mdr.optimizers`) updates only
the batch's rows. The synthetic data's `user_id` is hashed into `--rows`
rows (the other features keep their small learned vocabularies); each
(rows, optimizer) model is compiled as `km.training.train` compiles it (XLA,
its default `steps_per_execution`) and trains on 8 cached preprocessed
batches (`throughput.cached_batches`), so the numeric core alone is timed.
Reported: milliseconds per train step, the median of `--repeats` timed fits
of `--steps` steps after one that compiles, and the 1-minute load average at
the end of each.

Usage:
    nice -n 10 python benchmarks/embedding_optimizer.py --rows 10000 1000000 --optimizers adam lazy_adam
"""

import argparse
import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
from throughput import cached_batches  # noqa: E402
from timing import median_seconds  # noqa: E402

import keras_mdr as km  # noqa: E402
from keras_mdr.config import TRAINING_DEFAULTS  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", type=int, default=[10_000, 1_000_000], help="user_id table rows")
    parser.add_argument("--optimizers", nargs="+", default=["adam", "lazy_adam"],
                        choices=list(km.optimizers.OPTIMIZERS))
    # Not 4096 as in throughput.py: this model's XLA compile at 4096 had not ended after 5 minutes on the
    # 2-core machine at load 7-9, where batch 512 compiled in 43 s.
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=16, help="steps per timed fit")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    data = km.data.synthetic(num_rows=8 * args.batch_size, num_users=100_000, seed=0)
    print(f"batch {args.batch_size}, {args.steps} steps per timed fit, median of {args.repeats}")
    print("| user_id rows | optimizer | ms / train step | load (1 min) |")
    print("|---:|---|---:|---:|")
    for rows in args.rows:
        features = [dataclasses.replace(f, num_hash_bins=rows) if f.name == "user_id" else f for f in data.features]
        for name in args.optimizers:
            keras.utils.set_random_seed(0)
            model = km.build_model("shared_bottom", features=features, domain=data.domain, tasks=data.tasks,
                                   data=data.frame, bottom_units=[128], tower_units=[8])
            model.compile(optimizer=km.optimizers.OPTIMIZERS[name](1e-3), jit_compile=True,
                          steps_per_execution=TRAINING_DEFAULTS["steps_per_execution"])
            batches = cached_batches(model, data.frame, args.batch_size)
            seconds = median_seconds(
                lambda: model.fit(batches, steps_per_epoch=args.steps, epochs=1, verbose=0),  # noqa: B023
                args.repeats,
            )
            print(f"| {rows:,} | {name} | {1000 * seconds / args.steps:.1f} | {os.getloadavg()[0]:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
