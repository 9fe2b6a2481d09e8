"""Where the time of `fit`, `predict` and the bare XLA steps goes, from the TensorFlow profiler's trace.

For each model of `throughput.py --matched`, in a process of its own, on 8
preprocessed ML-100K batches of 4096 cached in memory (XLA,
`km.training.train`'s default `steps_per_execution`), traces `--steps`
batches of each of `fit`, `predict`, the model's own `train_step` and its
forward pass (both compiled with XLA and called once per batch on tensors in
memory, as `step_anatomy.py` times them). XLA:CPU is asked to emit one trace
event per HLO instruction it runs (`--xla_cpu_enable_xprof_traceme`), so the
trace holds TensorFlow's ops, the XLA clusters and the HLO instructions in
them.

Each event's self time (its duration less that of the events nested in it on
the same thread) is summed by name over all host threads, with instance
numbers dropped (`gather.12` and `gather.3` are both `gather`), and reported
in milliseconds per batch next to the traced wall time per batch. The threads
run in parallel, so the self times of one variant can add up to more than its
wall time; the trace itself slows each step a little, so read the shares, not
the absolute numbers, and take timings from `step_anatomy.py`.

Usage:
    python benchmarks/step_profile.py --models matched_shared_bottom --out benchmarks/results/step_profile.json
    python benchmarks/step_profile.py --markdown
"""

import collections
import glob
import json
import os
import re
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# One trace event per HLO instruction; read when XLA first parses its flags, so before TensorFlow is imported.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true").strip()

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from records import run_each_in_process  # noqa: E402
from throughput import cached_batches, compiled_model, per_model_parser  # noqa: E402

from keras_mdr.config import TRAINING_DEFAULTS  # noqa: E402

VARIANTS = ("fit", "predict", "train_step", "forward")
# `fusion.12` -> `fusion`, `__inference_one_step_on_data_2061` -> `__inference_one_step_on_data`.
INSTANCE = re.compile(r"(\.\d+)+$|_\d+$")


def self_times(logdir):
    """{event name without instance number: summed self time in seconds} over the host threads of a trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    (path,) = glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    totals = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:"):
            continue
        names = {key: INSTANCE.sub("", meta.name) for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            open_events = []  # (end, name) of the events enclosing the current one
            for event in sorted(line.events, key=lambda e: (e.offset_ps, -e.duration_ps)):
                while open_events and open_events[-1][0] <= event.offset_ps:
                    open_events.pop()
                name = names[event.metadata_id]
                totals[name] += event.duration_ps * 1e-12
                if open_events:
                    totals[open_events[-1][1]] -= event.duration_ps * 1e-12
                open_events.append((event.offset_ps + event.duration_ps, name))
    return totals


def measure(variant, data_path, batch_size, steps, top):
    import keras
    import tensorflow as tf

    model, data = compiled_model(variant, data_path, True, TRAINING_DEFAULTS["steps_per_execution"])
    batches = cached_batches(model, data.frame, batch_size)
    inputs = batches.map(lambda x, y: x)
    cached = list(batches.take(8))
    model.optimizer.build(model.trainable_variables)
    train_step = tf.function(model.train_step, jit_compile=True)
    forward = tf.function(lambda x: model(x, training=False), jit_compile=True)

    def loop(step):
        def run():
            for i in range(steps):
                out = step(cached[i % 8])
            tf.nest.map_structure(lambda t: t.numpy(), out)  # waits for the last step
        return run

    runs = {
        "fit": lambda: model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0),
        "predict": lambda: keras.Model.predict(model, inputs, steps=steps, verbose=0),
        "train_step": loop(train_step),
        "forward": loop(lambda batch: forward(batch[0])),
    }
    profiles = {}
    for name, run in runs.items():
        run()  # traces and compiles outside the profile
        with tempfile.TemporaryDirectory() as logdir:
            tf.profiler.experimental.start(logdir)
            start = time.perf_counter()
            run()
            wall = time.perf_counter() - start
            tf.profiler.experimental.stop()
            totals = self_times(logdir)
        profiles[name] = {
            "wall_ms_per_batch": round(1000 * wall / steps, 3),
            "self_ms_per_batch": {k: round(1000 * v / steps, 3) for k, v in totals.most_common(top)},
        }
    return {
        "model": variant,
        "batch_size": batch_size,
        "steps": steps,
        "profiles": profiles,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def markdown(results, rows):
    lines = []
    for r in results:
        lines.append(f"{r['model'].removeprefix('matched_')} (load {r['load_average'][0]:.1f}), "
                     f"self ms per batch of {r['batch_size']}:\n")
        lines.append("| " + " | ".join(f"{v} (wall {r['profiles'][v]['wall_ms_per_batch']:.2f} ms)"
                                        for v in VARIANTS) + " |")
        lines.append("|" + "---|" * len(VARIANTS))
        tops = [list(r["profiles"][v]["self_ms_per_batch"].items())[:rows] for v in VARIANTS]
        for i in range(rows):
            cells = [f"`{top[i][0]}` {top[i][1]:.2f}" if i < len(top) else "" for top in tops]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main():
    parser = per_model_parser(__doc__, "benchmarks/results/step_profile.json", steps=96)
    parser.add_argument("--top", type=int, default=40, help="event names kept per variant")
    parser.add_argument("--rows", type=int, default=12, help="rows of the markdown table")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.load(open(args.out)), args.rows))
        return
    if args.one:
        print(json.dumps(measure(args.one, args.data, args.batch_size, args.steps, args.top)))
        return
    run_each_in_process(__file__, args.models, args.out, ["--data", args.data, "--batch-size", str(args.batch_size),
                                                          "--steps", str(args.steps), "--top", str(args.top)])


if __name__ == "__main__":
    main()
