"""A local gRPC `PredictionService` over exported SavedModels, for development and tests.

It answers the same API as TensorFlow Serving's model server
(`tensorflow.serving.PredictionService`: `Predict` and `GetModelMetadata`;
`Classify`, `Regress` and `MultiInference` answer UNIMPLEMENTED) for one
model: the newest version under a base directory, loaded with TensorFlow
only (`tf.saved_model.load`, as TF Serving does with the C++ loader). It
polls the base directory and switches to a newer version once that version
has loaded and replayed its warmup requests, like TF Serving's default
"latest" version policy. Production uses the stock `tensorflow_model_server`
(see `serving/README.md`); this server exists so that the library's tests and
a laptop need no Docker.

Status codes follow TF Serving: unknown model or version NOT_FOUND, unknown
signature FAILED_PRECONDITION, bad inputs INVALID_ARGUMENT (the message names
the input), errors raised by the graph keep their code (an unknown domain
value is INVALID_ARGUMENT). Before any version has loaded, requests get
UNAVAILABLE, which clients retry.
"""

import concurrent.futures
import functools
import logging
import os
import re
import signal
import threading

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from keras_mdr.export.saved_model import SERVING_SIGNATURE, list_versions, read_signature_defs
from keras_mdr.export.warmup import read_warmup_requests

logger = logging.getLogger("keras_mdr.serving")

DEFAULT_POLL_INTERVAL_S = 1.0
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_CODES = {code.value[0]: code for code in grpc.StatusCode}


class RequestError(Exception):
    """A request the server answers with `code` (a `grpc.StatusCode`) and `message`."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def _invalid(message):
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, message)


def _dtype_name(enum):
    try:
        return tf.dtypes.as_dtype(enum).name
    except TypeError:
        return f"invalid dtype {enum}"


def _shape(tensor_shape):
    """A TensorShapeProto as a list, `None` for an unknown rank."""
    if tensor_shape.unknown_rank:
        return None
    return [d.size for d in tensor_shape.dim]


def _check_input(alias, proto, expected, signature_name):
    """Checks one request tensor against the signature; returns its batch size."""
    if proto.dtype != expected.dtype:
        raise _invalid(
            f"input '{alias}' has dtype {_dtype_name(proto.dtype)}, but signature "
            f"'{signature_name}' expects {_dtype_name(expected.dtype)}"
        )
    shape, want = _shape(proto.tensor_shape), _shape(expected.tensor_shape)
    if want is not None and (
        len(shape) != len(want) or any(w != -1 and s != w for s, w in zip(shape, want))
    ):
        raise _invalid(
            f"input '{alias}' has shape {shape}, but signature '{signature_name}' expects "
            f"{want} (-1: any size)"
        )
    if not shape:
        raise _invalid(f"input '{alias}' is a scalar; send a batch (one value per row)")
    if shape[0] == 0:
        raise _invalid(f"input '{alias}' is an empty batch (0 rows); send at least one row")
    return shape[0]


def _graph_error_message(message):
    """A graph error's message without TensorFlow's "Graph execution error" preamble.

    Assert messages arrive with their quotes escaped (`\\'`); they are unescaped.
    """
    noise = ("Graph execution error:", "Detected at node", "<stack traces unavailable>")
    lines = [line for line in message.splitlines() if line.strip() and not line.startswith(noise)]
    return ("\n".join(lines) or message).replace("\\'", "'")


def _not_utf8_message(arrays, error):
    """The message for a graph error that quotes a value whose bytes are not UTF-8.

    The graph rejected a value (an unknown domain, say) and its error message
    quotes the value's raw bytes, so TensorFlow cannot turn the message into
    Python text and raises `UnicodeDecodeError`; `error.object` holds the
    message's bytes. The inputs named are those whose rejected value the
    message quotes.
    """
    message = error.object if isinstance(error.object, bytes) else b""
    quoted = []
    for alias, values in sorted(arrays.items()):
        if values.dtype != object:
            continue
        for row, value in enumerate(values.reshape(-1)):
            if isinstance(value, bytes) and value and value in message and not _is_utf8(value):
                quoted.append(f"input '{alias}' (row {row}: {value!r})")
                break
    what = "; ".join(quoted) or "a string input"
    detail = message.decode("utf-8", "backslashreplace") if message else str(error)
    detail = _graph_error_message(re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", detail))
    return f"{what} holds bytes that are not UTF-8 text; {detail}"


def _is_utf8(value):
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _parse(alias, proto):
    try:
        return tf.make_ndarray(proto)
    except (ValueError, TypeError) as error:
        raise _invalid(f"input '{alias}': tensor parsing error: {error}") from None


class Servable:
    """One loaded version of the model: its signatures, callable from many threads."""

    def __init__(self, version, path):
        self.version = version
        self.path = path
        self.signature_defs = read_signature_defs(path)
        self._loaded = tf.saved_model.load(path)
        self._functions = {name: self._loaded.signatures[name] for name in self.signature_defs}

    def predict(self, request):
        """Runs a `PredictRequest`; returns a `PredictResponse` or raises `RequestError`."""
        signature_name = request.model_spec.signature_name or SERVING_SIGNATURE
        signature = self.signature_defs.get(signature_name)
        if signature is None:
            raise RequestError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'Serving signature key "{signature_name}" not found; '
                f"available: {sorted(self.signature_defs)}",
            )
        sent, expected = set(request.inputs), set(signature.inputs)
        if sent != expected:
            raise _invalid(
                f"Request inputs do not match signature '{signature_name}': "
                f"missing {sorted(expected - sent)}, unexpected {sorted(sent - expected)}"
            )
        batch_sizes = {
            alias: _check_input(alias, proto, signature.inputs[alias], signature_name)
            for alias, proto in request.inputs.items()
        }
        if len(set(batch_sizes.values())) > 1:
            raise _invalid(f"inputs have different batch sizes: {dict(sorted(batch_sizes.items()))}")
        outputs = list(request.output_filter) or sorted(signature.outputs)
        unknown = [o for o in outputs if o not in signature.outputs]
        if unknown or len(set(outputs)) != len(outputs):
            raise _invalid(
                f"output_filter {list(request.output_filter)} must name distinct outputs of "
                f"signature '{signature_name}': {sorted(signature.outputs)}"
            )
        arrays = {alias: _parse(alias, proto) for alias, proto in request.inputs.items()}
        try:
            results = self._functions[signature_name](**{k: tf.constant(v) for k, v in arrays.items()})
        except tf.errors.OpError as error:
            code = _CODES.get(error.error_code, grpc.StatusCode.UNKNOWN)
            raise RequestError(code, _graph_error_message(error.message)) from None
        except UnicodeDecodeError as error:
            raise _invalid(_not_utf8_message(arrays, error)) from None
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.signature_name = signature_name
        response.model_spec.version.value = self.version
        for alias in outputs:
            response.outputs[alias].CopyFrom(tf.make_tensor_proto(results[alias].numpy()))
        return response

    def warm_up(self):
        """Replays the version's warmup requests, as TF Serving does before serving it."""
        requests = read_warmup_requests(self.path)
        for request in requests:
            self.predict(request)
        return len(requests)


