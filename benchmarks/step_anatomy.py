"""Where a step's time goes: `fit` and `predict` against the bare compiled steps under them, per matched model.

For each model of `throughput.py --matched` (the architectures of the
side-by-side comparison with the PyTorch reference), in a process of its
own, on 8 preprocessed batches of ML-100K cached in memory (batch 4096,
XLA, `km.training.train`'s default `steps_per_execution`), the milliseconds
per batch of, from the outside in:

- `fit`: `model.fit` over the cached batches, as `throughput.py` times it;
- `train_step`: the model's own `train_step` (loss, gradients, Adam, the
  per-(domain, task) metrics) compiled with XLA and called once per batch
  from Python on tensors already in memory: no `tf.data`, no callbacks;
- `gradient_step`: the same without the metrics: forward, loss, gradients,
  Adam;
- `predict`: `keras.Model.predict` over the cached batches;
- `forward`: `model(x)` compiled with XLA, called once per batch;
- `forward_x8`: eight batches' forward passes in one XLA call, which shows
  the cost of a call itself (`forward` minus this);
- `dataset`: iterating the cached batches alone.

`fit - train_step` is the cost of Keras' loop around the step (the
iterator, callbacks, the host work between calls), `train_step -
gradient_step` that of the metrics; likewise for `predict` and `forward`.
Each number is the median of `--repeats` timed runs of `--steps` batches
after a warm-up run. Every variant runs in the same process one after the
other, so a busy machine slows them alike: compare them as ratios within a
row. The load average is recorded with each row.

Usage:
    nice -n 10 python benchmarks/step_anatomy.py --out benchmarks/results/step_anatomy.json
    python benchmarks/step_anatomy.py --markdown
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from records import run_each_in_process  # noqa: E402
from throughput import REFERENCE, cached_batches, compiled_model, forward_flops_per_example, per_model_parser  # noqa: E402
from timing import median_seconds  # noqa: E402

from keras_mdr.config import TRAINING_DEFAULTS  # noqa: E402

VARIANTS = ("fit", "train_step", "gradient_step", "predict", "forward", "forward_x8", "dataset")


def measure(variant, data_path, batch_size, steps, repeats):
    import keras
    import tensorflow as tf

    model, data = compiled_model(variant, data_path, True, TRAINING_DEFAULTS["steps_per_execution"])
    batches = cached_batches(model, data.frame, batch_size)
    inputs = batches.map(lambda x, y: x)
    cached = list(batches.take(8))
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)

    train_step = tf.function(model.train_step, jit_compile=True)

    @tf.function(jit_compile=True)
    def gradient_step(batch):
        x, y = batch
        with tf.GradientTape() as tape:
            loss = model.compute_loss(x, y, model(x, training=True), training=True)
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    forward = tf.function(lambda x: model(x, training=False), jit_compile=True)
    forward_x8 = tf.function(lambda xs: [model(x, training=False) for x in xs], jit_compile=True)

    def loop(step):
        def run():
            for i in range(steps):
                out = step(cached[i % 8])
            tf.nest.map_structure(lambda t: t.numpy(), out)  # waits for the last step
        return run

    def in_eights(step):
        def run():
            for _ in range(steps // 8):
                out = step([x for x, _ in cached])
            tf.nest.map_structure(lambda t: t.numpy(), out)
        return run

    def iterate():
        for _ in batches.take(steps):
            pass

    runs = {
        "fit": lambda: model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0),
        "train_step": loop(train_step),
        "gradient_step": loop(gradient_step),
        "predict": lambda: keras.Model.predict(model, inputs, steps=steps, verbose=0),
        "forward": loop(lambda batch: forward(batch[0])),
        "forward_x8": in_eights(forward_x8),
        "dataset": iterate,
    }
    ms = {name: round(1000 * median_seconds(run, repeats) / steps, 3) for name, run in runs.items()}
    return {
        "model": variant,
        "batch_size": batch_size,
        "steps": steps,
        "repeats": repeats,
        "ms_per_batch": ms,
        "forward_flops_per_example": round(forward_flops_per_example(model, cached[0][0])),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def markdown(results):
    rows = [
        "| model | " + " | ".join(VARIANTS) + " | fit / train_step | predict / forward "
        "| reference train / predict (ms) | forward GFLOP/s | load (1 min) |",
        "|---|" + "---:|" * (len(VARIANTS) + 5),
    ]
    for r in results:
        ms = r["ms_per_batch"]
        train_ref, predict_ref = (1000 * r["batch_size"] / rate for rate in REFERENCE[r["model"]])
        gflops = r["forward_flops_per_example"] * r["batch_size"] / ms["forward"] / 1e6
        rows.append(
            f"| {r['model'].removeprefix('matched_')} | " + " | ".join(f"{ms[v]:.2f}" for v in VARIANTS)
            + f" | {ms['fit'] / ms['train_step']:.2f} | {ms['predict'] / ms['forward']:.2f} "
            f"| {train_ref:.2f} / {predict_ref:.2f} | {gflops:.0f} | {r['load_average'][0]:.1f} |"
        )
    return "\n".join(rows)


def main():
    parser = per_model_parser(__doc__, "benchmarks/results/step_anatomy.json", steps=24)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.load(open(args.out))))
        return
    if args.one:
        print(json.dumps(measure(args.one, args.data, args.batch_size, args.steps, args.repeats)))
        return
    run_each_in_process(__file__, args.models, args.out, ["--data", args.data, "--batch-size", str(args.batch_size),
                                                          "--steps", str(args.steps), "--repeats", str(args.repeats)])


if __name__ == "__main__":
    main()
