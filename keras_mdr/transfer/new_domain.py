"""A new domain on a trained model: `add_domain`.

The model is rebuilt from its config with the extended `Domain` (the source
domains keep their ids, the new ones come after) and a transfer plan (see
`keras_mdr.models.transfer_plan`); every weight is copied from the source
model by layer, and each per-domain one (found by its shape, see
`domain_axis`) grows along its domain axis by the new domains' rows, which
start as the mean of the source domains' rows or as the rows of the domain
named by `init_from`. Vocabularies may grow too, with the ids first seen in
the new domains' rows (`learn_new_ids`): appended, so the old ids keep their
rows, with table rows that start as the out-of-vocabulary row and that only
the new domains see (`Preprocessor`'s `vocabulary_sizes`).
"""

import dataclasses
import os

import keras
import numpy as np

from keras_mdr import specs as specs_lib
from keras_mdr.data import columns as columns_lib
from keras_mdr.features.adapt import new_vocabulary
from keras_mdr.layers.adapters.domain_bottleneck_adapter import DomainBottleneckAdapter
from keras_mdr.layers.adapters.domain_lora import HOSTS, DomainLoRA
from keras_mdr.layers.embedding.feature_embedding import FeatureEmbedding
from keras_mdr.layers.routing.domain_normalization import DomainNormalization
from keras_mdr.layers.routing.domain_task_towers import DomainTaskTowers
from keras_mdr.models.domain_freeze import domain_axis
from keras_mdr.models.multi_domain_model import MultiDomainModel
from keras_mdr.models.transfer_plan import METHODS

INSERTED = (DomainBottleneckAdapter, DomainLoRA)


def load_source_model(model):
    """`model` itself, or the keras_mdr model saved at the path `model` (read only, never written)."""
    if isinstance(model, MultiDomainModel):
        return model
    if not isinstance(model, (str, os.PathLike)):
        raise ValueError(
            f"model must be a keras_mdr model or the path of one saved as .keras, got {type(model).__name__}"
        )
    path = os.fspath(model)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model file at {path}")
    try:
        loaded = keras.saving.load_model(path, safe_mode=True)
    except Exception as error:
        raise ValueError(f"{path} is not a keras_mdr model: it does not load as one ({error})") from error
    if not isinstance(loaded, MultiDomainModel):
        raise ValueError(f"{path} is not a keras_mdr model: it holds a {type(loaded).__name__}")
    return loaded


def _new_domains(source, domain):
    """The new domains as `{name: [raw values]}`, checked against the source `Domain`."""
    if isinstance(domain, (str, int)) and not isinstance(domain, bool):
        domain = {str(domain): [domain]}
    elif isinstance(domain, (list, tuple)):
        domain = {str(v): [v] for v in domain}
    elif not isinstance(domain, dict):
        raise ValueError(
            f"domain must be a name, a list of raw values or a dict {{name: [raw values]}}, got {domain!r}"
        )
    try:
        new = specs_lib.Domain(source.column, values=domain, dtype=source.dtype)
    except ValueError as error:
        raise ValueError(
            f"New domain {domain!r} for column '{source.column}' ({source.dtype}): {error}. "
            f"Give its raw values as {{name: [values]}}"
        ) from error
    known = source.value_to_id()
    for name, raw in new.values.items():
        if name in source.values:
            raise ValueError(f"'{name}' is already a domain of column '{source.column}' (domains: {source.names})")
        taken = [v for v in raw if v in known]
        if taken:
            owner = source.names[known[taken[0]]]
            raise ValueError(
                f"Value {taken[0]!r} of column '{source.column}' already belongs to domain '{owner}'; "
                "a new domain needs values of its own"
            )
    return new.values