def _rpc(method):
    """Turns `RequestError`s (and unexpected errors) into gRPC statuses."""

    @functools.wraps(method)
    def handler(self, request, context):
        try:
            return method(self, request, context)
        except RequestError as error:
            context.abort(error.code, error.message)
        except Exception as error:  # the server must keep serving
            logger.exception("Unexpected error in %s", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")

    return handler


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, server):
        self._server = server

    @_rpc
    def Predict(self, request, context):
        return self._server.servable_for(request.model_spec).predict(request)

    @_rpc
    def GetModelMetadata(self, request, context):
        servable = self._server.servable_for(request.model_spec)
        fields = list(request.metadata_field)
        if not fields:
            raise _invalid("GetModelMetadataRequest must name at least one metadata_field ('signature_def')")
        unsupported = [f for f in fields if f != "signature_def"]
        if unsupported:
            raise _invalid(f"Metadata field {unsupported[0]} is not supported; only 'signature_def' is")
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for name, definition in servable.signature_defs.items():
            signatures.signature_def[name].CopyFrom(definition)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = servable.version
        response.metadata["signature_def"].Pack(signatures)
        return response

    def _unimplemented(self, request, context):
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "The keras_mdr local server implements Predict and GetModelMetadata only; "
            "use the predict signatures (serving_default, predict_examples)",
        )

    Classify = Regress = MultiInference = _unimplemented


