"""Run configurations: train any CSV without writing Python.

```yaml
data: {train: PATH, validation: PATH, test: PATH, split: {seed: 2022, fractions: [0.8, 0.1, 0.1]}}
features: [{name: user_id, type: categorical, embedding_dim: 16},
           {name: age, type: numeric},
           {name: genres, type: multi_categorical, separator: "|"}]
domain: {column: domain}
tasks: [{name: click, label: label}, {name: like, label: like, mask: click}]
model: {name: mmoe, params: {},
        dtype_policy: null}      # mixed_bfloat16 or mixed_float16: mixed precision (keras_mdr.mixed_precision)
training: {epochs: 50, batch_size: 4096, learning_rate: 0.001, early_stopping_patience: 4, seed: 2022,
           optimizer: adam,      # lazy_adam, adagrad or sgd: see keras_mdr.training.train
           table_optimizer: null, table_learning_rate: null,  # e.g. adagrad, 0.05: the embedding tables'
           tensorboard: false,   # true: TensorBoard logs in OUTPUT/tensorboard
           distribution: null}   # {strategy: mirrored} or {strategy: multi_worker} (keras_mdr.training.distributed)
output: DIR
```

Paths are relative to the config file. Without `validation` / `test` files the
`train` file is split at random by `split` (default 80/10/10, seed 2022).
A path that is a glob (`shards/train-*.tfrecord`), a list of paths, or a
TFRecord file is streamed through `keras_mdr.data.file_dataset` instead of
read into memory (`keras-mdr convert` writes such shards and a config for
them, with the statistics learned from its training rows).

A transfer config (`keras-mdr transfer`) brings new domains to a trained model
instead; the features, domain and tasks come from that model:

```yaml
data: {train: new_train.csv, validation: new_valid.csv, test: test.csv}
transfer: {from: runs/mmoe/model.keras, domain_values: {age_65: [65]}, method: adapter, init_from: null,
           params: {bottleneck: 16}}
training: {epochs: 20, batch_size: 512, learning_rate: 0.002, early_stopping_patience: 3, seed: 2022}
output: runs/mmoe_age_65
```

`domain_values` names the new domains as `Domain.values` does (a list of raw
values, or `{name: [raw values]}`); `params` are more arguments of
`keras_mdr.transfer.add_domain` (`bottleneck`, `rank`, ...).
"""

import glob
import json
import os

import yaml

from keras_mdr import specs as specs_lib
from keras_mdr.did_you_mean import did_you_mean
from keras_mdr.data.files import TFRECORD, data_files, file_format
from keras_mdr.data.readers import read_table
from keras_mdr.data.splits import random_split
from keras_mdr.mixed_precision import POLICIES
from keras_mdr.optimizers import OPTIMIZERS
from keras_mdr.training.distributed import STRATEGIES

TOP_LEVEL_KEYS = ("data", "features", "domain", "tasks", "model", "training", "output", "transfer")
TRANSFER_TOP_LEVEL_KEYS = ("data", "training", "output", "transfer")
TRANSFER_KEYS = ("from", "domain_values", "method", "init_from", "params")
DATA_KEYS = ("train", "validation", "test", "split")
TRAINING_DEFAULTS = {
    "epochs": 50,
    "batch_size": 4096,
    "learning_rate": 1e-3,
    "optimizer": "adam",
    "table_optimizer": None,
    "table_learning_rate": None,
    "early_stopping_patience": 4,
    "seed": 2022,
    "jit_compile": True,
    "steps_per_execution": 8,
    "tensorboard": False,
    "distribution": None,
}
DEFAULT_SPLIT = {"seed": 2022, "fractions": [0.8, 0.1, 0.1]}


