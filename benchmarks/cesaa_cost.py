"""Cost of CESAA's sparse experts vs. a dense mixture of the same experts, as N grows.

For N = 4, 16, 64 selectable experts (K = 2 chosen per row, S = 1 shared),
times an XLA-compiled train step (forward, backward, SGD update; auxiliary
losses included) and an XLA-compiled predict of:

- sparse: `ConditionalExperts` (training with the capacity dispatch, and with
  the drop-free grouped dispatch; predict always grouped);
- dense: the same shared expert plus all N experts on every row, mixed by a
  softmax gate on `[x ; e_d]` (MMoE-style, no routing).

and prints / writes examples per second and the forward FLOPs per example
from the formulas (a multiply-add is 2 FLOPs; training is about 3x forward).

    python benchmarks/cesaa_cost.py --output benchmarks/results/cesaa_cost.md
"""

import argparse
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

from keras_mdr.layers import ConditionalExperts, ExpertBank  # noqa: E402


class DenseMixture(keras.layers.Layer):
    """The dense baseline: `mean(shared) + sum_{j=1..N} softmax([x ; e_d] W)_j Expert_j(x)`."""

    def __init__(self, units, num_experts, num_domains, domain_embedding_dim=8, **kwargs):
        super().__init__(**kwargs)
        self.num_domains, self.domain_embedding_dim = num_domains, domain_embedding_dim
        self.shared_experts = ExpertBank(1, units, name="shared_experts")
        self.experts = ExpertBank(num_experts, units, name="experts")
        self.gate = keras.layers.Dense(num_experts, name="gate")

    def build(self, inputs_shape, domain_ids_shape=None):
        self.domain_embedding = self.add_weight(
            name="domain_embedding", shape=(self.num_domains, self.domain_embedding_dim)
        )
        self.shared_experts.build(inputs_shape)
        self.experts.build(inputs_shape)
        self.gate.build((None, inputs_shape[-1] + self.domain_embedding_dim))

    def call(self, inputs, domain_ids):
        z = ops.concatenate([inputs, ops.take(self.domain_embedding, domain_ids, axis=0)], axis=-1)
        weights = ops.softmax(self.gate(z), axis=-1)
        mixed = ops.einsum("be,beh->bh", weights, self.experts(inputs))
        return ops.mean(self.shared_experts(inputs), axis=1) + mixed


def expert_flops(width, units):
    widths = [width] + list(units)
    return 2 * sum(i * o for i, o in zip(widths, widths[1:]))


def time_steps(step, args, steps, repeats):
    """Seconds per step: the fastest of `repeats` runs of `steps` steps (the machine is shared)."""
    float(ops.sum(step(*args)))  # compile
    float(ops.sum(step(*args)))  # warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            result = step(*args)
        float(ops.sum(result))
        times.append((time.perf_counter() - start) / steps)
    return min(times)


def measure(layer, x, domain_ids, steps, repeats):
    layer(x[:2], domain_ids[:2])
    optimizer = keras.optimizers.SGD(1e-3)
    optimizer.build(layer.trainable_variables)

    @tf.function(jit_compile=True)
    def train_step(x, domain_ids):
        with tf.GradientTape() as tape:
            y = layer(x, domain_ids, training=True)
            loss = tf.reduce_mean(tf.square(y)) + tf.add_n([tf.constant(0.0)] + list(layer.losses))
        grads = tape.gradient(loss, layer.trainable_variables)
        optimizer.apply(grads, layer.trainable_variables)
        return loss

    @tf.function(jit_compile=True)
    def predict_step(x, domain_ids):
        return layer(x, domain_ids, training=False)

    batch = x.shape[0]
    train = batch / time_steps(train_step, (x, domain_ids), steps, repeats)
    predict = batch / time_steps(predict_step, (x, domain_ids), steps, repeats)
    return train, predict


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--width", type=int, default=128, help="input width F")
    parser.add_argument("--units", type=int, nargs="+", default=[128, 64], help="expert layer widths")
    parser.add_argument("--experts", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--capacity-factor", type=float, default=1.25)
    parser.add_argument("--tile-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="the fastest repeat is reported")
    parser.add_argument("--output", default=None, help="write the results as markdown here")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    num_domains, domain_dim, shared = 3, 8, 1
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(args.batch_size, args.width)).astype("float32"))
    domain_ids = tf.constant(rng.integers(0, num_domains, args.batch_size).astype("int32"))
    e = expert_flops(args.width, args.units)
    gate_width = args.width + domain_dim

    # The gate noise alone: `keras.random.normal([B, N])` under XLA.
    seed = keras.random.SeedGenerator(0)
    noise_step = tf.function(lambda shape: keras.random.normal(shape, seed=seed), jit_compile=True)

    rows = []
    for n in args.experts:
        sparse = {}
        for dispatch, noisy in (("capacity", True), ("capacity", False), ("grouped", True)):
            layer = ConditionalExperts(
                args.units, n, args.top_k, num_domains, num_shared_experts=shared,
                domain_embedding_dim=domain_dim, noisy_gating=noisy, capacity_factor=args.capacity_factor,
                dispatch=dispatch, tile_size=args.tile_size,
            )
            sparse[dispatch, noisy] = measure(layer, x, domain_ids, args.steps, args.repeats)
        dense_layer = DenseMixture(args.units, n, num_domains, domain_dim)
        dense = measure(dense_layer, x, domain_ids, args.steps, args.repeats)
        noise_ms = 1000 * time_steps(noise_step, ((args.batch_size, n),), args.steps, args.repeats)
        gate = 2 * gate_width * n
        flops = {
            "sparse_predict": (shared + args.top_k) * e + gate,
            "sparse_train": (shared + args.capacity_factor * args.top_k) * e + 2 * gate,
            "dense": (shared + n) * e + gate,
        }
        row = (
            n,
            sparse["capacity", True][0],
            sparse["capacity", False][0],
            sparse["grouped", True][0],
            dense[0],
            sparse["capacity", True][1],
            dense[1],
            noise_ms,
            flops,
        )
        rows.append(row)
        print(
            f"N={n:3d}  train ex/s: capacity {row[1]:9.0f}  capacity no noise {row[2]:9.0f}  grouped "
            f"{row[3]:9.0f}  dense {row[4]:9.0f}  |  predict ex/s: sparse {row[5]:9.0f}  dense {row[6]:9.0f}  |  "
            f"gate noise {noise_ms:.1f} ms  |  "
            "fwd MFLOP/ex: "
            f"sparse train {flops['sparse_train'] / 1e6:.3f} predict {flops['sparse_predict'] / 1e6:.3f} "
            f"dense {flops['dense'] / 1e6:.3f}",
            flush=True,
        )

    if args.output:
        write_markdown(args, rows, e, gate_width, shared)


