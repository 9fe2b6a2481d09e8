"""The `keras-mdr` command line."""

import argparse
import os
import sys


def _quickstart(args):
    import keras_mdr as km
    from keras_mdr import run

    data = km.data.synthetic(num_rows=args.rows, seed=args.seed)
    train, validation, test = km.data.random_split(data.frame, (0.8, 0.1, 0.1), seed=args.seed)
    print(
        f"Synthetic data: {len(data.frame)} rows, domains {data.domain.names}, "
        f"tasks {[t.name for t in data.tasks]}; training '{args.model}'."
    )
    training = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "early_stopping_patience": 2,
        "seed": args.seed,
        "jit_compile": "auto",
    }
    run.train_and_evaluate(
        args.model, {}, data.features, data.domain, data.tasks, train, validation, test, training, args.output
    )
    print(f"\nSaved the model to {os.path.join(args.output, run.MODEL_FILE)}")


def _train(args):
    from keras_mdr import config as config_lib
    from keras_mdr import run

    config = config_lib.load_config(args.config)
    train, validation, test = config_lib.load_splits(config)
    run.train_and_evaluate(
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
    )
    print(f"\nWrote {os.path.join(config['output'], run.MODEL_FILE)} and {run.METRICS_FILE}")


def _evaluate(args):
    import keras

    from keras_mdr import config as config_lib
    from keras_mdr import run

    config = config_lib.load_config(args.config)
    path = os.path.join(config["output"], run.MODEL_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No trained model at {path}; run `keras-mdr train --config {args.config}` first")
    model = keras.saving.load_model(path)
    _, validation, test = config_lib.load_splits(config)
    metrics = run.evaluate_splits(
        model, {"validation": validation, "test": test}, batch_size=config["training"]["batch_size"]
    )
    run.write_json(metrics, os.path.join(config["output"], "evaluation.json"))


def _list_models(args):
    import keras_mdr as km

    for name in km.list_models():
        params = ", ".join(f"{k}={v!r}" for k, v in km.models.hyper_parameters(name).items())
        print(f"{name}: {params}" if args.verbose else name)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-mdr", description="Multi-domain, multi-task recommendation models for Keras 3."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    quickstart = commands.add_parser(
        "quickstart",
        help="train on the built-in synthetic data, print per-domain AUC, save, export and serve",
        description="Train a model on the built-in synthetic data, print the per-domain x per-task "
        "AUC table and save the model.",
    )
    quickstart.add_argument("--model", default="shared_bottom", help="model name (see list-models)")
    quickstart.add_argument("--rows", type=int, default=60_000, help="synthetic rows to generate")
    quickstart.add_argument("--epochs", type=int, default=5, help="maximum training epochs")
    quickstart.add_argument("--batch-size", type=int, default=1024, help="rows per batch")
    quickstart.add_argument("--learning-rate", type=float, default=2e-3, help="Adam learning rate")
    quickstart.add_argument("--seed", type=int, default=2022, help="data, split and initialisation seed")
    quickstart.add_argument("--output", default="quickstart_output", help="output folder")
    quickstart.set_defaults(run=_quickstart)

    train = commands.add_parser(
        "train",
        help="train a model from a config file",
        description="Train from a YAML/JSON config; writes OUTPUT/model.keras and OUTPUT/metrics.json.",
    )
    train.add_argument("--config", required=True, help="YAML or JSON run configuration")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a trained model per domain and task",
        description="Evaluate OUTPUT/model.keras on the config's validation and test data.",
    )
    evaluate.add_argument("--config", required=True, help="the config the model was trained with")
    evaluate.set_defaults(run=_evaluate)

    list_models = commands.add_parser(
        "list-models", help="list the model names", description="List the models build_model accepts."
    )
    list_models.add_argument("-v", "--verbose", action="store_true", help="also show hyper-parameters")
    list_models.set_defaults(run=_list_models)
    return parser


def main(argv=None):
    # TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notes) is not for CLI users.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError, ImportError, KeyError) as error:
        print(f"keras-mdr {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
