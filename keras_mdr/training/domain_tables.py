"""Per-domain tables of what a model's routing layers do, computed on raw rows at inference."""

import warnings

import keras
import numpy as np
import pandas as pd


def find_layer(model, layer_class, layer_name=None):
    """The model's one layer of `layer_class` (named `layer_name`, when given)."""
    found = [
        layer for layer in model.layers if isinstance(layer, layer_class) and layer_name in (None, layer.name)
    ]
    if len(found) != 1:
        names = [layer.name for layer in model.layers if isinstance(layer, layer_class)]
        raise ValueError(
            f"Expected one {layer_class.__name__} layer named {layer_name!r} (None: any); the model has {names}"
        )
    return found[0]


def probe_batches(model, data, tensors, batch_size=None):
    """Yields, per batch of raw `data`, the values of the symbolic `tensors` of the model's graph at inference."""
    with warnings.catch_warnings():
        # The core's inputs are keyed by feature name on purpose (see `core_inputs`).
        warnings.filterwarnings("ignore", message="When providing `inputs` as a dict")
        probe = keras.Model(model.input, tensors)
    for batch in model.make_dataset(data, batch_size, labels=False):
        yield keras.tree.map_structure(np.asarray, probe(batch, training=False))


def domain_table(model, values, rows, column_prefix):
    """A DataFrame indexed by domain name: `values [D, N]` as columns `{column_prefix}{j}`, then `rows [D]`, if given."""
    table = pd.DataFrame(
        values,
        index=pd.Index(model.domain.names, name="domain"),
        columns=[f"{column_prefix}{j}" for j in range(values.shape[1])],
    )
    if rows is not None:
        table["rows"] = np.asarray(rows).astype(np.int64)
    return table


def domain_shares(model, domain_ids, choices, num_choices):
    """`(counts [D, num_choices], rows [D])` of the (domain, choice) pairs; `choices` is `[B]` or `[B, K]`."""
    domain_ids = np.asarray(domain_ids)
    choices = np.asarray(choices).reshape(len(domain_ids), -1)
    counts = np.zeros((model.domain.num_domains, num_choices))
    np.add.at(counts, (np.repeat(domain_ids, choices.shape[1]), choices.reshape(-1)), 1.0)
    return counts, np.bincount(domain_ids, minlength=model.domain.num_domains)