def _check_keys(where, mapping, allowed):
    if not isinstance(mapping, dict):
        raise ValueError(f"config: '{where}' must be a mapping, got {type(mapping).__name__}")
    unknown = sorted(set(mapping) - set(allowed), key=str)
    if unknown:
        raise ValueError(
            f"config: unknown keys {unknown} in '{where}'{did_you_mean(unknown, allowed)}; allowed: {list(allowed)}"
        )


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# What each training setting must be: (check, description).
TRAINING_TYPES = {
    "epochs": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "batch_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "learning_rate": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "optimizer": (lambda v: isinstance(v, str) and v in OPTIMIZERS, f"one of {list(OPTIMIZERS)}"),
    "table_optimizer": (lambda v: v is None or (isinstance(v, str) and v in OPTIMIZERS),
                        f"one of {list(OPTIMIZERS)} or null"),
    "table_learning_rate": (lambda v: v is None or (_is_number(v) and v > 0), "a number > 0 or null"),
    "early_stopping_patience": (lambda v: v is None or (_is_int(v) and v >= 0), "an integer >= 0 or null"),
    "seed": (_is_int, "an integer"),
    "jit_compile": (lambda v: isinstance(v, bool), "true or false"),
    "steps_per_execution": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "tensorboard": (lambda v: isinstance(v, bool), "true or false"),
}


def _check_types(where, mapping, types):
    for key, (check, description) in types.items():
        if key in mapping and not check(mapping[key]):
            raise ValueError(f"config: '{where}.{key}' must be {description}, got {mapping[key]!r}")


def _check_distribution(distribution):
    """`training.distribution`: `null`, or `{strategy: NAME}` with a name of `STRATEGIES`."""
    if distribution is None:
        return
    _check_keys("training.distribution", distribution, ("strategy",))
    strategy = distribution.get("strategy")
    if strategy not in STRATEGIES:
        allowed = list(STRATEGIES)
        raise ValueError(
            f"config: 'training.distribution.strategy' must be one of {allowed}, got {strategy!r}"
            f"{did_you_mean([strategy], allowed)}"
        )


