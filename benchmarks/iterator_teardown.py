"""tf.data autotuning and the end of an iterator: teardown time, and fit and predict calls, with it on and off.

`teardown`: a pipeline shaped like `make_dataset`'s (a parallel map and a
prefetch, both `AUTOTUNE`) is iterated for `--seconds`, then its iterator is
destroyed and the destruction timed; `--repeats` times per length, autotuning
on and off taking turns.

`parallelism`: how many calls of a `--sleep-ms` Python function a map with
`num_parallel_calls=AUTOTUNE` runs at a time, autotuning on and off.

`calls`: one matched model (`throughput.MATCHED`, XLA) runs `--calls` fit and
predict calls of `--steps` batches on `throughput.py`'s 8 cached batches, the
calls taking turns between the pipeline with autotuning on and the same
pipeline with it off (keras_mdr's default), so both see the same machine.

Usage:
    python benchmarks/iterator_teardown.py --out benchmarks/results/iterator_teardown.json
    python benchmarks/iterator_teardown.py --markdown --out benchmarks/results/iterator_teardown.json
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

from records import recorded_arguments, save_results  # noqa: E402


def autotuned(dataset, enabled):
    """`dataset` with tf.data's autotuning on or off (the later option wins over `make_dataset`'s)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = enabled
    return dataset.with_options(options)


def teardown_seconds(seconds, enabled):
    """Seconds to destroy the iterator of a parallel map and prefetch after iterating it for `seconds`."""
    import tensorflow as tf

    dataset = tf.data.Dataset.range(2**40).map(lambda x: 2 * x, num_parallel_calls=tf.data.AUTOTUNE)
    iterator = iter(autotuned(dataset.prefetch(tf.data.AUTOTUNE), enabled))
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(iterator)
    end = time.perf_counter()
    del iterator
    return time.perf_counter() - end


def teardown(args):
    rows = []
    for seconds in args.seconds:
        times = {True: [], False: []}
        for _ in range(args.repeats):
            for enabled in (True, False):
                times[enabled].append(teardown_seconds(seconds, enabled))
        for enabled in (True, False):
            milliseconds = [round(1e3 * t, 1) for t in times[enabled]]
            rows.append({"seconds": seconds, "autotune": enabled, "teardown_ms": milliseconds})
    return rows


def parallelism(args):
    """Calls of a sleeping Python function run at a time by an `AUTOTUNE` map, autotuning on and off."""
    import tensorflow as tf

    def sleep(x):
        time.sleep(args.sleep_ms / 1e3)
        return x

    rows = []
    for enabled in (True, False):
        dataset = tf.data.Dataset.range(200).map(lambda x: tf.numpy_function(sleep, [x], tf.int64),
                                                 num_parallel_calls=tf.data.AUTOTUNE)
        start = time.perf_counter()
        count = sum(1 for _ in autotuned(dataset.prefetch(tf.data.AUTOTUNE), enabled))
        seconds = time.perf_counter() - start
        rows.append({"autotune": enabled, "calls_at_a_time": round(count * args.sleep_ms / 1e3 / seconds, 2)})
    return rows


def calls(args):
    import keras

    import throughput

    model, data = throughput.compiled_model(args.model, args.data, True, 8)
    cached = throughput.cached_batches(model, data.frame, 4096)
    batches = {enabled: autotuned(cached, enabled) for enabled in (True, False)}
    examples = args.steps * 4096
    rates = {(kind, enabled): [] for kind in ("train", "predict") for enabled in (True, False)}
    for call in range(args.calls + 1):  # the first call of each compiles and is left out
        for enabled in (True, False):
            start = time.perf_counter()
            model.fit(batches[enabled], steps_per_epoch=args.steps, epochs=1, verbose=0)
            fit = time.perf_counter() - start
            start = time.perf_counter()
            keras.Model.predict(model, batches[enabled].map(lambda x, y: x), steps=args.steps, verbose=0)
            predict = time.perf_counter() - start
            if call:
                rates["train", enabled].append(round(examples / fit))
                rates["predict", enabled].append(round(examples / predict))
    return [{"model": args.model, "call": kind, "autotune": enabled, "examples_per_second": r}
            for (kind, enabled), r in rates.items()]


def markdown(results):
    lines = [
        "| iterated (s) | autotune | teardown median (ms) | teardown max (ms) | teardowns over 5 ms |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in results["teardown"]:
        t = r["teardown_ms"]
        lines.append(f"| {r['seconds']} | {r['autotune']} | {np.median(t):.1f} | {max(t):.1f} | "
                     f"{sum(x > 5 for x in t)} of {len(t)} |")
    lines += ["", "| autotune | AUTOTUNE map: calls at a time |", "|---|---:|"]
    lines += [f"| {r['autotune']} | {r['calls_at_a_time']} |" for r in results["parallelism"]]
    lines += [
        "",
        "| model | call | autotune | median ex/s | slowest ex/s | fastest ex/s | calls under 2/3 of the fastest |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in results["calls"]:
        rates = r["examples_per_second"]
        slow = sum(x < 2 / 3 * max(rates) for x in rates)
        lines.append(f"| {r['model'].removeprefix('matched_')} | {r['call']} | {r['autotune']} | "
                     f"{round(np.median(rates)):,} | {min(rates):,} | {max(rates):,} | {slow} of {len(rates)} |")
    return "\n".join(lines) + f"\n\nload average (1, 5, 15 min) at the end: {results['load_average']}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/ml-100k/ml-100k.csv.gz")
    parser.add_argument("--model", default="matched_shared_bottom")
    parser.add_argument("--seconds", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.4, 0.8, 1.6])
    parser.add_argument("--repeats", type=int, default=8, help="teardowns per length and setting")
    parser.add_argument("--sleep-ms", type=float, default=10.0, help="the mapped function's sleep")
    parser.add_argument("--calls", type=int, default=20, help="fit and predict calls per setting")
    parser.add_argument("--steps", type=int, default=96, help="batches per call (a multiple of 8)")
    parser.add_argument("--out", default="benchmarks/results/iterator_teardown.json")
    parser.add_argument("--markdown", action="store_true", help="print the tables of --out and exit")
    args = parser.parse_args()
    if not args.markdown:
        results = {"arguments": recorded_arguments(args), "teardown": teardown(args),
                   "parallelism": parallelism(args), "calls": calls(args),
                   "load_average": [round(x, 2) for x in os.getloadavg()]}
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        save_results(results, args.out)
    print(markdown(json.load(open(args.out))))


if __name__ == "__main__":
    main()
