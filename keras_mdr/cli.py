"""The `keras-mdr` command line."""

import argparse
import os
import sys
import traceback


QUICKSTART_MODEL_NAME = "quickstart"
# The config `keras-mdr convert` writes beside the shards: their globs, the learned statistics.
CONVERTED_CONFIG = "run.yaml"


def _answer_one_request(base_dir, rows):
    """Starts the local gRPC server on `base_dir`, sends `rows`, prints request and response."""
    import numpy as np

    from keras_mdr.serving import PredictClient, start_server

    with start_server(base_dir, QUICKSTART_MODEL_NAME) as server:
        with PredictClient(server.target, QUICKSTART_MODEL_NAME) as client:
            request = client.make_request(rows)
            response = client.predict(rows)
    import tensorflow as tf

    print(
        f"\ngRPC PredictRequest to {server.target}: model '{request.model_spec.name}', "
        f"signature '{request.model_spec.signature_name}', inputs:"
    )
    with np.printoptions(precision=4, suppress=True):
        for name, tensor in sorted(request.inputs.items()):
            values = tf.make_ndarray(tensor)
            if values.dtype == object:
                values = [v.decode() for v in values]
            print(f"  {name:<10} {tf.dtypes.as_dtype(tensor.dtype).name:<7} {values}")
        print("PredictResponse, one probability per task and row:")
        for task, values in sorted(response.items()):
            print(f"  {task:<10} {values}")
    return response


def _quickstart(args):
    import keras_mdr as km
    from keras_mdr import config as config_lib
    from keras_mdr import run

    km.models.registry.model_class(args.model)  # an unknown name fails before any work
    data = km.data.synthetic(num_rows=args.rows, seed=args.seed)
    train, validation, test = km.data.random_split(data.frame, (0.8, 0.1, 0.1), seed=args.seed)
    print(
        f"Synthetic data: {len(data.frame)} rows, domains {data.domain.names}, "
        f"tasks {[t.name for t in data.tasks]}; training '{args.model}'."
    )
    training = {
        **config_lib.TRAINING_DEFAULTS,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "early_stopping_patience": 2,
        "seed": args.seed,
    }
    model, metrics = run.train_and_evaluate(
        args.model, {}, data.features, data.domain, data.tasks, train, validation, test, training, args.output
    )
    print(f"\nSaved the model to {os.path.join(args.output, run.MODEL_FILE)}")
    base_dir = os.path.join(args.output, "export", QUICKSTART_MODEL_NAME)
    version_dir = km.export_saved_model(model, base_dir, warmup_data=validation, metrics=metrics)
    print(f"Exported the SavedModel to {version_dir}")
    rows = test.head(3).drop(columns=[t.label for t in data.tasks])
    _answer_one_request(base_dir, rows)


def _train(args):
    from keras_mdr import config as config_lib
    from keras_mdr import run
    from keras_mdr.training.distributed import make_strategy

    config = config_lib.load_config(args.config)
    if "transfer" in config:
        raise ValueError(f"config: {args.config} has a 'transfer' section; run `keras-mdr transfer --config` on it")
    # Before anything starts TensorFlow's runtime, which a MultiWorkerMirroredStrategy must configure.
    strategy = make_strategy(config["training"]["distribution"])
    train, validation, test = config_lib.load_splits(config)
    _, metrics = run.train_and_evaluate(
        config["model"]["name"],
        config["model"]["params"],
        config["features"],
        config["domain"],
        config["tasks"],
        train,
        validation,
        test,
        config["training"],
        config["output"],
        strategy=strategy,
    )
    if metrics is None:  # a worker other than the chief, which writes
        return
    written = [run.METRICS_FILE, run.HISTORY_FILE]
    if os.path.exists(os.path.join(config["output"], run.REPORT_PLOT)):
        written.append(run.REPORT_PLOT)
    print(f"\nWrote {os.path.join(config['output'], run.MODEL_FILE)}, {', '.join(written)}")