def _parse(path, text):
    """The config file's contents; a syntax error names the file, line and column."""
    if path.endswith(".json"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"config: {path} is not valid JSON: {error}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ValueError(f"config: {path} is not valid YAML: {problem}{where}") from None


def load_config(path):
    """Reads and checks a YAML or JSON run configuration; fills in defaults.

    Returns a dict with the keys of the module docstring, paths made absolute,
    and `features`, `domain`, `tasks` as spec objects.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"Config file not found: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"Config file expected, got the folder {path}")
    with open(path) as f:
        text = f.read()
    config = _parse(path, text)
    if not isinstance(config, dict):
        raise ValueError(f"config: {path} must hold a mapping at the top level")
    _check_keys("top level", config, TOP_LEVEL_KEYS)
    transfer = "transfer" in config
    if transfer:
        extra = sorted(set(config) - set(TRANSFER_TOP_LEVEL_KEYS))
        if extra:
            raise ValueError(
                f"config: a transfer config takes features, domain, tasks and model from the source model; "
                f"remove {extra}"
            )
    for key in ("data", "output") + (("transfer",) if transfer else ("features", "domain", "tasks", "model")):
        if key not in config:
            raise ValueError(f"config: missing required key '{key}'")
    root = os.path.dirname(os.path.abspath(path))

    def resolve(p):
        return p if os.path.isabs(p) else os.path.join(root, p)

    data = config["data"]
    _check_keys("data", data, DATA_KEYS)
    if "train" not in data:
        raise ValueError("config: 'data' needs a 'train' file")
    for key in ("train", "validation", "test"):
        value = data.get(key)
        if value is not None and not (
            isinstance(value, str) or (isinstance(value, list) and value and all(isinstance(p, str) for p in value))
        ):
            raise ValueError(f"config: 'data.{key}' must be a file path, a glob or a list of them, got {value!r}")
    data = {
        k: v if k == "split" or v is None else [resolve(p) for p in v] if isinstance(v, list) else resolve(v)
        for k, v in data.items()
    }
    data["split"] = {**DEFAULT_SPLIT, **(data.get("split") or {})}
    _check_keys("data.split", data["split"], ("seed", "fractions"))
    fractions = data["split"]["fractions"]
    if not isinstance(fractions, list) or not all(_is_number(f) and f > 0 for f in fractions):
        raise ValueError(f"config: 'data.split.fractions' must be a list of numbers > 0, got {fractions!r}")
    _check_types("data.split", data["split"], {"seed": TRAINING_TYPES["seed"]})

    training = dict(config.get("training") or {})
    _check_keys("training", training, TRAINING_DEFAULTS)
    _check_types("training", training, TRAINING_TYPES)
    _check_distribution(training.get("distribution"))
    training = {**TRAINING_DEFAULTS, **training}
    if not isinstance(config["output"], str):
        raise ValueError(f"config: 'output' must be a folder path, got {config['output']!r}")
    if transfer:
        return {
            "data": data,
            "transfer": _transfer_section(config["transfer"], resolve),
            "training": training,
            "output": resolve(config["output"]),
        }

    model = config["model"]
    if isinstance(model, str):
        model = {"name": model}
    _check_keys("model", model, ("name", "params", "dtype_policy"))
    if "name" not in model:
        raise ValueError("config: 'model' needs a 'name'")
    params = model.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError(f"config: 'model.params' must be a mapping, got {params!r}")
    params = dict(params)
    if model.get("dtype_policy") is not None:
        if model["dtype_policy"] not in POLICIES:
            raise ValueError(f"config: 'model.dtype_policy' must be one of {POLICIES}, got {model['dtype_policy']!r}")
        if "dtype_policy" in params:
            raise ValueError("config: 'dtype_policy' is given both in 'model' and in 'model.params'; keep one")
        params["dtype_policy"] = model["dtype_policy"]
    model = {"name": model["name"], "params": params}

    for key in ("features", "tasks"):
        if not isinstance(config[key], list):
            raise ValueError(f"config: '{key}' must be a list, got {config[key]!r}")
    domain = config["domain"]
    domain = {"column": domain} if isinstance(domain, str) else domain
    features, domain, tasks = specs_lib.normalize_specs(config["features"], domain, config["tasks"])
    return {
        "data": data,
        "features": features,
        "domain": domain,
        "tasks": tasks,
        "model": model,
        "training": training,
        "output": resolve(config["output"]),
    }


def _transfer_section(transfer, resolve):
    _check_keys("transfer", transfer, TRANSFER_KEYS)
    for key in ("from", "domain_values"):
        if transfer.get(key) is None:
            raise ValueError(f"config: 'transfer' needs '{key}'")
    params = transfer.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError(f"config: 'transfer.params' must be a mapping, got {type(params).__name__}")
    return {
        "from": resolve(transfer["from"]),
        "domain_values": transfer["domain_values"],
        "method": transfer.get("method", "adapter"),
        "init_from": transfer.get("init_from"),
        "params": dict(params),
    }


def is_streamed(path):
    """Whether a config's data path is streamed from files: a TFRecord file, a glob or a list of paths."""
    if isinstance(path, list) or glob.has_magic(path):
        return True
    try:
        return file_format(path)[0] == TFRECORD
    except ValueError:  # a suffix that only pandas reads (.csv.bz2, ...)
        return False


def load_splits(config, features=None, domain=None):
    """`(train, validation, test)` for a loaded config (`None` where absent).

    Each is a DataFrame, or for a streamed path (`is_streamed`) its list of
    files, which the model reads through `keras_mdr.data.file_dataset`.
    `features` and `domain` (default: the config's) say which columns are text.
    """
    data = config["data"]
    features = config["features"] if features is None else features
    domain = config["domain"] if domain is None else domain

    def read(key):
        if not data.get(key):
            return None
        return data_files(data[key]) if is_streamed(data[key]) else read_table(data[key], features, domain)

    train, validation, test = read("train"), read("validation"), read("test")
    if validation is None and test is None:
        if is_streamed(data["train"]):
            raise ValueError(
                "config: streamed training data (a glob, a list or TFRecord files) is not split at random; "
                "give 'data.validation' and 'data.test'"
            )
        split = data["split"]
        parts = random_split(train, split["fractions"], split["seed"])
        if len(parts) != 3:
            raise ValueError(f"config: split fractions must be [train, validation, test], got {split['fractions']}")
        train, validation, test = parts
    return train, validation, test