def write_markdown(args, rows, e, gate_width, shared):
    command = "python " + " ".join([os.path.relpath(__file__)] + sys.argv[1:])
    lines = [
        "# CESAA: sparse conditional experts vs. a dense mixture",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Machine: {platform.machine()} CPU, {os.cpu_count()} cores, shared with other jobs (numbers are noisy;",
        "compare within a row). TensorFlow "
        f"{tf.__version__}, Keras {keras.__version__}, XLA (`jit_compile=True`) for every step.",
        f"Batch {args.batch_size}, input width F = {args.width}, experts MLP {args.units} (relu), "
        f"K = {args.top_k}, S = {shared} shared expert, D = 3 domains, capacity factor "
        f"{args.capacity_factor}, tile {args.tile_size}; after compile + 1 warm step, "
        f"the fastest of {args.repeats} runs of {args.steps} steps.",
        "Train: forward + backward + SGD update (the sparse layer's MI and load-balancing losses on, "
        "default weights). "
        "Predict: forward at inference (sparse: drop-free grouped dispatch).",
        "",
        "| N | train ex/s sparse (capacity) | sparse (capacity, no gate noise) | sparse (grouped) | dense "
        "| train speed-up (capacity / dense) | predict ex/s sparse (grouped) | predict ex/s dense "
        "| predict speed-up |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n, cap, quiet, grp, dense_train, sp, dense_predict, _, _ in rows:
        lines.append(
            f"| {n} | {cap:,.0f} | {quiet:,.0f} | {grp:,.0f} | {dense_train:,.0f} | {cap / dense_train:.2f}x | "
            f"{sp:,.0f} | {dense_predict:,.0f} | {sp / dense_predict:.2f}x |"
        )
    lines += [
        "",
        "Gate noise alone (`keras.random.normal([B, N])` under XLA, the noisy gate's only O(B N) random work), "
        "ms per call: "
        + ", ".join(f"N = {n}: {row[-2]:.1f}" for n, *row in rows)
        + ".",
    ]
    lines += [
        "",
        "Forward FLOPs per example from the formulas (a multiply-add = 2 FLOPs; a train step is about 3x): "
        f"one expert `e = 2 * sum(in * out)` = {e:,}; gate `2 (F + 8) N` (twice in training: the noise "
        "projection).",
        "",
        "| N | sparse predict `(S + K) e + gate` | + grouped padding, at most `N (t - 1) e / B` "
        "| sparse train `(S + cf K) e + 2 gate` | dense `(S + N) e + gate` | dense / sparse predict |",
        "|---|---|---|---|---|---|",
    ]
    for n, *_, flops in rows:
        padding = n * (args.tile_size - 1) * e / args.batch_size
        lines.append(
            f"| {n} | {flops['sparse_predict']:,.0f} | {padding:,.0f} | {flops['sparse_train']:,.0f} | "
            f"{flops['dense']:,.0f} | {flops['dense'] / flops['sparse_predict']:.1f}x |"
        )
    lines.append("")
    with open(args.output, "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
