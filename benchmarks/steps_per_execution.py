"""Train throughput with `steps_per_execution` 1 and 8, in one process, runs alternating.

Two copies of a model (same initial weights), each compiled with XLA and its
`steps_per_execution`, train alternately on 8 cached preprocessed batches of
ML-100K; the first round compiles and is not counted. Reported: examples/s
(median of the counted rounds) and their ratio, which holds on a busy
machine even when the absolute numbers do not.

Usage:
    python benchmarks/steps_per_execution.py --models matched_shared_bottom matched_mmoe
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from throughput import cached_batches, model_spec  # noqa: E402

import keras_mdr as km  # noqa: E402
from keras_mdr.data import public  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/ml-100k/ml-100k.csv.gz")
    parser.add_argument("--models", nargs="+", default=["matched_shared_bottom", "matched_mmoe"])
    parser.add_argument("--values", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=16, help="steps per timed fit")
    parser.add_argument("--rounds", type=int, default=6, help="rounds; the first compiles and is not counted")
    args = parser.parse_args()

    data = public.movielens(args.data, embedding_dim=16)
    print(f"| model | {' | '.join(f'train ex/s, {v}' for v in args.values)} | ratio {args.values[-1]} / "
          f"{args.values[0]} | load (1 min) |")
    print("|---|" + "---:|" * (len(args.values) + 2))
    for name in args.models:
        model_name, params = model_spec(name)
        models = {}
        for value in args.values:
            keras.utils.set_random_seed(0)
            model = km.build_model(model_name, features=data.features, domain=data.domain, tasks=data.tasks,
                                   data=data.frame, **params)
            model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True, steps_per_execution=value)
            models[value] = model
        batches = cached_batches(models[args.values[0]], data.frame, args.batch_size)
        seconds = {value: [] for value in args.values}
        for round_index in range(args.rounds):
            for value, model in models.items():
                start = time.perf_counter()
                model.fit(batches, steps_per_epoch=args.steps, epochs=1, verbose=0)
                if round_index:
                    seconds[value].append(time.perf_counter() - start)
        rates = {value: args.steps * args.batch_size / np.median(s) for value, s in seconds.items()}
        print(f"| {name} | {' | '.join(f'{rates[v]:,.0f}' for v in args.values)} | "
              f"{rates[args.values[-1]] / rates[args.values[0]]:.2f}x | {os.getloadavg()[0]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
