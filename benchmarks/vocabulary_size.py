"""`.keras` size, save, load and SavedModel export time of a model with one categorical feature of N ids.

The model is `shared_bottom` (bottom [16], towers [8]) on one string
feature `item` whose vocabulary holds N ids (`"id0"`, `"id1"`, ...;
embedding width `--embedding-dim`), one numeric feature and two domains.
Each N runs in a fresh process (`--one`), so that one size's memory does not
weigh on the next. Reported per N: the `.keras` file's size and the size of
the `config.json` inside it (uncompressed), the time of `model.save`, of
`keras.saving.load_model`, and of `km.export_saved_model` (its write, its
warmup file and its check that the SavedModel reproduces the Keras model),
the SavedModel's size, the process's peak resident memory, and the 1-minute
load average after each timing. The loaded model's predictions are checked
against the saved one's, unseen ids included.

Run it once per checkout (the keras_mdr on `PYTHONPATH` is the one measured):
    PYTHONPATH=. nice -n 15 python benchmarks/vocabulary_size.py --label after
    PYTHONPATH=/tmp/vocab_before nice -n 15 python benchmarks/vocabulary_size.py --label before
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _size_mb(path):
    if os.path.isfile(path):
        return os.path.getsize(path) / 2**20
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files) / 2**20


def _timed(run):
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start, os.getloadavg()[0]


def measure(num_ids, embedding_dim):
    """One size, in this process: `{metric: value}`."""
    import keras
    import numpy as np

    import keras_mdr as km

    keras.utils.set_random_seed(0)
    features = [
        km.SparseFeature("item", vocabulary=[f"id{i}" for i in range(num_ids)], embedding_dim=embedding_dim),
        km.DenseFeature("price", mean=0.0, variance=1.0),
    ]
    domain = km.Domain("domain", values=["d0", "d1"])
    model, build_s, _ = _timed(lambda: km.build_model(
        "shared_bottom", features=features, domain=domain, tasks=["click"], bottom_units=[16], tower_units=[8]
    ))
    rng = np.random.default_rng(0)
    rows = {
        "item": [f"id{i}" for i in rng.integers(0, num_ids, 63)] + ["never-seen"],
        "price": rng.normal(size=64).astype(np.float32),
        "domain": ["d0", "d1"] * 32,
    }
    expected = model.predict(rows)
    with tempfile.TemporaryDirectory(prefix="vocabulary_size_") as work:
        return {"ids": num_ids, "build_s": build_s, **_save_load_export(model, rows, expected, work)}


def _save_load_export(model, rows, expected, work):
    import keras
    import numpy as np

    import keras_mdr as km

    path = os.path.join(work, "model.keras")
    _, save_s, save_load = _timed(lambda: model.save(path))
    with zipfile.ZipFile(path) as archive:
        config_mb = archive.getinfo("config.json").file_size / 2**20
    loaded, load_s, load_load = _timed(lambda: keras.saving.load_model(path))
    np.testing.assert_allclose(loaded.predict(rows)["click"], expected["click"], atol=1e-6)
    version_dir, export_s, export_load = _timed(lambda: km.export_saved_model(model, os.path.join(work, "export")))
    return {
        "keras_mb": _size_mb(path),
        "config_mb": config_mb,
        "save_s": save_s,
        "save_load": save_load,
        "load_s": load_s,
        "load_load": load_load,
        "export_s": export_s,
        "export_load": export_load,
        "saved_model_mb": _size_mb(version_dir),
        "saved_model_pb_mb": _size_mb(os.path.join(version_dir, "saved_model.pb")),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", nargs="+", type=int, default=[10**5, 10**6, 10**7], help="vocabulary sizes")
    parser.add_argument("--embedding-dim", type=int, default=8)
    parser.add_argument("--label", default="", help="a name for the checkout measured (before, after)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.embedding_dim)))
        return

    print("| checkout | ids | .keras MB | config.json MB | save s (load) | load_model s (load) "
          "| export s (load) | SavedModel MB (saved_model.pb) | peak RSS GB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for num_ids in args.ids:
        command = [sys.executable, __file__, "--one", str(num_ids), "--embedding-dim", str(args.embedding_dim)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"| {args.label} | {num_ids:,} | failed (exit {done.returncode}): "
                  f"{done.stderr.strip().splitlines()[-1:]} |", flush=True)
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"| {args.label} | {num_ids:,} | {r['keras_mb']:.1f} | {r['config_mb']:.3f} "
            f"| {r['save_s']:.1f} ({r['save_load']:.1f}) | {r['load_s']:.1f} ({r['load_load']:.1f}) "
            f"| {r['export_s']:.1f} ({r['export_load']:.1f}) "
            f"| {r['saved_model_mb']:.1f} ({r['saved_model_pb_mb']:.1f}) | {r['peak_rss_gb']:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