def _transfer(args):
    from keras_mdr import config as config_lib
    from keras_mdr import run
    from keras_mdr.training.distributed import make_strategy
    from keras_mdr.transfer import load_source_model

    config = config_lib.load_config(args.config)
    if "transfer" not in config:
        raise ValueError(f"config: {args.config} has no 'transfer' section (see `keras-mdr transfer --help`)")
    strategy = make_strategy(config["training"]["distribution"])  # before TensorFlow starts (see _train)
    source = load_source_model(config["transfer"]["from"])
    train, validation, test = config_lib.load_splits(config, source.features, source.domain)
    _, metrics = run.transfer_and_evaluate(
        source, config["transfer"], train, validation, test, config["training"], config["output"], strategy=strategy
    )
    if metrics is None:  # a worker other than the chief, which writes
        return
    print(f"\nWrote {os.path.join(config['output'], run.MODEL_FILE)} and {run.METRICS_FILE}")


def _convert(args):
    import glob

    import yaml

    import keras_mdr as km
    from keras_mdr import config as config_lib

    config = config_lib.load_config(args.config)
    if "transfer" in config:
        raise ValueError(f"config: {args.config} has a 'transfer' section; convert takes a training config")
    streamed = [key for key in ("train", "validation", "test") if config["data"].get(key) and
                config_lib.is_streamed(config["data"][key])]
    if streamed:
        raise ValueError(f"config: 'data.{streamed[0]}' is already streamed from files; convert reads CSV or Parquet")
    existing = glob.glob(os.path.join(args.out, "*.tfrecord"))
    if existing:
        raise FileExistsError(f"{args.out} already holds TFRecord files ({os.path.basename(existing[0])}, ...); "
                              "convert into an empty folder")
    splits = dict(zip(("train", "validation", "test"), config_lib.load_splits(config)))
    features, domain = km.adapt(config["features"], config["domain"], splits["train"], what="training data")
    data = {}
    for name, frame in splits.items():
        if frame is None:
            continue
        paths = km.data.write_tfrecords(
            frame, args.out, features, domain, config["tasks"], shards=min(args.shards, len(frame)), prefix=name
        )
        data[name] = f"{name}-*.tfrecord"
        print(f"{name}: {len(frame)} rows in {len(paths)} shards, {os.path.join(args.out, data[name])}")
    converted = {
        "data": data,
        "features": [f.get_config() for f in features],
        "domain": domain.get_config(),
        "tasks": [t.get_config() for t in config["tasks"]],
        "model": config["model"],
        "training": config["training"],
        "output": config["output"],
    }
    path = os.path.join(args.out, CONVERTED_CONFIG)
    with open(path, "w") as f:
        yaml.safe_dump(converted, f, sort_keys=False)
    print(f"Wrote {path}: train with `keras-mdr train --config {path}`")


