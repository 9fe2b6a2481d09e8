"""Serving over gRPC: a client for TF Serving, and a local server for development and tests.

Needs the `serving` extra (grpcio, tensorflow-serving-api).
"""

try:
    import grpc  # noqa: F401
    import tensorflow_serving.apis  # noqa: F401
except ImportError as error:
    raise ImportError(
        f"keras_mdr.serving needs the `serving` extra ({error.name} is missing). "
        "Run: pip install 'keras-mdr[serving]'"
    ) from error

from keras_mdr.serving.client import PredictClient, ServingError  # noqa: E402
from keras_mdr.serving.server import LocalModelServer, serve_forever, start_server  # noqa: E402
