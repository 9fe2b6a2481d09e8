"""Typed columns as serialized `tf.Example`s and back: TFRecord shards and the wire format of `predict_examples`.

Each row becomes one `tf.Example` with one single-valued feature per raw
column: `bytes_list` for string columns, `int64_list` for integer ids,
`float_list` for numbers. `parse_spec` parses them back (the exported
signature, `file_dataset`), so both directions live here. A data module:
`keras_mdr.export` builds on it, not the other way round.
"""

import numpy as np
import tensorflow as tf


def parse_spec(input_signature):
    """`{column: tf.io.FixedLenFeature([], dtype)}` for `tf.io.parse_example`.

    Args:
        input_signature: `{column: tf.TensorSpec([None], dtype)}`, as
            returned by `Preprocessor.input_signature()`.
    """
    return {name: tf.io.FixedLenFeature([], spec.dtype) for name, spec in input_signature.items()}


def _feature(value):
    if isinstance(value, (str, bytes)):
        value = value.encode("utf-8") if isinstance(value, str) else value
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    if isinstance(value, np.integer):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))


def serialize_columns(columns):
    """Serialized `tf.Example`s from typed columns (`{column: 1-D numpy array}`).

    String columns are `object` arrays of `str`, ids `int64`, numbers
    `float32`, as `keras_mdr.data.prepare_columns` returns them.
    """
    names = list(columns)
    num_rows = len(columns[names[0]])
    return [
        tf.train.Example(
            features=tf.train.Features(feature={n: _feature(columns[n][i]) for n in names})
        ).SerializeToString()
        for i in range(num_rows)
    ]
