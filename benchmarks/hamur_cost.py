"""HAMUR's adapter cell: the reassociated low-rank product vs materialising the per-row weights.

`HyperAdapter` evaluates `z (U H V)` as `((z U) H) V`. The naive form builds
each row's weight `W = U H V` (`[B, m, h]`) and multiplies `z` by it. This
script times both, at batch 4096, for the cell alone and for a whole HAMUR
model (MLP backbone, default hyper-parameters), and prints the forward FLOPs
per example of each from the formulas below. The naive form lives here only:
it is swapped in by patching `HyperAdapter.low_rank_product` while its
variant is built and traced.

FLOPs are 2 x multiply-adds, forward pass, per example (training costs about
3x). For a cell on width m with bottleneck h and rank k:
    reassociated:  2 [k (m + h) + k^2]  per projection pair, i.e. 4 k (m + h) + 4 k^2
    materialised:  2 [i k^2 + i k j + i j] per projection (i -> j), i.e. for
                   m -> h and h -> m: 2 [(m + h) k^2 + 2 m k h + 2 m h]
(the materialised count is for the order `(U H) V`, the one run here; the
other order, `U (H V)`, changes `i k^2` into `k^2 j` and the ratio barely.)

Each timing is the median of `--repeats` runs of `--steps` batches after a
warm-up run that traces and compiles; both variants run in the same process,
one after the other, so compare them only as ratios within one run.

Usage:
    python benchmarks/hamur_cost.py --steps 5 --repeats 3 --out benchmarks/results/hamur_cost.md
"""

import argparse
import contextlib
import os
import sys
from unittest import mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

import keras_mdr as km  # noqa: E402
from keras_mdr.layers import HyperAdapter  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import median_seconds  # noqa: E402


def materialised_product(x, hyper, left, right):
    """`x_b (left H_b right)` with the per-row weight `[B, i, j]` built first: the naive form."""
    weights = ops.matmul(ops.einsum("ik,bkl->bil", left, hyper), right)
    return ops.einsum("bi,bij->bj", x, weights)


VARIANTS = {
    "reassociated": contextlib.nullcontext,
    "materialised": lambda: mock.patch.object(HyperAdapter, "low_rank_product", staticmethod(materialised_product)),
}


def cell_flops(m, h, k):
    """Forward FLOPs per example of one cell: `(reassociated, materialised)`."""
    reassociated = 2 * (2 * k * (m + h) + 2 * k * k)

    def materialised(i, j):
        return 2 * (i * k * k + i * k * j + i * j)

    return reassociated, materialised(m, h) + materialised(h, m)


def dense_flops(widths):
    return sum(2 * a * b for a, b in zip(widths[:-1], widths[1:]))


def model_flops(width_in, hidden, adapter_widths, hyper_units, tower_units, num_tasks, k, h):
    """Forward FLOPs per example of a HAMUR MLP model: `(reassociated, materialised)`.

    The routed hidden layers and towers cost one domain's tower per row (tile
    padding ignored); embedding lookups and the norms are left out.
    """
    backbone = (
        dense_flops([width_in] + list(hyper_units) + [k * k])
        + dense_flops([width_in] + list(hidden))
        + num_tasks * dense_flops([hidden[-1]] + list(tower_units) + [1])
    )
    cells = [cell_flops(m, h, k) for m in adapter_widths]
    return backbone + sum(c[0] for c in cells), backbone + sum(c[1] for c in cells)


def measure_cell(variant, args):
    rng = np.random.default_rng(0)
    b, m = args.batch_size, args.cell_width
    z = tf.constant(rng.normal(size=(b, m)).astype("float32"))
    hyper = tf.constant(rng.normal(size=(b, args.rank, args.rank)).astype("float32") / args.rank)
    domain_ids = tf.constant(rng.integers(0, 3, b).astype("int32"))
    with VARIANTS[variant]():
        keras.utils.set_random_seed(0)
        cell = HyperAdapter(args.rank, args.bottleneck, 3, reference_init=False)
        cell(z, hyper, domain_ids)
        optimizer = keras.optimizers.SGD(1e-3)
        optimizer.build(cell.trainable_variables)

        @tf.function(jit_compile=args.jit_compile)
        def train_step():
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(cell(z, hyper, domain_ids, training=True)))
            optimizer.apply(tape.gradient(loss, cell.trainable_variables), cell.trainable_variables)
            return loss

        predict_step = tf.function(lambda: cell(z, hyper, domain_ids, training=False), jit_compile=args.jit_compile)

        def repeat(step):
            def run():
                for _ in range(args.steps):
                    out = step()
                out.numpy()

            return run

        train = median_seconds(repeat(train_step), args.repeats)
        predict = median_seconds(repeat(predict_step), args.repeats)
    return args.steps * b / train, args.steps * b / predict


