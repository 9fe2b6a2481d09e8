"""Examples/second of the file input pipeline alone (`keras_mdr.data.file_dataset`), against model training.

Writes the synthetic default data (`km.data.synthetic`, `--rows` rows) as
`--shards` CSV, Parquet (if pyarrow is installed) and TFRecord files
(`km.data.write_tfrecords`), then times whole epochs of reading them at batch
`--batch-size`: the raw-column batches of `file_dataset` (`raw`), the same with
the rows shuffled (`raw, shuffled`), and the batches a model trains on, through
its preprocessing (`model.make_dataset` on the files: vocabulary lookups, tag
splitting, standardisation; `preprocessed`), also shuffled as `fit` and
`km.training.train` shuffle them (`preprocessed, shuffled`). Each number is the median of
`--repeats` epochs after one warm-up epoch (the files are then in the page
cache); the load average is recorded with each. The targets are the train
examples/s of the fastest model in each `--throughput` file (results of
`throughput.py`; `throughput.json` records no load average,
`throughput_zoo.json` was measured at load 8.5 to 11 on this 2-core machine),
and each run's ratio to each.

Usage:
    nice -n 15 python benchmarks/input_pipeline.py --out benchmarks/results/input_pipeline.json
"""

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from timing import median_seconds  # noqa: E402


def write_files(frame, data, folder, shards, formats):
    """`{format: glob}` of the rows written as `shards` files in each of `formats`."""
    import numpy as np

    import keras_mdr as km

    parts = np.array_split(np.arange(len(frame)), shards)
    globs = {}
    if "csv" in formats:
        os.makedirs(os.path.join(folder, "csv"), exist_ok=True)
        for i, rows in enumerate(parts):
            frame.iloc[rows].to_csv(os.path.join(folder, "csv", f"part-{i:05d}.csv"), index=False)
        globs["csv"] = os.path.join(folder, "csv", "*.csv")
    if "parquet" in formats:
        try:
            import pyarrow  # noqa: F401

            os.makedirs(os.path.join(folder, "parquet"), exist_ok=True)
            for i, rows in enumerate(parts):
                frame.iloc[rows].to_parquet(os.path.join(folder, "parquet", f"part-{i:05d}.parquet"))
            globs["parquet"] = os.path.join(folder, "parquet", "*.parquet")
        except ImportError:
            print("pyarrow is not installed: no Parquet")
    if "tfrecord" in formats:
        km.data.write_tfrecords(frame, os.path.join(folder, "tfrecord"), data.features, data.domain, data.tasks,
                                shards=shards)
        globs["tfrecord"] = os.path.join(folder, "tfrecord", "*.tfrecord")
    return globs


def epoch_rows(dataset):
    """Reads one epoch of `dataset`; returns its rows."""
    rows = 0
    for batch in dataset:
        columns = batch[0] if isinstance(batch, tuple) else batch
        rows += int(next(iter(columns.values())).shape[0])
    return rows


def fastest_training(path):
    """The fastest training run in a `throughput.py` results file: file, model, jit_compile, examples/s, load."""
    with open(path) as f:
        runs = json.load(f)
    best = max(runs, key=lambda r: r["train_examples_per_second"])
    return {"file": os.path.relpath(path, os.path.dirname(HERE)), "model": best["model"],
            "jit_compile": best["jit_compile"], "train_examples_per_second": best["train_examples_per_second"],
            "load_average": best.get("load_average")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--formats", nargs="+", default=["csv", "parquet", "tfrecord"])
    parser.add_argument("--folder", help="where to write the files (default: a temporary folder)")
    parser.add_argument("--throughput", nargs="+", default=[os.path.join(HERE, "results", f)
                                                            for f in ("throughput.json", "throughput_zoo.json")])
    parser.add_argument("--out", help="write the results here as JSON")
    args = parser.parse_args()

    import tensorflow as tf

    import keras_mdr as km

    start = time.perf_counter()
    data = km.data.synthetic(num_rows=args.rows)
    model = km.build_model("shared_bottom", features=data.features, domain=data.domain, tasks=data.tasks,
                           data=data.frame)
    data = data._replace(features=model.features, domain=model.domain)
    folder = args.folder or tempfile.mkdtemp(prefix="input_pipeline_")
    globs = write_files(data.frame, data, folder, args.shards, args.formats)
    print(f"Wrote {args.rows} rows x {len(globs)} formats in {args.shards} shards each to {folder} "
          f"({time.perf_counter() - start:.0f} s)")

    targets = [fastest_training(path) for path in args.throughput]
    results = []
    for kind, pattern in globs.items():
        variants = {
            "raw": lambda p=pattern: km.data.file_dataset(p, data.features, data.domain, data.tasks,
                                                           batch_size=args.batch_size),
            "raw, shuffled": lambda p=pattern: km.data.file_dataset(p, data.features, data.domain, data.tasks,
                                                                     batch_size=args.batch_size, shuffle=True,
                                                                     seed=0),
            "preprocessed": lambda p=pattern: model.make_dataset(p, args.batch_size),
            "preprocessed, shuffled": lambda p=pattern: model.make_dataset(p, args.batch_size, shuffle=True, seed=0),
        }
        for variant, make in variants.items():
            dataset = make()
            rows = epoch_rows(dataset)
            seconds = median_seconds(lambda d=dataset: epoch_rows(d), args.repeats)
            result = {
                "format": kind,
                "pipeline": variant,
                "rows": rows,
                "batch_size": args.batch_size,
                "shards": args.shards,
                "examples_per_second": round(rows / seconds),
                "vs_fastest_training": [round(rows / seconds / t["train_examples_per_second"], 2) for t in targets],
                "load_average": [round(v, 2) for v in os.getloadavg()],
            }
            results.append(result)
            print(json.dumps(result))
    summary = {
        "fastest_training": targets,
        "cpu_threads": os.cpu_count(),
        "tensorflow": tf.__version__,
        "runs": results,
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=1)
    for t in targets:
        print(f"\nFastest training in {t['file']}: {t['model']} (jit_compile={t['jit_compile']}), "
              f"{t['train_examples_per_second']} examples/s, load average {t['load_average']}")
    print()
    print("| format | pipeline | examples/s | " + " | ".join(f"x {t['file']}" for t in targets) + " | load average |")
    print("|---|---|---:|" + "---:|" * len(targets) + "---|")
    for r in results:
        ratios = " | ".join(map(str, r["vs_fastest_training"]))
        print(f"| {r['format']} | {r['pipeline']} | {r['examples_per_second']:,} | {ratios} | "
              f"{', '.join(map(str, r['load_average']))} |")


if __name__ == "__main__":
    main()
