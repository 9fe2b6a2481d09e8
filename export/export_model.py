"""Export a trained keras_mdr model as a new version under a TF Serving base directory.

    # a model saved with model.save("model.keras"):
    python export/export_model.py --keras-model model.keras --base-dir exports/mdr
    # the same with the core compiled by XLA, warmup rows and metrics for the model card:
    python export/export_model.py --keras-model model.keras --base-dir exports/mdr \
        --jit-compile --warmup-data valid.parquet --metrics metrics.json
    # no model yet: train a small one on the built-in synthetic data first
    python export/export_model.py --demo shared_bottom --base-dir exports/mdr

Prints the new version directory.
"""

import argparse
import json

import keras
import pandas as pd

import keras_mdr as km


def _read(path):
    return pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path, keep_default_na=False)


def _demo_model(name):
    data = km.data.synthetic(num_rows=20_000)
    model = km.build_model(name, features=data.features, domain=data.domain, tasks=data.tasks, data=data.frame)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(data.frame, epochs=1, verbose=0)
    return model, data.frame, model.evaluate_report(data.frame.tail(5_000))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--keras-model", help="a .keras file saved from a keras_mdr model")
    source.add_argument("--demo", metavar="MODEL", help="train this zoo model on synthetic data, then export")
    parser.add_argument("--base-dir", required=True, help="TF Serving base path; versions go in <base-dir>/<n>")
    parser.add_argument("--version", type=int, help="version number (default: the next one)")
    parser.add_argument("--jit-compile", action="store_true", help="compile the numeric core with XLA")
    parser.add_argument("--warmup-data", help="CSV/Parquet rows for the warmup requests (first 32 used)")
    parser.add_argument("--metrics", help="a JSON file of metrics to record in model_card.json")
    args = parser.parse_args(argv)

    warmup, metrics = None, None
    if args.keras_model:
        model = keras.saving.load_model(args.keras_model)
    else:
        model, warmup, metrics = _demo_model(args.demo)
    if args.warmup_data:
        warmup = _read(args.warmup_data)
    if args.metrics:
        with open(args.metrics) as f:
            metrics = json.load(f)
    path = km.export_saved_model(
        model, args.base_dir, version=args.version, jit_compile=args.jit_compile,
        warmup_data=warmup, metrics=metrics,
    )
    print(path)


if __name__ == "__main__":
    main()