class LocalModelServer:
    """Serves the newest SavedModel version under `base_dir` as `model_name` over gRPC.

    Create it with `start_server`. Use it as a context manager, or call
    `stop()`.

    Attributes:
        port: the bound port.
        target: `"host:port"`, for `PredictClient`.
        version: the version being served (`None` before one has loaded).
    """

    def __init__(self, base_dir, model_name, port=0, host="127.0.0.1",
                 poll_interval_s=DEFAULT_POLL_INTERVAL_S, max_workers=8):
        if not model_name:
            raise ValueError(f"model_name must be a non-empty string, got {model_name!r}")
        if poll_interval_s <= 0:
            raise ValueError(f"poll_interval_s must be > 0, got {poll_interval_s!r}")
        self.base_dir = os.path.abspath(os.fspath(base_dir))
        self.model_name = model_name
        self.host = host
        self.poll_interval_s = poll_interval_s
        self._servable = None
        self._failed = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._grpc = grpc.server(
            concurrent.futures.ThreadPoolExecutor(max_workers=max_workers),
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
            ],
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_PredictionService(self), self._grpc)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.port = self._grpc.add_insecure_port(address)
        if not self.port:
            raise OSError(f"Could not bind the gRPC server to {address}")
        self._poller = threading.Thread(target=self._poll_loop, name="keras_mdr-version-poller", daemon=True)

    @property
    def target(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def version(self):
        servable = self._servable
        return servable.version if servable is not None else None

    def servable_for(self, model_spec):
        """The loaded version a request's `ModelSpec` asks for, or a `RequestError`."""
        if model_spec.name != self.model_name:
            raise RequestError(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: Latest({model_spec.name}); "
                f"this server serves model '{self.model_name}'",
            )
        servable = self._servable
        if servable is None:
            raise RequestError(
                grpc.StatusCode.UNAVAILABLE,
                f"Model '{self.model_name}' has no loaded version yet (base directory {self.base_dir})",
            )
        which = model_spec.WhichOneof("version_choice")
        if which == "version" and model_spec.version.value != servable.version:
            raise RequestError(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: Specific({self.model_name}, {model_spec.version.value}); "
                f"loaded version: {servable.version}",
            )
        if which == "version_label":
            raise RequestError(
                grpc.StatusCode.NOT_FOUND,
                f"Version labels are not supported by the local server (got '{model_spec.version_label}')",
            )
        return servable

    def poll(self):
        """Loads the newest version if it is not the one being served; returns the served version.

        A version that fails to load (or to replay its warmup requests) is
        logged and skipped; the current version keeps serving. When no
        version directory is left, the model is unloaded, as TF Serving does.
        """
        with self._lock:
            versions = self._versions()
            if not versions:
                self._servable = None
                return None
            newest = versions[-1]
            if newest == self.version or newest in self._failed:
                return self.version
            try:
                self._servable = self._load(newest)
            except Exception:
                self._failed.add(newest)
                logger.exception("Could not load version %d of model '%s'", newest, self.model_name)
            return self.version

    def _versions(self):
        """Version directories holding a SavedModel (an export in progress has none)."""
        return [
            v for v in list_versions(self.base_dir)
            if os.path.exists(os.path.join(self.base_dir, str(v), "saved_model.pb"))
        ]

    def _load(self, version):
        servable = Servable(version, os.path.join(self.base_dir, str(version)))
        warmed = servable.warm_up()
        logger.info("Serving model '%s' version %d (%d warmup requests)", self.model_name, version, warmed)
        return servable

    def _poll_loop(self):
        while not self._stopped.wait(self.poll_interval_s):
            self.poll()

    def start(self):
        """Loads the newest version (its errors raise), then starts serving and polling."""
        versions = self._versions()
        if versions:
            self._servable = self._load(versions[-1])
        self._grpc.start()
        self._poller.start()
        return self

    def stop(self, grace=None):
        """Stops polling and serving; in-flight requests get `grace` seconds."""
        self._stopped.set()
        self._grpc.stop(grace).wait()
        if self._poller.is_alive():
            self._poller.join()

    def wait(self):
        """Blocks until the server stops."""
        self._grpc.wait_for_termination()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def start_server(base_dir, model_name, port=0, host="127.0.0.1", poll_interval_s=DEFAULT_POLL_INTERVAL_S):
    """Starts a local `PredictionService` for the newest version under `base_dir`.

    Args:
        base_dir: the model's base directory (`export_saved_model`'s).
        model_name: the name requests must carry in `model_spec.name`.
        port: the gRPC port; 0 picks a free one (read it from `.port`).
        host: the address to bind; the default serves this machine only.
        poll_interval_s: how often to look for new versions.

    Returns:
        A started `LocalModelServer` (`.port`, `.target`, `.version`,
        `.poll()`, `.stop()`; a context manager).
    """
    return LocalModelServer(base_dir, model_name, port=port, host=host, poll_interval_s=poll_interval_s).start()


def serve_forever(base_dir, model_name=None, port=8500, host="127.0.0.1",
                  poll_interval_s=DEFAULT_POLL_INTERVAL_S):
    """Serves until SIGINT or SIGTERM: the entry point of `keras-mdr serve`.

    Args:
        base_dir: the model's base directory.
        model_name: the served name; defaults to `base_dir`'s last component.
        port, host, poll_interval_s: as for `start_server`.
    """
    base_dir = os.path.abspath(os.fspath(base_dir))
    model_name = model_name or os.path.basename(base_dir.rstrip(os.sep))
    server = start_server(base_dir, model_name, port=port, host=host, poll_interval_s=poll_interval_s)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    print(
        f"Serving model '{model_name}' (version {server.version}) from {base_dir} "
        f"on {server.target} (gRPC). Ctrl-C stops.",
        flush=True,
    )
    try:
        while not stop.wait(0.5):  # a timed wait lets signal handlers run
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop(grace=5)
