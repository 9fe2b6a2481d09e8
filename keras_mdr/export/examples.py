"""`serialize_examples`: a model's raw rows as the serialized `tf.Example`s of `predict_examples`."""

from keras_mdr.data import columns as columns_lib
from keras_mdr.data.examples import serialize_columns


def serialize_examples(model, data):
    """Serialized `tf.Example`s, one per row of `data`, for `predict_examples`.

    Args:
        model: a `MultiDomainModel` (its feature and domain specs say which
            columns to take and their types).
        data: a pandas DataFrame or a dict of columns; extra columns (labels)
            are ignored.

    Returns:
        A list of `bytes`, one serialized `tf.Example` per row.
    """
    columns, _ = columns_lib.prepare_columns(data, model.features, model.domain)
    return serialize_columns(columns)
