"""Embedding lookups for every feature, concatenated or stacked as fields."""

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.core.validation import check_positive_int


def embedding_fields(features, embedding_dim=None):
    """The layout a `FeatureEmbedding` needs from feature specs.

    Args:
        features: adapted feature specs.
        embedding_dim: override every categorical feature's width (e.g. 1 for
            the linear part of Wide&Deep).

    Returns:
        `(sparse_fields, dense_fields)`: dicts `{name, num_rows, dim, pooling}`
        and numeric feature names.
    """
    sparse, dense = [], []
    for f in features:
        if f.kind == "numeric":
            dense.append(f.name)
            continue
        sparse.append(
            {
                "name": f.name,
                "num_rows": f.num_rows,
                "dim": embedding_dim or f.embedding_dim,
                "pooling": f.pooling if f.kind == "multi_categorical" else None,
            }
        )
    return sparse, dense


@km_export("keras_mdr.layers.FeatureEmbedding")
class FeatureEmbedding(keras.layers.Layer):
    """Embeds each categorical feature and gathers the numeric ones.

    Multi-valued features (`[B, L]` rows, 0 = padding) are pooled over the
    values present: their mean or sum; a row with no value embeds to zeros.

    Args:
        sparse_fields: list of `{name, num_rows, dim, pooling}` (see
            `embedding_fields`); `pooling` is `None` for single-valued ones.
        dense_fields: numeric feature names.
        output_mode: `"concat"` gives `[B, sum(dims) + n_dense]`; `"fields"`
            gives `[B, n_sparse + n_dense, dim]` (all dims equal), each
            numeric feature as `x * v_f` with a learned `v_f`, for FM and
            cross layers.
        embeddings_initializer: initializer of the tables.

    Call arguments:
        inputs: dict from the `Preprocessor` (extra keys are ignored).

    Returns:
        see `output_mode`.
    """

    def __init__(
        self,
        sparse_fields,
        dense_fields=(),
        output_mode="concat",
        embeddings_initializer="uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if output_mode not in ("concat", "fields"):
            raise ValueError(f"output_mode must be 'concat' or 'fields', got {output_mode!r}")
        self.sparse_fields = [dict(f) for f in sparse_fields]
        self.dense_fields = list(dense_fields)
        if not self.sparse_fields and not self.dense_fields:
            raise ValueError("FeatureEmbedding needs at least one feature")
        self.output_mode = output_mode
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        dims = {f["dim"] for f in self.sparse_fields}
        if output_mode == "fields" and len(dims) > 1:
            raise ValueError(
                f"output_mode='fields' needs one embedding_dim for all categorical features, got {sorted(dims)}"
            )
        self.field_dim = dims.pop() if dims else 1
        self.tables = [
            keras.layers.Embedding(
                check_positive_int(f"num_rows of '{f['name']}'", f["num_rows"]),
                check_positive_int(f"embedding_dim of '{f['name']}'", f["dim"]),
                embeddings_initializer=self.embeddings_initializer,
                name=f"{f['name']}_embedding",
            )
            for f in self.sparse_fields
        ]

    @property
    def output_dim(self):
        if self.output_mode == "fields":
            return self.field_dim
        return sum(f["dim"] for f in self.sparse_fields) + len(self.dense_fields)

    @property
    def num_fields(self):
        return len(self.sparse_fields) + len(self.dense_fields)

    def build(self, inputs_shape):
        for field, table in zip(self.sparse_fields, self.tables):
            table.build(inputs_shape[field["name"]])
        if self.output_mode == "fields" and self.dense_fields:
            self.dense_vectors = self.add_weight(
                name="dense_vectors",
                shape=(len(self.dense_fields), self.field_dim),
                initializer=self.embeddings_initializer,
            )

    def _embed(self, field, table, ids):
        vectors = table(ids)
        if field["pooling"] is None:
            return vectors
        present = ops.cast(ops.expand_dims(ids > 0, -1), vectors.dtype)
        pooled = ops.sum(vectors * present, axis=1)
        if field["pooling"] == "mean":
            pooled = pooled / ops.maximum(ops.sum(present, axis=1), 1.0)
        return pooled

    def call(self, inputs):
        sparse = [
            self._embed(field, table, inputs[field["name"]])
            for field, table in zip(self.sparse_fields, self.tables)
        ]
        dense = [ops.cast(ops.expand_dims(inputs[name], -1), self.compute_dtype) for name in self.dense_fields]
        if self.output_mode == "concat":
            return ops.concatenate(sparse + dense, axis=-1)
        fields = [ops.expand_dims(v, 1) for v in sparse]
        if dense:
            values = ops.concatenate(dense, axis=-1)
            fields.append(ops.expand_dims(values, -1) * self.dense_vectors)
        return ops.concatenate(fields, axis=1)

    def compute_output_shape(self, inputs_shape):
        batch = next(iter(inputs_shape.values()))[0]
        if self.output_mode == "fields":
            return (batch, self.num_fields, self.field_dim)
        return (batch, self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            sparse_fields=self.sparse_fields,
            dense_fields=self.dense_fields,
            output_mode=self.output_mode,
            embeddings_initializer=keras.initializers.serialize(self.embeddings_initializer),
        )
        return config


def concat_columns(features, names, embedding_dim=None):
    """The columns of the named features in a `"concat"` `FeatureEmbedding`'s output, in `names`' order.

    Args:
        features: adapted feature specs (the ones the embedding was built from).
        names: feature names.
        embedding_dim: as for `embedding_fields`.

    Returns:
        A list of column indices.
    """
    sparse, dense = embedding_fields(features, embedding_dim)
    spans, start = {}, 0
    for field in sparse:
        spans[field["name"]] = range(start, start + field["dim"])
        start += field["dim"]
    for name in dense:
        spans[name] = range(start, start + 1)
        start += 1
    unknown = [n for n in names if n not in spans]
    if unknown:
        raise ValueError(f"unknown features {unknown}; the features are {sorted(spans)}")
    return [column for name in names for column in spans[name]]
