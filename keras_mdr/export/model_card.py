"""`model_card.json`: what an exported version is, for people and tools.

The card lives inside the version directory (`base_dir/<version>/model_card.json`)
so it is written and renamed atomically with the SavedModel it describes and
travels with it; TF Serving ignores files it does not know in a version
directory. Vocabularies are summarised by their size (the values themselves
are inside the SavedModel).
"""

import datetime
import json
import os

import keras
import numpy as np
import tensorflow as tf

from keras_mdr.version import __version__

MODEL_CARD = "model_card.json"
_SPEC_KEYS = ("features", "domain", "tasks", "name", "trainable")


def _json_value(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, set)):
        return list(value)
    raise TypeError(f"model card: {type(value).__name__} value {value!r} is not JSON serializable")


def _feature_summary(feature):
    config = feature.get_config()
    vocabulary = config.pop("vocabulary", None)
    if vocabulary is not None:
        config["vocabulary_size"] = len(vocabulary)
    return config


def model_card(model, version, signatures, jit_compile=False, metrics=None):
    """The card of `model` exported as `version`.

    Args:
        model: the exported `MultiDomainModel`.
        version: the version number.
        signatures: `{signature: {"inputs": {name: dtype}, "outputs": {name: dtype}}}`.
        jit_compile: whether the core runs under XLA.
        metrics: training/evaluation metrics to record (JSON-serializable,
            numpy scalars allowed), or `None`.
    """
    config = model.spec_config()
    card = {
        "model": getattr(model, "registered_name", type(model).__name__),
        "class": f"{type(model).__module__}.{type(model).__name__}",
        "name": model.name,
        "version": int(version),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "signatures": signatures,
        "features": [_feature_summary(f) for f in model.features],
        "domain": model.domain.get_config(),
        "tasks": [t.get_config() for t in model.tasks],
        "hyper_parameters": {k: v for k, v in config.items() if k not in _SPEC_KEYS},
        "jit_compile": bool(jit_compile),
        "metrics": metrics,
        "versions": {"keras_mdr": __version__, "tensorflow": tf.__version__, "keras": keras.__version__},
    }
    # Round trip now so that a non-serializable metric fails the export, not a reader.
    return json.loads(json.dumps(card, default=_json_value))


def write_model_card(version_dir, card):
    path = os.path.join(version_dir, MODEL_CARD)
    with open(path, "w") as f:
        json.dump(card, f, indent=2, sort_keys=False)
        f.write("\n")
    return path


def read_model_card(version_dir):
    """The card of an exported version as a dict."""
    with open(os.path.join(version_dir, MODEL_CARD)) as f:
        return json.load(f)
