"""Train and predict throughput (examples/second) at batch 4096, with and without XLA, and peak memory.

Each (model, jit_compile) pair runs in its own process so that its peak memory
is its own; each number is the median of `--repeats` timed runs after a
warm-up run that traces and compiles. Batches are preprocessed once and cached, so the numbers measure
the model's numeric core (the `tf.data` preprocessing runs in parallel with
training in real use). Peak memory is the process's peak resident set size
on CPU, or TensorFlow's peak device allocation on GPU. Each result is added
to `--out` as it finishes, with the load average at its end; (model, jit_compile)
pairs already there are skipped, so a stopped run resumes.

Usage:
    python benchmarks/throughput.py --models shared_bottom mmoe --out benchmarks/results/throughput.json
"""

import argparse
import json
import os
import resource
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from movielens_quality import VARIANTS  # noqa: E402
from records import save_results  # noqa: E402
from timing import median_seconds  # noqa: E402


def measure(variant, jit_compile, data_path, batch_size, steps, repeats):
    import keras
    import tensorflow as tf

    import keras_mdr as km
    from keras_mdr.data import public

    model_name, params = VARIANTS.get(variant, (variant, {}))
    data = public.movielens(data_path, embedding_dim=16)
    keras.utils.set_random_seed(0)
    model = km.build_model(model_name, features=data.features, domain=data.domain, tasks=data.tasks,
                           data=data.frame, **params)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile)
    assert model.jit_compile == jit_compile
    batches = model.make_dataset(data.frame, batch_size, shuffle=True, seed=0)
    batches = batches.filter(lambda x, y: tf.shape(y["click"])[0] == batch_size).take(8).cache().repeat()
    inputs = batches.map(lambda x, y: x)

    train_seconds = median_seconds(lambda: model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0), repeats)
    # keras.Model.predict: the batches are already preprocessed.
    predict_seconds = median_seconds(lambda: keras.Model.predict(model, inputs, steps=steps, verbose=0), repeats)

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
        memory = {"peak_gpu_mib": round(peak, 1)}
    else:
        memory = {"peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    return {
        "model": variant,
        "jit_compile": jit_compile,
        "batch_size": batch_size,
        "steps": steps,
        "repeats": repeats,
        "train_examples_per_second": round(steps * batch_size / train_seconds),
        "predict_examples_per_second": round(steps * batch_size / predict_seconds),
        "parameters": model.count_params(),
        "device": "GPU" if gpus else "CPU",
        **memory,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def markdown(results):
    """A markdown table of a results file."""
    memory = "peak_gpu_mib" if "peak_gpu_mib" in results[0] else "peak_rss_mib"
    lines = [
        f"| model | jit_compile | train ex/s | predict ex/s | parameters | {memory} | load average (1 min) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        load = f"{r['load_average'][0]:.1f}" if "load_average" in r else "-"
        lines.append(
            f"| {r['model']} | {r['jit_compile']} | {r['train_examples_per_second']:,} | "
            f"{r['predict_examples_per_second']:,} | {r['parameters']:,} | {r[memory]:,} | {load} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/ml-100k/ml-100k.csv.gz")
    parser.add_argument("--models", nargs="+", default=["shared_bottom", "mmoe", "ple", "star"])
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the median is reported")
    parser.add_argument("--out", default="benchmarks/results/throughput.json")
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "JIT"), help=argparse.SUPPRESS)
    parser.add_argument("--markdown", action="store_true", help="print the table of --out and exit")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.load(open(args.out))))
        return

    if args.one:
        variant, jit = args.one
        print(json.dumps(measure(variant, jit == "True", args.data, args.batch_size, args.steps, args.repeats)))
        return

    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    results = json.load(open(args.out)) if os.path.exists(args.out) else []
    for variant in args.models:
        for jit in (False, True):
            if any((r["model"], r["jit_compile"]) == (variant, jit) for r in results):
                continue
            command = [sys.executable, __file__, "--one", variant, str(jit), "--data", args.data,
                       "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--repeats", str(args.repeats)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            result = json.loads(output.strip().splitlines()[-1])
            results.append(result)
            print(json.dumps(result), flush=True)
            save_results(results, args.out)


if __name__ == "__main__":
    main()
