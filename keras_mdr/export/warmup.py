"""Warmup requests: `assets.extra/tf_serving_warmup_requests`.

TF Serving replays the `PredictionLog` records of this TFRecord file when it
loads a version, before it marks the version available, so the first real
requests do not pay for graph initialisation (or, with XLA, compilation:
one request per batch size in `WARMUP_BATCH_SIZES`, the sizes of
`serving/batching_parameters.txt`'s `allowed_batch_sizes`).
"""

import os

import numpy as np
import tensorflow as tf

from keras_mdr.data import columns as columns_lib
from keras_mdr.data.examples import serialize_columns

WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
WARMUP_BATCH_SIZES = (1, 8, 32, 128, 256)
# Distinct rows kept from the caller's data; larger batches repeat them.
WARMUP_ROWS = 32


def _serving_apis():
    # tensorflow-serving-api is the `serving` extra; only exporting needs it.
    try:
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    except ImportError as error:
        raise ImportError(
            "Writing TF Serving warmup requests needs tensorflow-serving-api. "
            "Run: pip install 'keras-mdr[serving]'"
        ) from error
    return model_pb2, predict_pb2, prediction_log_pb2


def _spec_rows(model):
    """One row per raw domain value, other columns from the learned specs."""
    domain_values = [v for raw in model.domain.values.values() for v in raw]
    num_rows = len(domain_values)
    columns = {}
    for feature in model.features:
        if feature.kind == "numeric":
            columns[feature.name] = [feature.mean or 0.0] * num_rows
        elif feature.vocabulary:
            vocabulary = feature.vocabulary
            columns[feature.name] = [vocabulary[i % len(vocabulary)] for i in range(num_rows)]
        else:
            columns[feature.name] = [str(i) if feature.dtype == "string" else i for i in range(num_rows)]
    columns[model.domain.column] = domain_values
    return columns


def warmup_columns(model, data=None):
    """Typed columns (`{column: numpy array}`) of the rows to warm up with.

    Args:
        model: a `MultiDomainModel`.
        data: a DataFrame or dict of columns; its first `WARMUP_ROWS` rows are
            used (checked: an unknown domain value is an error). `None` makes
            one row per known domain value from the model's vocabularies and
            means.
    """
    if data is None:
        data = _spec_rows(model)
    columns, _ = columns_lib.prepare_columns(data, model.features, model.domain, what="warmup_data")
    return {name: values[:WARMUP_ROWS] for name, values in columns.items()}


def _tile(columns, batch_size):
    num_rows = len(next(iter(columns.values())))
    index = np.arange(batch_size) % num_rows
    return {name: values[index] for name, values in columns.items()}


def _request(model_name, signature_name, inputs):
    model_pb2, predict_pb2, _ = _serving_apis()
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name)
    )
    for name, values in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
    return request


def warmup_requests(columns, model_name, raw_signature, examples_signature, examples_input):
    """`PredictRequest`s: the raw signature at every warmup batch size, and examples once."""
    requests = [
        _request(model_name, raw_signature, _tile(columns, size)) for size in WARMUP_BATCH_SIZES
    ]
    examples = np.asarray(serialize_columns(columns), dtype=object)
    requests.append(_request(model_name, examples_signature, {examples_input: examples}))
    return requests


def write_warmup_requests(version_dir, requests):
    """Writes `requests` as `PredictionLog` records; returns the file's path."""
    directory = os.path.join(version_dir, WARMUP_DIR)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, WARMUP_FILE)
    _, _, prediction_log_pb2 = _serving_apis()
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(version_dir):
    """The `PredictRequest`s of a version's warmup file (`[]` when it has none)."""
    path = os.path.join(version_dir, WARMUP_DIR, WARMUP_FILE)
    if not os.path.exists(path):
        return []
    _, _, prediction_log_pb2 = _serving_apis()
    requests = []
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        if log.WhichOneof("log_type") != "predict_log":
            raise ValueError(f"{path}: only predict_log warmup records are supported, got {log.WhichOneof('log_type')}")
        requests.append(log.predict_log.request)
    return requests