def _check_data(data, model, domain, new_names):
    """Checks that `data` has the model's columns and rows of every new domain."""
    if data is None:
        raise ValueError("data: pass the new domain's training rows (a DataFrame or a dict of columns)")
    inputs, _ = columns_lib.prepare_columns(data, model.features, domain, model.tasks, what="new domain data")
    value_to_id = domain.value_to_id()
    ids = np.array([value_to_id[v] for v in inputs[domain.column]])
    for name in new_names:
        if not np.any(ids == domain.names.index(name)):
            raise ValueError(
                f"new domain data has no rows of the new domain '{name}' (column '{domain.column}' "
                f"values {domain.values[name]})"
            )


def _new_domain_rows(data, domain, new_values):
    frame = columns_lib.to_frame(data, "new domain data")
    raw = [v for values in new_values.values() for v in values]
    return frame[frame[domain.column].isin(raw)]


def _extended_features(model, frame, min_count):
    """The model's features with the ids of `frame` they lack appended, and `{name: old vocabulary size}`.

    Only vocabularies that a `FeatureEmbedding` embeds grow (not hashed
    features, nor a table a model builds itself, such as SARNet's behaviour
    sequence).
    """
    embedded = {f["name"] for l in model.layers if isinstance(l, FeatureEmbedding) for f in l.sparse_fields}
    features, grown = [], {}
    for feature in model.features:
        if feature.name in embedded and feature.kind != "numeric" and feature.vocabulary is not None:
            count = feature.min_frequency if min_count is None else min_count
            new = new_vocabulary(feature, frame, count, "new domain data")
            if new:
                grown[feature.name] = len(feature.vocabulary)
                feature = dataclasses.replace(feature, vocabulary=list(feature.vocabulary) + new)
        features.append(feature)
    return features, grown


def _vocabulary_sizes(previous, features, grown, source_domains, num_domains):
    """`{feature: [vocabulary size each domain sees]}`: the new domains see the grown vocabularies."""
    sizes = dict(previous or {})
    for feature in features:
        if feature.name in grown or feature.name in sizes:
            old = sizes.get(feature.name, [grown.get(feature.name)] * source_domains)
            sizes[feature.name] = list(old) + [len(feature.vocabulary)] * (num_domains - source_domains)
    return sizes or None


def _adapter_plan(model, bottleneck, activation, dropout):
    after = [layer.name for layer in model.layers if isinstance(layer, FeatureEmbedding)]
    before = [layer.name for layer in model.layers if isinstance(layer, DomainTaskTowers)]
    return {"bottleneck": bottleneck, "activation": activation, "dropout": dropout, "after": after, "before": before}


def _per_domain_layers(model, grown):
    """Names of `model`'s top-level layers with a weight that grows with the domain count in `grown`."""
    names = set()
    for source_layer, layer in zip(model.layers, grown.layers):
        for old, new in zip(source_layer.weights, layer.weights):
            if tuple(old.shape) != tuple(new.shape):
                names.add(layer.name)
    return names


def _lora_plan(model, config, rank, alpha, dropout):
    """LoRA on every top-level layer LoRA can wrap whose weights are all shared by the domains."""
    grown = type(model).from_config(dict(config, transfer=dict(config["transfer"], method="finetune", lora=None)))
    per_domain = _per_domain_layers(model, grown)
    layers = [l.name for l in model.layers if isinstance(l, HOSTS) and l.name not in per_domain]
    if not layers:
        raise ValueError(
            f"Model '{model.name}' has no domain-shared dense layer at the top of its graph for LoRA to wrap "
            f"(LoRA wraps {', '.join(c.__name__ for c in HOSTS)}); use method='adapter' or 'head'"
        )
    return {"rank": rank, "alpha": alpha, "dropout": dropout, "layers": layers, "merged": False}


def _grown(value, axis, rows, source_domains, new_domains, init_index, fresh):
    """`value` with `new_domains` more domains' rows on `axis` (`rows` per domain, domain-major)."""
    moved = np.moveaxis(value, axis, 0)
    per_domain = moved.reshape((source_domains, rows) + moved.shape[1:])
    if fresh:
        start = np.zeros_like(per_domain[0])
    elif init_index is None:
        start = per_domain.mean(axis=0)
    else:
        start = per_domain[init_index]
    grown = np.concatenate([per_domain, np.repeat(start[None], new_domains, axis=0)])
    return np.moveaxis(grown.reshape((-1,) + moved.shape[1:]), 0, axis)


