"""Serving latency and throughput: gRPC through the local server vs the SavedModel in-process.

For each model: train briefly on synthetic data (default hyper-parameters),
export (plain and XLA), then time `predict` for

- single-row requests: p50 / p99 latency over `--requests` sequential calls;
- 256-row requests: p50 latency and rows per second over `--batches` calls;

through `PredictClient` -> the local gRPC server running in its own process
(`serve_forever`, plain export), and through the loaded SavedModel's
`serving_default` in this process (plain and XLA exports). The gRPC numbers
include the client's casting and protobuf encoding.

    python benchmarks/serving_latency.py --models shared_bottom mmoe hamur \
        --out benchmarks/results/serving_latency.md
"""

import argparse
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

import keras_mdr as km
from keras_mdr.serving import PredictClient

BATCH = 256


def _percentiles(seconds):
    ms = np.asarray(seconds) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def _time(call, inputs):
    """Seconds per call, one call per input (after two untimed calls)."""
    call(inputs[0])
    call(inputs[0])
    times = []
    for x in inputs:
        start = time.perf_counter()
        call(x)
        times.append(time.perf_counter() - start)
    return times


def _slices(columns, size, count):
    num_rows = len(next(iter(columns.values())))
    starts = [(i * size) % (num_rows - size + 1) for i in range(count)]
    return [{k: v[s : s + size] for k, v in columns.items()} for s in starts]


def _measure(name, call, columns, requests, batches):
    singles = _time(call, _slices(columns, 1, requests))
    batched = _time(call, _slices(columns, BATCH, batches))
    p50, p99 = _percentiles(singles)
    batch_p50, _ = _percentiles(batched)
    return {
        "path": name,
        "p50_ms": p50,
        "p99_ms": p99,
        "batch_p50_ms": batch_p50,
        "rows_per_s": BATCH * len(batched) / sum(batched),
    }


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _grpc(base_dir, columns, requests, batches):
    port = _free_port()
    code = f"from keras_mdr.serving import serve_forever; serve_forever({base_dir!r}, 'mdr', port={port})"
    server = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL)
    try:
        # Retries on UNAVAILABLE cover the server's start-up.
        with PredictClient(f"127.0.0.1:{port}", "mdr", retries=12) as client:
            client.metadata()
            return _measure("gRPC, local server (own process)", client.predict, columns, requests, batches)
    finally:
        server.terminate()
        server.wait(timeout=60)


def benchmark(model_name, requests, batches, train_rows):
    data = km.data.synthetic(num_rows=train_rows, seed=1)
    model = km.build_model(model_name, features=data.features, domain=data.domain, tasks=data.tasks, data=data.frame)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(data.frame, epochs=1, batch_size=512, verbose=0)
    columns, _ = km.data.prepare_columns(data.frame, model.features, model.domain)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        plain = km.export_saved_model(model, os.path.join(tmp, "plain"), warmup_data=data.frame)
        xla = km.export_saved_model(model, os.path.join(tmp, "xla"), jit_compile=True, warmup_data=data.frame)
        results.append(_grpc(os.path.dirname(plain), columns, requests, batches))
        for label, path in (("SavedModel in-process", plain), ("SavedModel in-process, XLA", xla)):
            serve = tf.saved_model.load(path).signatures["serving_default"]
            call = lambda x, serve=serve: serve(**{k: tf.constant(v) for k, v in x.items()})  # noqa: E731
            results.append(_measure(label, call, columns, requests, batches))
    return results


def _markdown(command, rows, requests, batches, load, skipped):
    lines = [
        "# Serving latency",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores visible, no GPU; "
        f"1-minute load average at start {load:.1f} (other jobs were running: compare rows only as ratios). "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, Python {platform.python_version()}.",
        f"Single-row: {requests} sequential requests; batch: {batches} sequential requests of {BATCH} rows. "
        "Default hyper-parameters, synthetic data."
        + (f" Not registered in this checkout, skipped: {', '.join(skipped)}." if skipped else ""),
        "",
        "| model | path | 1 row p50 (ms) | 1 row p99 (ms) | 256 rows p50 (ms) | rows/s, 256-row requests, one client |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for model_name, result in rows:
        lines.append(
            f"| {model_name} | {result['path']} | {result['p50_ms']:.2f} | {result['p99_ms']:.2f} | "
            f"{result['batch_p50_ms']:.2f} | {result['rows_per_s']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["shared_bottom", "mmoe", "hamur"])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--train-rows", type=int, default=10_000)
    parser.add_argument("--out", help="write the markdown table here")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0]] + list(argv or sys.argv[1:]))
    available = km.list_models()
    rows, skipped = [], []
    for model_name in args.models:
        if model_name not in available:
            print(f"skipping {model_name}: not registered (available: {', '.join(available)})")
            skipped.append(model_name)
            continue
        for result in benchmark(model_name, args.requests, args.batches, args.train_rows):
            rows.append((model_name, result))
            print(model_name, result, flush=True)
    table = _markdown(command, rows, args.requests, args.batches, load, skipped)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table)


if __name__ == "__main__":
    main()