def _evaluate(args):
    import json

    import keras

    from keras_mdr import config as config_lib
    from keras_mdr import run

    config = config_lib.load_config(args.config)
    path = os.path.join(config["output"], run.MODEL_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No trained model at {path}; run `keras-mdr train --config {args.config}` first")
    model = keras.saving.load_model(path)
    _, validation, test = config_lib.load_splits(config, model.features, model.domain)
    metrics = run.evaluate_splits(
        model, {"validation": validation, "test": test}, batch_size=config["training"]["batch_size"]
    )
    run.write_json(metrics, os.path.join(config["output"], "evaluation.json"))
    if args.plot:
        history_path = os.path.join(config["output"], run.HISTORY_FILE)
        history = None
        if os.path.exists(history_path):
            with open(history_path) as f:
                history = json.load(f)
        path = os.path.join(config["output"], "evaluation.png")
        print(f"\nWrote {run.write_report_plot(metrics, path, history, required=True)}")


def _export(args):
    import json

    import keras

    import keras_mdr as km
    from keras_mdr import config as config_lib
    from keras_mdr import run

    warmup, metrics = None, None
    if args.config:
        config = config_lib.load_config(args.config)
        model_path = os.path.join(config["output"], run.MODEL_FILE)
        metrics_path = os.path.join(config["output"], run.METRICS_FILE)
        if os.path.exists(metrics_path):
            with open(metrics_path) as f:
                metrics = json.load(f)
    else:
        model_path = args.model
    if not os.path.exists(model_path):
        raise FileNotFoundError(f"No trained model at {model_path}")
    model = keras.saving.load_model(model_path)
    if args.config:
        warmup = config_lib.load_splits(config, model.features, model.domain)[1]
        if isinstance(warmup, list):  # streamed files: their first rows
            warmup = km.data.read_files(warmup, model.features, model.domain, num_rows=32)
    if args.warmup_data:
        warmup = km.data.read_table(args.warmup_data, model.features, model.domain)
    if args.metrics:
        with open(args.metrics) as f:
            try:
                metrics = json.load(f)
            except json.JSONDecodeError as error:
                raise ValueError(f"--metrics {args.metrics} is not valid JSON: {error}") from None
    path = km.export_saved_model(
        model, args.base_dir, version=args.version, jit_compile=args.jit_compile, warmup_data=warmup, metrics=metrics
    )
    print(path)


def _serve(args):
    from keras_mdr.serving import serve_forever

    if not os.path.isdir(args.base_dir):
        raise FileNotFoundError(f"No model base directory at {args.base_dir}; export a model there first")
    serve_forever(args.base_dir, model_name=args.model_name, port=args.port, host=args.host)


def _list_models(args):
    import keras_mdr as km

    for name in km.list_models():
        params = ", ".join(f"{k}={v!r}" for k, v in km.models.hyper_parameters(name).items())
        print(f"{name}: {params}" if args.verbose else name)


def _positive(kind):
    """An argparse type: a `kind` (int or float) > 0."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0:  # NaN too
            raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'} > 0, got {text!r}")
        return value

    return parse


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-mdr", description="Multi-domain, multi-task recommendation models for Keras 3."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    quickstart = commands.add_parser(
        "quickstart",
        help="train on the built-in synthetic data, print per-domain AUC, save, export and serve",
        description="Train a model on the built-in synthetic data, print the per-domain x per-task "
        "AUC table, save the model, export it as a SavedModel and answer one gRPC request through "
        "the local server.",
    )
    quickstart.add_argument("--model", default="hamur", help="model name (see list-models)")
    quickstart.add_argument("--rows", type=_positive(int), default=60_000, help="synthetic rows to generate")
    quickstart.add_argument("--epochs", type=_positive(int), default=5, help="maximum training epochs")
    quickstart.add_argument("--batch-size", type=_positive(int), default=1024, help="rows per batch")
    quickstart.add_argument("--learning-rate", type=_positive(float), default=2e-3, help="Adam learning rate")
    quickstart.add_argument("--seed", type=int, default=2022, help="data, split and initialisation seed")
    quickstart.add_argument("--output", default="quickstart_output", help="output folder")
    quickstart.set_defaults(run=_quickstart)

    train = commands.add_parser(
        "train",
        help="train a model from a config file",
        description="Train from a YAML/JSON config; writes OUTPUT/model.keras, OUTPUT/metrics.json, "
        "OUTPUT/history.json and (with matplotlib) OUTPUT/report.png.",
    )
    train.add_argument("--config", required=True, help="YAML or JSON run configuration")
    train.set_defaults(run=_train)

    transfer = commands.add_parser(
        "transfer",
        help="bring new domains to a trained model (adapters, LoRA, head or fine-tuning)",
        description="Read the model named by the config's transfer section (`from`), add the domains of "
        "`domain_values` with `method` (adapter, lora, head, finetune), train on the config's data and write "
        "OUTPUT/model.keras and OUTPUT/metrics.json with every domain. The source model file is only read.",
    )
    transfer.add_argument("--config", required=True, help="YAML or JSON config with a 'transfer' section")
    transfer.set_defaults(run=_transfer)

    convert = commands.add_parser(
        "convert",
        help="write a config's data as TFRecord shards, for streamed and per-worker training",
        description="Read the config's train, validation and test data (CSV or Parquet, split as `train` "
        "splits it), learn the statistics the features and domain lack from the training rows, and write "
        "OUT/{train,validation,test}-NNNNN-of-NNNNN.tfrecord (tf.Examples) and OUT/run.yaml: the same run "
        "with the learned statistics, reading the shards. OUT must hold no TFRecord files yet.",
    )
    convert.add_argument("--config", required=True, help="YAML or JSON run configuration")
    convert.add_argument("--out", required=True, help="folder for the shards and run.yaml")
    convert.add_argument(
        "--shards", type=_positive(int), default=8,
        help="files per split (at least one per worker of a multi-worker run; at most one per row)",
    )
    convert.set_defaults(run=_convert)

    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a trained model per domain and task",
        description="Evaluate OUTPUT/model.keras on the config's validation and test data; writes "
        "OUTPUT/evaluation.json (and with --plot OUTPUT/evaluation.png).",
    )
    evaluate.add_argument("--config", required=True, help="the config the model was trained with")
    evaluate.add_argument(
        "--plot", action="store_true",
        help="also write OUTPUT/evaluation.png (AUC bars, training curves; needs matplotlib)",
    )
    evaluate.set_defaults(run=_evaluate)

    export = commands.add_parser(
        "export",
        help="export a trained model as a new SavedModel version for TF Serving",
        description="Write BASE_DIR/<version>/ atomically: a SavedModel taking raw features, TF Serving "
        "warmup requests and model_card.json. Prints the version directory.",
    )
    source = export.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a .keras file saved from a keras_mdr model")
    source.add_argument("--config", help="a training config: exports OUTPUT/model.keras with its metrics")
    export.add_argument("--base-dir", required=True, help="TF Serving base path; versions go in BASE_DIR/<n>")
    export.add_argument("--version", type=int, help="version number (default: the next one)")
    export.add_argument("--jit-compile", action="store_true", help="compile the numeric core with XLA")
    export.add_argument("--warmup-data", help="CSV/Parquet rows for the warmup requests (first 32 used)")
    export.add_argument("--metrics", help="a JSON file of metrics to record in model_card.json")
    export.set_defaults(run=_export)

    serve = commands.add_parser(
        "serve",
        help="serve exported SavedModels over gRPC locally (development; production uses TF Serving)",
        description="A local gRPC PredictionService (Predict, GetModelMetadata) over the newest version "
        "under MODEL_BASE_DIR, picking up new versions. For development and tests; deploy with the stock "
        "tensorflow/serving image (see serving/README.md).",
    )
    serve.add_argument("base_dir", metavar="MODEL_BASE_DIR", help="the base directory of the versions")
    serve.add_argument("--port", type=int, default=8500, help="gRPC port")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind")
    serve.add_argument("--model-name", help="the served model name (default: the base directory's name)")
    serve.set_defaults(run=_serve)

    list_models = commands.add_parser(
        "list-models",
        help="list the model names",
        description="List the models build_model accepts; with -v, their hyper-parameters and defaults.",
    )
    list_models.set_defaults(run=_list_models)

    verbose_help = "show TensorFlow's log lines, and a traceback with an error"
    parser.add_argument("-v", "--verbose", action="store_true", help=verbose_help)
    for command in commands.choices.values():  # `keras-mdr COMMAND -v` as well as `keras-mdr -v COMMAND`
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help)
    return parser


# TensorFlow's C++ log level when the user has set none: its start-up notes (CUDA probing on a machine
# without a GPU, CPU features) read as errors to a person. Errors that stop a command reach Python as
# exceptions, which `main` prints; `-v` shows every log line.
QUIET_TF_CPP_MIN_LOG_LEVEL = "3"

# Mistakes a person can fix from the message alone: one line, exit code 2 (a traceback with -v).
USER_ERRORS = (ValueError, KeyError, OSError, ImportError)


def _configure_logging(verbose):
    """Sets TensorFlow's C++ log level and Python logging, then imports TensorFlow under that level."""
    import logging

    from keras_mdr import startup_logs

    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_TF_CPP_MIN_LOG_LEVEL)
    try:
        level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        level = 0  # TensorFlow reads an unparsable value as 0 too
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s")
    if level > 0:
        startup_logs.import_tensorflow(level)


def _error_line(error):
    message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(str(message).split()) or type(error).__name__


def main(argv=None):
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        args.run(args)
    except USER_ERRORS as error:
        if args.verbose:
            traceback.print_exc()
        print(f"keras-mdr {args.command}: error: {_error_line(error)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