def _grown_tables(model, grown):
    """`{id(table variable): OOV row}` of the `FeatureEmbedding` tables of the features in `grown`."""
    tables = {}
    for layer in model.layers:
        if isinstance(layer, FeatureEmbedding):
            for field, table in zip(layer.sparse_fields, layer.tables):
                if field["name"] in grown:
                    tables[id(table.embeddings)] = 0 if field["pooling"] is None else 1
    return tables


def _copy_weights(source, target, init_index, grown):
    """Copies `source`'s weights into `target` layer by layer, growing the per-domain ones and the tables.

    The rows of ids new to a table start as its out-of-vocabulary row: until
    they train, the new domains' rows compute what they did before the ids
    had rows.
    """
    source_domains, num_domains = source.domain.num_domains, target.domain.num_domains
    tables = _grown_tables(target, grown)
    # A new domain's statistics have not been measured: its first training batch sets them, as for any domain.
    unmeasured = {id(l.seen) for l in target._flatten_layers() if isinstance(l, DomainNormalization)}
    source_layers = {layer.name: layer for layer in source.layers}
    for layer in target.layers:
        if layer.name in source_layers:
            pairs = zip(source_layers[layer.name].weights, layer.weights, strict=True)
        elif isinstance(layer, DomainLoRA) and layer.host.name in source_layers:
            pairs = zip(source_layers[layer.host.name].weights, layer.host.weights, strict=True)
        elif isinstance(layer, INSERTED):
            continue  # a new module: it starts as the identity
        else:
            raise ValueError(f"Layer '{layer.name}' of the new model has no counterpart in the source model")
        for old, new in pairs:
            value = keras.ops.convert_to_numpy(old)
            if id(new) in tables:
                oov = value[tables[id(new)]]
                new.assign(np.concatenate([value, np.repeat(oov[None], new.shape[0] - value.shape[0], axis=0)]))
                continue
            found = domain_axis(old.shape, new.shape, source_domains, num_domains, new.path)
            if found is not None:
                axis, rows = found
                value = _grown(
                    value, axis, rows, source_domains, num_domains - source_domains, init_index, id(new) in unmeasured
                )
            new.assign(value)


