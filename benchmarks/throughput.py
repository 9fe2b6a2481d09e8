"""Train and predict throughput (examples/second) at batch 4096, with and without XLA, and peak memory.

Each (model, jit_compile) pair runs in its own process so that its peak memory
is its own; each number is the median of `--repeats` timed runs after a
warm-up run that traces and compiles. The model is compiled with `km.training.train`'s
default `steps_per_execution` (`--steps-per-execution`), as a user's model is. Batches are preprocessed once and cached, so the numbers measure
the model's numeric core (the `tf.data` preprocessing runs in parallel with
training in real use). Peak memory is the process's peak resident set size
on CPU, or TensorFlow's peak device allocation on GPU. Each result is added
to `--out` as it finishes, with the load average at its end; (model, jit_compile)
pairs already there are skipped, so a stopped run resumes.

Each result also holds every timed run's rate (`train_runs`, `predict_runs`),
the matmul FLOPs per example of the forward pass as
XLA compiles it (every `dot` of the HLO at the benchmark's batch size, the
grouped dispatch's padding rows included) and the GFLOP/s achieved (a train
step counted as 3x the forward pass), to compare with `peak_flops.py`.

`--matched` measures the architectures of the side-by-side comparison with the
PyTorch reference (Scenario-Wise-Rec; `MATCHED` below) and `--markdown
--matched` prints them next to the reference numbers quoted in `REFERENCE`.

Usage:
    python benchmarks/throughput.py --models shared_bottom mmoe --out benchmarks/results/throughput.json
    python benchmarks/throughput.py --matched --out benchmarks/results/throughput_matched.json
"""

import argparse
import json
import math
import os
import re
import resource
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from movielens_quality import VARIANTS  # noqa: E402
from records import save_results  # noqa: E402
from timing import timed_seconds  # noqa: E402

from keras_mdr.config import TRAINING_DEFAULTS  # noqa: E402

# The architectures of the side-by-side comparison with the PyTorch reference, on both sides.
MATCHED = {
    "matched_shared_bottom": ("shared_bottom", {"bottom_units": [128], "tower_units": [8]}),
    "matched_mmoe": ("mmoe", {"num_experts": 3, "expert_units": [16], "tower_units": [8]}),
    "matched_ple": ("ple", {"num_levels": 1, "num_specific_experts": 2, "num_shared_experts": 1,
                            "expert_units": [16], "tower_units": [8]}),
    "matched_star": ("star", {"star_units": [128, 64, 32], "aux_units": [32]}),
    "matched_m3oe": ("m3oe", {}),
    "matched_hamur": ("hamur", {"hidden_units": [256, 128], "rank": 32, "hyper_units": [64]}),
}
# The reference's examples/s (train, predict) as measured and quoted in the speed issue: PyTorch
# Scenario-Wise-Rec on the same 2-core machine class, 2 threads, batch 4096, 8 cached batches.
REFERENCE = {
    "matched_shared_bottom": (354_901, 1_593_595),
    "matched_mmoe": (212_040, 1_105_986),
    "matched_ple": (160_647, 818_417),
    "matched_star": (81_645, 396_974),
    "matched_m3oe": (79_501, 287_654),
    "matched_hamur": (3_834, 14_063),
}
# The best float32 matmul rate `peak_flops.py` measured on the same machine class (RESULTS.md).
PEAK_GFLOPS = 419.2


def per_model_parser(doc, out, steps):
    """The arguments shared by the per-model benchmarks of the matched architectures (`throughput.MATCHED`)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/ml-100k/ml-100k.csv.gz")
    parser.add_argument("--models", nargs="+", default=list(MATCHED))
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=steps, help="batches per run (a multiple of 8)")
    parser.add_argument("--out", default=out)
    parser.add_argument("--one", metavar="MODEL", help=argparse.SUPPRESS)
    parser.add_argument("--markdown", action="store_true", help="print the tables of --out and exit")
    return parser


def model_spec(variant):
    """`(registered model, hyper-parameters)` of a benchmark variant or a plain model name."""
    return {**VARIANTS, **MATCHED}.get(variant, (variant, {}))


def cached_batches(model, frame, batch_size):
    """8 full preprocessed batches of `frame`, cached and cycled: the model's numeric core alone is timed."""
    import tensorflow as tf

    batches = model.make_dataset(frame, batch_size, shuffle=True, seed=0)
    return batches.filter(lambda x, y: tf.shape(y["click"])[0] == batch_size).take(8).cache().repeat()


DOT = re.compile(r"= f32\[([\d,]*)\]\S* dot\(f32\[([\d,]*)\]\S* %[^,]+, .*lhs_contracting_dims=\{([\d,]*)\}")


def forward_flops_per_example(model, inputs):
    """Matmul FLOPs per example of the forward pass as XLA compiles it, from the HLO's `dot`s."""
    import tensorflow as tf

    forward = tf.function(lambda x: model(x, training=False), jit_compile=True)
    hlo = forward.experimental_get_compiler_ir(inputs)(stage="hlo")
    flops = 0
    for result, lhs, contracting in DOT.findall(hlo):
        lhs = [int(d) for d in lhs.split(",") if d]
        flops += 2 * math.prod(int(d) for d in result.split(",") if d) * math.prod(
            lhs[int(i)] for i in contracting.split(",") if i
        )
    return flops / next(iter(inputs.values())).shape[0]


