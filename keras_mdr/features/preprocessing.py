"""Raw column values to the numeric tensors a model's core consumes.

This module is TensorFlow-only: string splitting and table lookups have no
`keras.ops` form and cannot run under XLA. The `Preprocessor` runs in the
`tf.data` pipeline during training and in front of the core in an exported
SavedModel, so a served model takes raw values.

Outputs, per row: an `int32` embedding row for each categorical feature
(0 is the out-of-vocabulary row), `int32 [max_len]` rows for each
multi-valued feature (0 is padding, 1 out-of-vocabulary), a standardised
`float32` for each numeric feature, and the `int32` domain id under
`DOMAIN_ID`.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_mdr import specs as specs_lib
from keras_mdr.api_export import km_export
from keras_mdr.mixed_precision import dtype_policy_scope

DOMAIN_ID = "__domain__"
_EPSILON = 1e-12


def input_dtype(spec):
    """The dtype a client sends for a feature or the domain column."""
    return {"string": tf.string, "int64": tf.int64, "float32": tf.float32}[spec.dtype]


def _lookup_layer(values, dtype, name):
    if dtype == specs_lib.INT64:
        return keras.layers.IntegerLookup(
            vocabulary=np.asarray(values, dtype=np.int64),
            num_oov_indices=1,
            mask_token=None,
            name=name,
        )
    # An array, not a list: a layer tracks each item of a list attribute, which
    # took most of the time of building a lookup of 10^6 values.
    return keras.layers.StringLookup(
        vocabulary=np.asarray(values, dtype=object), num_oov_indices=1, mask_token=None, name=name
    )


def _index_layer(feature):
    """Hashing or a vocabulary lookup, as the categorical `feature` declares."""
    if not feature.is_adapted:
        raise ValueError(f"Feature '{feature.name}' has no vocabulary; adapt it first")
    if feature.num_hash_bins is not None:
        return keras.layers.Hashing(feature.num_hash_bins, name="hashing")
    return _lookup_layer(feature.vocabulary, feature.dtype, "lookup")


@km_export("keras_mdr.features.CategoryIndex")
class CategoryIndex(keras.layers.Layer):
    """Maps a raw categorical value to its embedding row.

    Input shape: `[B]` string or int64. Output shape: `[B]` int32 in
    `[0, feature.num_rows)`; unknown values map to row 0.
    """

    def __init__(self, feature, **kwargs):
        super().__init__(**kwargs)
        self.feature = specs_lib.feature_from_config(feature)
        self.index = _index_layer(self.feature)

    def call(self, inputs):
        return tf.cast(self.index(inputs), tf.int32)

    def get_config(self):
        config = super().get_config()
        config["feature"] = self.feature.get_config()
        return config


@km_export("keras_mdr.features.MultiCategoryIndex")
class MultiCategoryIndex(keras.layers.Layer):
    """Splits a multi-valued string and maps each value to its embedding row.

    Input shape: `[B]` string such as `"Drama|Comedy"`. Output shape:
    `[B, max_len]` int32; 0 pads, 1 is the out-of-vocabulary row, values
    beyond `max_len` are dropped.
    """

    def __init__(self, feature, **kwargs):
        super().__init__(**kwargs)
        self.feature = specs_lib.feature_from_config(feature)
        self.index = _index_layer(self.feature)

    def call(self, inputs):
        tokens = tf.strings.split(inputs, sep=self.feature.separator)
        tokens = tokens[:, : self.feature.max_len]
        present = tf.ragged.map_flat_values(tf.not_equal, tokens, "")
        # Hashing rows start at 1 (0 pads); lookup rows start at 1 for OOV.
        rows = tf.ragged.map_flat_values(lambda t: tf.cast(self.index(t), tf.int32) + 1, tokens)
        rows = tf.ragged.map_flat_values(
            lambda r, p: tf.where(p, r, 0), rows, present
        )
        return rows.to_tensor(default_value=0, shape=[None, self.feature.max_len])

    def get_config(self):
        config = super().get_config()
        config["feature"] = self.feature.get_config()
        return config


@km_export("keras_mdr.features.Standardize")
class Standardize(keras.layers.Layer):
    """`(x - mean) / sqrt(variance)`, rejecting NaN and infinite values.

    Input shape: `[B]` float32. Output shape: `[B]` float32.
    """

    def __init__(self, feature, **kwargs):
        super().__init__(**kwargs)
        self.feature = specs_lib.feature_from_config(feature)
        if not self.feature.is_adapted:
            raise ValueError(f"Feature '{self.feature.name}' has no mean and variance; adapt it first")

    def call(self, inputs):
        x = tf.debugging.check_numerics(
            tf.cast(inputs, tf.float32),
            f"numeric feature '{self.feature.name}' must be finite (got NaN or infinity)",
        )
        if not self.feature.normalize:
            return x
        scale = 1.0 / np.sqrt(max(self.feature.variance, _EPSILON))
        return (x - self.feature.mean) * scale

    def get_config(self):
        config = super().get_config()
        config["feature"] = self.feature.get_config()
        return config


@km_export("keras_mdr.features.DomainIndex")
class DomainIndex(keras.layers.Layer):
    """Maps a raw domain value to its domain id, rejecting unknown values.

    Input shape: `[B]` string or int64. Output shape: `[B]` int32 in
    `[0, num_domains)`. An unknown value raises InvalidArgumentError naming
    the column and the value (at serving time TF Serving answers
    INVALID_ARGUMENT).
    """

    def __init__(self, domain, **kwargs):
        super().__init__(**kwargs)
        self.domain = specs_lib.Domain.from_config(domain)
        if not self.domain.is_adapted:
            raise ValueError(f"Domain column '{self.domain.column}' has no values; adapt it first")
        value_to_id = self.domain.value_to_id()
        self.index = _lookup_layer(list(value_to_id), self.domain.dtype, "lookup")
        # Row 0 of the lookup is OOV; it maps to -1 and is rejected in call().
        self._ids = np.asarray([-1] + list(value_to_id.values()), dtype=np.int32)
        known = ", ".join(map(str, value_to_id))
        self._message = f"domain column '{self.domain.column}' got a value outside the known domains [{known}]:"

    def call(self, inputs):
        ids = tf.gather(tf.constant(self._ids), tf.cast(self.index(inputs), tf.int32))
        unknown = ids < 0
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(unknown)),
            [self._message, tf.boolean_mask(inputs, unknown)],
            summarize=5,
        )
        with tf.control_dependencies([check]):
            return tf.identity(ids)

    def get_config(self):
        config = super().get_config()
        config["domain"] = self.domain.get_config()
        return config


def _layer_for(feature):
    if feature.kind == "numeric":
        return Standardize(feature, name=f"{feature.name}_standardize")
    if feature.kind == "multi_categorical":
        return MultiCategoryIndex(feature, name=f"{feature.name}_index")
    return CategoryIndex(feature, name=f"{feature.name}_index")


@km_export("keras_mdr.features.Preprocessor")
class Preprocessor(keras.Model):
    """Raw inputs `{column: [B]}` to the core's inputs `{name: tensor}`.

    Args:
        features: adapted feature specs (or their dict forms).
        domain: the adapted `Domain`.
        vocabulary_sizes: `None`, or `{feature name: [size per domain]}`:
            domain d sees only the first `size[d]` values of that feature's
            vocabulary and maps the others to the out-of-vocabulary row, as
            a model that never learned them would (set by
            `keras_mdr.transfer.add_domain` for ids first seen in a new
            domain, so that the source domains keep their inputs).

    Call arguments:
        inputs: dict of raw columns, one `[B]` tensor per feature and one for
            the domain column. Extra keys are ignored.

    Returns:
        dict with one tensor per feature (see the module docstring) and the
        domain id under `DOMAIN_ID`.
    """

    def __init__(self, features, domain, vocabulary_sizes=None, **kwargs):
        # float32 under a mixed-precision global policy too: raw values standardised in 16 bits lose precision.
        with dtype_policy_scope("float32"):
            super().__init__(dtype="float32", **kwargs)
            self.features, self.domain, _ = specs_lib.normalize_specs(features, domain, ["_"])
            self.feature_layers = [_layer_for(f) for f in self.features]
            self.domain_index = DomainIndex(self.domain, name="domain_index")
        self.vocabulary_sizes = _checked_sizes(vocabulary_sizes, self.features, self.domain)

    def input_signature(self):
        """`{column: tf.TensorSpec([None], dtype)}` for every raw input."""
        signature = {f.name: tf.TensorSpec([None], input_dtype(f), name=f.name) for f in self.features}
        signature.setdefault(
            self.domain.column,
            tf.TensorSpec([None], input_dtype(self.domain), name=self.domain.column),
        )
        return signature

    def call(self, inputs):
        missing = [name for name in self.input_signature() if name not in inputs]
        if missing:
            raise ValueError(f"Missing input columns {missing}")
        outputs = {DOMAIN_ID: self.domain_index(inputs[self.domain.column])}
        for feature, layer in zip(self.features, self.feature_layers):
            rows = layer(inputs[feature.name])
            if feature.name in self.vocabulary_sizes:
                rows = _visible_rows(rows, feature, self.vocabulary_sizes[feature.name], outputs[DOMAIN_ID])
            outputs[feature.name] = rows
        return outputs

    def get_config(self):
        return {
            "features": [f.get_config() for f in self.features],
            "domain": self.domain.get_config(),
            "vocabulary_sizes": self.vocabulary_sizes or None,
            "name": self.name,
        }


def _checked_sizes(vocabulary_sizes, features, domain):
    """`vocabulary_sizes` (see `Preprocessor`) checked against the specs, as `{name: [int]}`."""
    by_name = {f.name: f for f in features}
    checked = {}
    for name, sizes in (vocabulary_sizes or {}).items():
        feature = by_name.get(name)
        if feature is None or feature.kind == "numeric" or feature.vocabulary is None:
            raise ValueError(f"vocabulary_sizes: '{name}' is not a feature with a vocabulary")
        sizes = [int(s) for s in sizes]
        if len(sizes) != domain.num_domains or not all(0 <= s <= len(feature.vocabulary) for s in sizes):
            raise ValueError(
                f"vocabulary_sizes['{name}'] must give {domain.num_domains} sizes (one per domain) in "
                f"[0, {len(feature.vocabulary)}], got {sizes}"
            )
        checked[name] = sizes
    return checked


def _visible_rows(rows, feature, sizes, domain_ids):
    """`rows` with the values domain d does not see (vocabulary index >= sizes[d]) on the OOV row."""
    # Single-valued rows: 0 OOV, vocabulary[i] -> i + 1. Multi-valued: 0 pads, 1 OOV, vocabulary[i] -> i + 2.
    oov = 0 if feature.kind == "categorical" else 1
    last = tf.gather(tf.constant(np.asarray(sizes, dtype=np.int32) + oov), domain_ids)
    if feature.kind != "categorical":
        last = last[:, None]
    return tf.where(rows > last, oov, rows)
