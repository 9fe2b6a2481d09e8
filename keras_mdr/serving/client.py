"""A gRPC client for TF Serving's `PredictionService` (stock server or the local one).

    client = PredictClient("localhost:8500", "mdr")
    probabilities = client.predict(frame)        # {task: numpy array [N]}

Inputs are cast to the dtypes the signature declares, read once from
`GetModelMetadata`: a Python list of ints would otherwise travel as int32 and
the server would reject it for an int64 input. Columns the signature does
not name (labels, say) are ignored.
"""

import time

import grpc
import numpy as np
import pandas as pd
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

DEFAULT_SIGNATURE = "serving_default"
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_MAX_BACKOFF_S = 5.0


class ServingError(Exception):
    """A failed RPC: `code` is the `grpc.StatusCode`, `details` the server's message."""

    def __init__(self, code, details, target=None):
        self.code = code
        self.details = details
        self.target = target
        where = f" (server {target})" if target else ""
        super().__init__(f"{code.name}: {details}{where}")


def _tensor_info(info):
    shape = None if info.tensor_shape.unknown_rank else [d.size for d in info.tensor_shape.dim]
    return {"dtype": tf.dtypes.as_dtype(info.dtype).name, "shape": shape}


def _columns(data):
    if isinstance(data, pd.DataFrame):
        return {str(name): data[name].to_numpy() for name in data.columns}
    if isinstance(data, dict):
        return dict(data)
    raise TypeError(f"predict takes a pandas DataFrame or a dict of columns, got {type(data).__name__}")


def _string(value):
    # The same conversion as training data (`keras_mdr.data.prepare_columns`):
    # missing values become "" (the out-of-vocabulary row), others str(value).
    if isinstance(value, (str, bytes)):
        return value
    if value is None or (isinstance(value, (float, np.floating)) and np.isnan(value)):
        return ""
    return str(value)


def _as_strings(values):
    if isinstance(values, np.ndarray) and values.dtype.kind in "US":
        return values.astype(object)
    # Not np.asarray(values): a list of bytes would become a fixed-width "S" array, which drops trailing
    # NUL bytes (a serialized tf.Example can end with one).
    values = np.asarray(values, dtype=object)
    out = np.empty(values.shape, dtype=object)
    for index, value in np.ndenumerate(values):
        out[index] = _string(value)
    return out


def cast_input(name, values, dtype):
    """`values` as a numpy array of `dtype` (a `tf.DType`), with an error naming `name`."""
    if dtype == tf.string:
        return _as_strings(values)
    values = np.asarray(values)
    target = dtype.as_numpy_dtype
    if values.dtype.kind in "OUS":
        try:
            return values.astype(np.float64).astype(target) if dtype.is_floating else values.astype(target)
        except (TypeError, ValueError):
            raise ValueError(f"input '{name}' must hold {dtype.name} values, got {values.dtype} data") from None
    if dtype.is_integer and values.dtype.kind == "f":
        if not np.all(np.isfinite(values) & (values == np.round(values))):
            raise ValueError(f"input '{name}' must hold integer ids ({dtype.name}), got non-integer numbers")
    return values.astype(target)


class PredictClient:
    """Sends `PredictRequest`s for one model and signature; returns numpy arrays.

    Args:
        target: `"host:port"` of the gRPC endpoint (TF Serving: port 8500).
        model_name: the served model's name.
        signature: the signature to call.
        timeout: seconds per RPC attempt.
        retries: extra attempts when the server is UNAVAILABLE (starting,
            restarting, loading its first version), with exponential backoff.
        backoff_s: the first retry's delay; it doubles per attempt (at most 5 s).
        version: ask for this version; `None` means the newest served.
    """

    def __init__(self, target, model_name, signature=DEFAULT_SIGNATURE, timeout=10.0, retries=4,
                 backoff_s=0.1, version=None):
        if not model_name:
            raise ValueError(f"model_name must be a non-empty string, got {model_name!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
        self.target = target
        self.model_name = model_name
        self.signature = signature
        self.timeout = float(timeout)
        self.retries = retries
        self.backoff_s = float(backoff_s)
        self.version = version
        self._channel = grpc.insecure_channel(
            target,
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
            ],
        )
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._inputs = None

    # RPCs ---------------------------------------------------------------

    def _model_spec(self, spec, signature=None):
        spec.name = self.model_name
        if signature is not None:
            spec.signature_name = signature
        if self.version is not None:
            spec.version.value = int(self.version)

    def _call(self, method, request):
        for attempt in range(self.retries + 1):
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.UNAVAILABLE and attempt < self.retries:
                    time.sleep(min(self.backoff_s * 2**attempt, _MAX_BACKOFF_S))
                    continue
                raise ServingError(error.code(), error.details(), self.target) from None

    def metadata(self):
        """The model's signatures, from GetModelMetadata.

        Returns:
            `{"model_name", "version", "signatures": {name: {"inputs": {input:
            {"dtype", "shape"}}, "outputs": {...}}}}` (shape `-1` is any size).
        """
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._model_spec(request.model_spec)
        response = self._call(self._stub.GetModelMetadata, request)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        return {
            "model_name": response.model_spec.name,
            "version": response.model_spec.version.value,
            "signatures": {
                name: {
                    "inputs": {k: _tensor_info(v) for k, v in sorted(sig.inputs.items())},
                    "outputs": {k: _tensor_info(v) for k, v in sorted(sig.outputs.items())},
                }
                for name, sig in sorted(signatures.signature_def.items())
                if not name.startswith("__")
            },
        }

    def input_dtypes(self):
        """`{input: tf.DType}` of this client's signature (read once, then cached)."""
        if self._inputs is None:
            signatures = self.metadata()["signatures"]
            if self.signature not in signatures:
                raise ServingError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"model '{self.model_name}' has no signature '{self.signature}'; "
                    f"available: {sorted(signatures)}",
                    self.target,
                )
            inputs = signatures[self.signature]["inputs"]
            self._inputs = {name: tf.as_dtype(info["dtype"]) for name, info in inputs.items()}
        return self._inputs

    def make_request(self, data, output_filter=None):
        """The `PredictRequest` `predict` would send for `data`."""
        columns = _columns(data)
        dtypes = self.input_dtypes()
        missing = [name for name in dtypes if name not in columns]
        if missing:
            raise ValueError(
                f"data lacks inputs {missing} of signature '{self.signature}' "
                f"(it takes {sorted(dtypes)})"
            )
        request = predict_pb2.PredictRequest(output_filter=list(output_filter or []))
        self._model_spec(request.model_spec, self.signature)
        for name, dtype in dtypes.items():
            values = np.atleast_1d(cast_input(name, columns[name], dtype))
            request.inputs[name].CopyFrom(tf.make_tensor_proto(values, dtype=dtype))
        return request

    def send(self, request):
        """Sends a prepared `PredictRequest` (retries and errors as `predict`)."""
        return self._call(self._stub.Predict, request)

    def predict(self, data, output_filter=None):
        """Predicts for `data`, a DataFrame or a dict of columns (lists or arrays).

        Args:
            data: one value per row in each column the signature takes; other
                columns are ignored.
            output_filter: the outputs to return (default: all).

        Returns:
            `{output: numpy array}`, e.g. `{task: probability [N]}`.

        Raises:
            ServingError: the server answered an error (its `code`: NOT_FOUND
                for an unknown model, INVALID_ARGUMENT for bad inputs such as
                an unknown domain value, UNAVAILABLE after the retries...).
            ValueError: `data` lacks an input or has values of the wrong kind.
        """
        response = self.send(self.make_request(data, output_filter))
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