def compiled_model(variant, data_path, jit_compile, steps_per_execution):
    """`(model, data)`: the benchmark variant built on ML-100K (seed 0) and compiled with Adam."""
    import keras

    import keras_mdr as km
    from keras_mdr.data import public

    model_name, params = model_spec(variant)
    data = public.movielens(data_path, embedding_dim=16)
    keras.utils.set_random_seed(0)
    model = km.build_model(model_name, features=data.features, domain=data.domain, tasks=data.tasks,
                           data=data.frame, **params)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile,
                  steps_per_execution=steps_per_execution)
    assert model.jit_compile == jit_compile
    return model, data


def measure(variant, jit_compile, data_path, batch_size, steps, repeats, steps_per_execution):
    import keras
    import tensorflow as tf

    model, data = compiled_model(variant, data_path, jit_compile, steps_per_execution)
    batches = cached_batches(model, data.frame, batch_size)
    inputs = batches.map(lambda x, y: x)

    train_seconds = timed_seconds(lambda: model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0), repeats)
    # keras.Model.predict: the batches are already preprocessed.
    predict_seconds = timed_seconds(lambda: keras.Model.predict(model, inputs, steps=steps, verbose=0), repeats)
    flops = forward_flops_per_example(model, next(iter(inputs)))
    train_rates, predict_rates = (
        [steps * batch_size / t for t in sorted(times)] for times in (train_seconds, predict_seconds)
    )
    train_rate, predict_rate = train_rates[repeats // 2], predict_rates[repeats // 2]

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
        "steps_per_execution": steps_per_execution,
        "repeats": repeats,
        "train_examples_per_second": round(train_rate),
        "predict_examples_per_second": round(predict_rate),
        # Every timed run's rate, fastest first: the spread behind the median.
        "train_runs": [round(r) for r in train_rates],
        "predict_runs": [round(r) for r in predict_rates],
        "forward_flops_per_example": round(flops),
        "train_gflops": round(3 * flops * train_rate / 1e9, 1),
        "predict_gflops": round(flops * predict_rate / 1e9, 1),
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


def matched_markdown(results):
    """Our XLA numbers next to the reference's, as ratios."""
    lines = [
        "| model | train ref | train keras_mdr | ratio | predict ref | predict keras_mdr | ratio "
        "| forward FLOPs/ex | train GFLOP/s (% of peak) | predict GFLOP/s (% of peak) | load (1 min) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if not r["jit_compile"] or r["model"] not in REFERENCE:
            continue
        train_ref, predict_ref = REFERENCE[r["model"]]
        train, predict = r["train_examples_per_second"], r["predict_examples_per_second"]
        lines.append(
            f"| {r['model'].removeprefix('matched_')} | {train_ref:,} | {train:,} | {train / train_ref:.2f}x | "
            f"{predict_ref:,} | {predict:,} | {predict / predict_ref:.2f}x | {r['forward_flops_per_example']:,} | "
            f"{r['train_gflops']} ({100 * r['train_gflops'] / PEAK_GFLOPS:.0f}%) | "
            f"{r['predict_gflops']} ({100 * r['predict_gflops'] / PEAK_GFLOPS:.0f}%) | {r['load_average'][0]:.1f} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/ml-100k/ml-100k.csv.gz")
    parser.add_argument("--models", nargs="+", default=["shared_bottom", "mmoe", "ple", "star"])
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=24, help="steps per timed run (a multiple of the next)")
    parser.add_argument("--steps-per-execution", type=int, default=TRAINING_DEFAULTS["steps_per_execution"])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the median is reported")
    parser.add_argument("--out", default="benchmarks/results/throughput.json")
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "JIT"), help=argparse.SUPPRESS)
    parser.add_argument("--markdown", action="store_true", help="print the table of --out and exit")
    parser.add_argument("--matched", action="store_true",
                        help="the architectures matched with the PyTorch reference (replaces --models)")
    parser.add_argument("--xla-only", action="store_true", help="measure jit_compile=True only")
    args = parser.parse_args()
    if args.markdown:
        results = json.load(open(args.out))
        print(matched_markdown(results) if args.matched else markdown(results))
        return
    if args.matched:
        args.models = list(MATCHED)

    if args.one:
        variant, jit = args.one
        print(json.dumps(measure(variant, jit == "True", args.data, args.batch_size, args.steps, args.repeats,
                                 args.steps_per_execution)))
        return

    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    results = json.load(open(args.out)) if os.path.exists(args.out) else []
    for variant in args.models:
        for jit in (True,) if args.xla_only else (False, True):
            if any((r["model"], r["jit_compile"]) == (variant, jit) for r in results):
                continue
            command = [sys.executable, __file__, "--one", variant, str(jit), "--data", args.data,
                       "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--repeats", str(args.repeats),
                       "--steps-per-execution", str(args.steps_per_execution)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            result = json.loads(output.strip().splitlines()[-1])
            results.append(result)
            print(json.dumps(result), flush=True)
            save_results(results, args.out)


if __name__ == "__main__":
    main()