def measure_model(variant, args, data):
    with VARIANTS[variant]():
        keras.utils.set_random_seed(0)
        model = km.build_model("hamur", features=data.features, domain=data.domain, tasks=data.tasks,
                               data=data.frame, backbone="mlp")
        model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=args.jit_compile)
        batches = model.make_dataset(data.frame, args.batch_size, shuffle=True, seed=0)
        batches = batches.filter(lambda x, y: tf.shape(y["click"])[0] == args.batch_size).take(4).cache().repeat()
        inputs = batches.map(lambda x, y: x)
        train = median_seconds(
            lambda: model.fit(batches, steps_per_epoch=args.steps, epochs=1, verbose=0), args.repeats
        )
        # keras.Model.predict: the batches are already preprocessed.
        predict = median_seconds(
            lambda: keras.Model.predict(model, inputs, steps=args.steps, verbose=0), args.repeats
        )
    return model, args.steps * args.batch_size / train, args.steps * args.batch_size / predict


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=5, help="batches per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per number (median)")
    parser.add_argument("--rows", type=int, default=20_000, help="rows of keras_mdr.data.synthetic")
    parser.add_argument("--cell-width", type=int, default=256, help="m of the standalone cell")
    parser.add_argument("--rank", type=int, default=32, help="k of the standalone cell")
    parser.add_argument("--bottleneck", type=int, default=32, help="h of the standalone cell")
    parser.add_argument("--no-jit", dest="jit_compile", action="store_false", help="run without XLA")
    parser.add_argument("--out", help="write the results as markdown here")
    args = parser.parse_args(argv)

    data = km.data.synthetic(args.rows)
    rows = []
    for variant in VARIANTS:
        cell_train, cell_predict = measure_cell(variant, args)
        model, model_train, model_predict = measure_model(variant, args, data)
        rows.append((variant, cell_train, cell_predict, model_train, model_predict))
        print(f"{variant}: cell train {cell_train:.0f}/s predict {cell_predict:.0f}/s; "
              f"model train {model_train:.0f}/s predict {model_predict:.0f}/s", flush=True)

    embedding = model.get_layer("embedding")
    hp = model.hyper_parameters
    hidden = hp["hidden_units"]
    adapter_widths = [hidden[i] for i in sorted(i % len(hidden) for i in hp["adapter_after"])]
    cell = cell_flops(args.cell_width, args.bottleneck, args.rank)
    whole = model_flops(embedding.output_dim, hidden, adapter_widths, hp["hyper_units"], hp["tower_units"],
                        len(model.tasks), hp["rank"], hp["bottleneck"])
    flops = {"reassociated": (cell[0], whole[0]), "materialised": (cell[1], whole[1])}

    command = "python benchmarks/hamur_cost.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        "# HAMUR adapter cell: reassociated vs materialised per-row weights",
        "",
        "```",
        command.strip(),
        "```",
        "",
        f"Device: {'GPU' if tf.config.list_physical_devices('GPU') else f'CPU ({os.cpu_count()} cores, shared)'}; "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}; jit_compile={args.jit_compile}; "
        f"batch {args.batch_size}; median of {args.repeats} runs of {args.steps} batches after a warm-up run.",
        "",
        f"- **cell**: one `HyperAdapter` alone, m={args.cell_width}, h={args.bottleneck}, k={args.rank}, "
        "train = forward + backward + SGD step.",
        f"- **model**: `build_model(\"hamur\", backbone=\"mlp\")` with its defaults (input width "
        f"{embedding.output_dim}, hidden {hidden}, adapter after layer {hp['adapter_after']} (m={adapter_widths}), "
        f"h={hp['bottleneck']}, k={hp['rank']}, hyper-network {hp['hyper_units']}, towers {hp['tower_units']} "
        f"x {len(model.tasks)} tasks) on `keras_mdr.data.synthetic({args.rows})`, preprocessed batches cached.",
        "",
        "| variant | cell FLOPs/example | cell train ex/s | cell predict ex/s "
        "| model FLOPs/example | model train ex/s | model predict ex/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for variant, cell_train, cell_predict, model_train, model_predict in rows:
        cell_f, model_f = flops[variant]
        lines.append(
            f"| {variant} | {cell_f:,} | {cell_train:,.0f} | {cell_predict:,.0f} "
            f"| {model_f:,} | {model_train:,.0f} | {model_predict:,.0f} |"
        )
    (_, ct0, cp0, mt0, mp0), (_, ct1, cp1, mt1, mp1) = rows
    lines.append(
        f"| **ratio** (reassociated / materialised: speed-up, FLOPs saved) | {cell[1] / cell[0]:.1f}x "
        f"| {ct0 / ct1:.1f}x | {cp0 / cp1:.1f}x | {whole[1] / whole[0]:.1f}x | {mt0 / mt1:.1f}x | {mp0 / mp1:.1f}x |"
    )
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()
