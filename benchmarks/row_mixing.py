"""Per-row weighted sums under XLA: `einsum` against `keras_mdr.layers.core.mixing.mix`.

The mixing step `out[b, g] = sum_e w[b, g, e] * v[b, (g,) e]` of MMoE, PLE,
HAMUR's hyper-network core and M3oE's fusion (which keeps `einsum`: see its
row in RESULTS.md), at batch 4096 and the shapes
of the matched architectures of `throughput.py --matched`: forward alone and
forward plus the gradients of a squared-sum loss, each compiled with XLA.
The two forms take turns in one process (`--rounds` rounds of `--calls`
calls each), so both see the same load; the numbers are the median
milliseconds per call over the rounds, and the speed-up is einsum / mix.

Usage:
    python benchmarks/row_mixing.py
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_mdr.layers.core.mixing import mix  # noqa: E402

# (weights shape, values shape, einsum equation) at batch B, as the matched models call them.
SHAPES = {
    "mmoe (3 experts of 16, 2 tasks)": ((2, 3), (3, 16), "bge,beh->bgh"),
    "ple (2 + 1 experts of 16 per task)": ((2, 3), (2, 3, 16), "bge,bgeh->bgh"),
    "m3oe fusion (4 shared experts of 64, 2 tasks)": ((2, 4), (4, 64), "bge,beh->bgh"),
    "hamur core (rank 32)": ((1, 32), (32, 32), "bge,beh->bgh"),
}


def with_gradients(f):
    def run(w, v):
        with tf.GradientTape() as tape:
            tape.watch([w, v])
            loss = tf.reduce_sum(tf.square(f(w, v)))
        return tape.gradient(loss, [w, v])
    return run


def milliseconds(f, w, v, calls):
    start = time.perf_counter()
    for _ in range(calls):
        out = f(w, v)
    tf.nest.map_structure(lambda t: t.numpy(), out)
    return 1000 * (time.perf_counter() - start) / calls


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print("| shape | forward, einsum | forward, mix | speed-up | with gradients, einsum | with gradients, mix "
          "| speed-up | max abs difference | load (1 min) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, (weights_shape, values_shape, equation) in SHAPES.items():
        w = tf.constant(rng.random((args.batch_size, *weights_shape), dtype=np.float32))
        v = tf.constant(rng.random((args.batch_size, *values_shape), dtype=np.float32))
        einsum = lambda w, v, equation=equation: tf.einsum(equation, w, v)  # noqa: E731
        forms = {
            "einsum": tf.function(einsum, jit_compile=True),
            "mix": tf.function(mix, jit_compile=True),
            "einsum_grad": tf.function(with_gradients(einsum), jit_compile=True),
            "mix_grad": tf.function(with_gradients(mix), jit_compile=True),
        }
        for f in forms.values():
            f(w, v)
        times = {key: [] for key in forms}
        for _ in range(args.rounds):
            for key, f in forms.items():
                times[key].append(milliseconds(f, w, v, args.calls))
        ms = {key: float(np.median(t)) for key, t in times.items()}
        difference = float(np.max(np.abs(forms["einsum"](w, v).numpy() - forms["mix"](w, v).numpy())))
        print(f"| {name} | {ms['einsum']:.3f} | {ms['mix']:.3f} | {ms['einsum'] / ms['mix']:.2f}x "
              f"| {ms['einsum_grad']:.3f} | {ms['mix_grad']:.3f} | {ms['einsum_grad'] / ms['mix_grad']:.2f}x "
              f"| {difference:.1e} | {os.getloadavg()[0]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