def add_domain(
    model,
    domain,
    data,
    *,
    method="adapter",
    init_from=None,
    bottleneck=16,
    adapter_activation="relu",
    adapter_dropout=0.0,
    rank=4,
    alpha=None,
    lora_dropout=0.0,
    learn_new_ids=True,
    new_id_min_count=None,
):
    """A copy of a trained model with one or more new domains, ready to train on them.

    Every per-domain parameter of the model (towers, gates, norms and their
    moving statistics, biases, domain embeddings and experts, STAR's `W_d`,
    HAMUR's per-domain biases, ...) gains the new domains' rows, which start
    as the mean over the source domains (or as the rows of `init_from`); the
    preprocessor accepts the new values. What trains then, with
    `keras_mdr.training.train` or `fit`, depends on `method`:

    - `"adapter"`: a `DomainBottleneckAdapter` after the instance embedding
      and in front of the towers; the new domains' adapters and their own
      parameters train, everything of the source model is frozen.
    - `"lora"`: a `DomainLoRA` on every domain-shared dense layer at the top
      of the graph (bottoms, experts, hyper-networks); the new domains'
      factors and own parameters train. Exported models merge the factors
      into per-domain kernels (`MultiDomainModel.serving_model`).
    - `"head"`: only the new domains' own parameters train.
    - `"finetune"`: everything trains (the baseline; the source domains'
      predictions move).

    With `learn_new_ids` (the default), ids that the new domains' rows of
    `data` bring and the model's vocabularies lack (a new domain's users,
    say) get embedding rows of their own, appended to the tables and
    starting as the out-of-vocabulary row; they train under every method
    (under the frozen ones, only those rows of a table train). The source
    domains keep mapping these ids to the out-of-vocabulary row, as before.

    With the three frozen methods the source domains' predictions stay
    bit-for-bit what they were, also after training on data that mixes old
    and new rows: each row passes only through its own domain's adapter or
    update, the source domains' are zero, and their rows of every per-domain
    variable and embedding table are written back after each step
    (`DomainFreeze`).

    Args:
        model: a trained keras_mdr model, or the path of one saved as `.keras`
            (only read).
        domain: the new domain: a name (its raw column value is the name,
            cast to the column's type), a list of raw values (one new domain
            each) or `{name: [raw values]}`, as for `Domain.values`.
        data: rows with the model's feature, domain and label columns and at
            least one row of every new domain (e.g. the new domain's
            training rows); checked and read for new ids, not trained on.
        method: `"adapter"`, `"lora"`, `"head"` or `"finetune"`.
        init_from: the name of the source domain whose parameters the new
            domains start from; `None` starts from the mean over domains.
        bottleneck, adapter_activation, adapter_dropout: the adapters'
            hidden width, activation and dropout (`"adapter"`).
        rank, alpha, lora_dropout: LoRA's rank r, scale `alpha / r` (`None`:
            `alpha = r`) and input dropout (`"lora"`).
        learn_new_ids: give ids first seen in the new domains' rows of `data`
            embedding rows of their own (see above); `False` leaves the
            vocabularies as they are (those ids go to the OOV row).
        new_id_min_count: an id gets a row when it occurs at least this many
            times in those rows; `None` uses each feature's `min_frequency`
            (the threshold its vocabulary was learned with, 1 by default).

    Returns:
        A new, uncompiled `MultiDomainModel`; the source model is unchanged.

    Raises:
        ValueError: an unknown method, a domain or value that already exists,
            `init_from` that is not a source domain, a file that is not a
            keras_mdr model, `data` without the model's columns or without
            rows of a new domain.

    Example:
    >>> new_model = km.transfer.add_domain(model, "d3", data=new_rows, method="adapter")
    >>> km.training.train(new_model, new_train, new_valid, epochs=5)
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    model = load_source_model(model)
    source = model.domain
    new_values = _new_domains(source, domain)
    extended = specs_lib.Domain(source.column, values={**source.values, **new_values}, dtype=source.dtype)
    init_index = None
    if init_from is not None:
        if init_from not in source.values:
            raise ValueError(f"init_from must name a domain of the model {source.names}, got {init_from!r}")
        init_index = source.names.index(init_from)
    _check_data(data, model, extended, list(new_values))
    if new_id_min_count is not None and (isinstance(new_id_min_count, bool) or int(new_id_min_count) < 1):
        raise ValueError(f"new_id_min_count must be an integer >= 1 or None, got {new_id_min_count!r}")
    features, grown = model.features, {}
    if learn_new_ids:
        rows = _new_domain_rows(data, extended, new_values)
        features, grown = _extended_features(model, rows, new_id_min_count)

    previous = model.transfer or {}
    config = model.spec_config()
    config.update(type(model).hyper_parameters_for_new_domains(model.hyper_parameters, source.num_domains))
    config["domain"] = extended.get_config()
    config["features"] = list(features)
    config["transfer"] = {
        "method": method,
        "source_domains": source.num_domains,
        "adapter": previous.get("adapter"),
        "lora": previous.get("lora"),
        "vocabulary_sizes": _vocabulary_sizes(
            previous.get("vocabulary_sizes"), features, grown, source.num_domains, extended.num_domains
        ),
    }
    if method == "adapter" and config["transfer"]["adapter"] is None:
        config["transfer"]["adapter"] = _adapter_plan(model, bottleneck, adapter_activation, adapter_dropout)
    if method == "lora" and config["transfer"]["lora"] is None:
        config["transfer"]["lora"] = _lora_plan(model, config, rank, alpha, lora_dropout)
    new_model = type(model).from_config(config)
    _copy_weights(model, new_model, init_index, grown)
    return new_model
