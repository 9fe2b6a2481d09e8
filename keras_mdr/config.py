"""Run configurations: train any CSV without writing Python.

```yaml
data: {train: PATH, validation: PATH, test: PATH, split: {seed: 2022, fractions: [0.8, 0.1, 0.1]}}
features: [{name: user_id, type: categorical, embedding_dim: 16},
           {name: age, type: numeric},
           {name: genres, type: multi_categorical, separator: "|"}]
domain: {column: domain}
tasks: [{name: click, label: label}, {name: like, label: like, mask: click}]
model: {name: mmoe, params: {}}
training: {epochs: 50, batch_size: 4096, learning_rate: 0.001, early_stopping_patience: 4, seed: 2022}
output: DIR
```

Paths are relative to the config file. Without `validation` / `test` files the
`train` file is split at random by `split` (default 80/10/10, seed 2022).

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

import json
import os

import yaml

from keras_mdr import specs as specs_lib
from keras_mdr.data.readers import read_table
from keras_mdr.data.splits import random_split

TOP_LEVEL_KEYS = ("data", "features", "domain", "tasks", "model", "training", "output", "transfer")
TRANSFER_TOP_LEVEL_KEYS = ("data", "training", "output", "transfer")
TRANSFER_KEYS = ("from", "domain_values", "method", "init_from", "params")
DATA_KEYS = ("train", "validation", "test", "split")
TRAINING_DEFAULTS = {
    "epochs": 50,
    "batch_size": 4096,
    "learning_rate": 1e-3,
    "early_stopping_patience": 4,
    "seed": 2022,
    "jit_compile": True,
}
DEFAULT_SPLIT = {"seed": 2022, "fractions": [0.8, 0.1, 0.1]}


def _check_keys(where, mapping, allowed):
    if not isinstance(mapping, dict):
        raise ValueError(f"config: '{where}' must be a mapping, got {type(mapping).__name__}")
    unknown = sorted(set(mapping) - set(allowed))
    if unknown:
        raise ValueError(f"config: unknown keys {unknown} in '{where}'; allowed: {list(allowed)}")


def load_config(path):
    """Reads and checks a YAML or JSON run configuration; fills in defaults.

    Returns a dict with the keys of the module docstring, paths made absolute,
    and `features`, `domain`, `tasks` as spec objects.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"Config file not found: {path}")
    with open(path) as f:
        text = f.read()
    config = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
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
    data = {k: (resolve(v) if k != "split" and v is not None else v) for k, v in data.items()}
    data["split"] = {**DEFAULT_SPLIT, **(data.get("split") or {})}
    _check_keys("data.split", data["split"], ("seed", "fractions"))

    training = dict(config.get("training") or {})
    _check_keys("training", training, TRAINING_DEFAULTS)
    training = {**TRAINING_DEFAULTS, **training}
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
    _check_keys("model", model, ("name", "params"))
    if "name" not in model:
        raise ValueError("config: 'model' needs a 'name'")
    model = {"name": model["name"], "params": dict(model.get("params") or {})}

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


def load_splits(config, features=None, domain=None):
    """`(train, validation, test)` DataFrames for a loaded config (`None` where absent).

    `features` and `domain` (default: the config's) say which columns are text.
    """
    data = config["data"]
    features = config["features"] if features is None else features
    domain = config["domain"] if domain is None else domain

    def read(key):
        return read_table(data[key], features, domain) if data.get(key) else None

    train, validation, test = read("train"), read("validation"), read("test")
    if validation is None and test is None:
        split = data["split"]
        parts = random_split(train, split["fractions"], split["seed"])
        if len(parts) != 3:
            raise ValueError(f"config: split fractions must be [train, validation, test], got {split['fractions']}")
        train, validation, test = parts
    return train, validation, test
