"""Serving over gRPC: a client for TF Serving, and a local server for development and tests."""

from keras_mdr.serving.client import PredictClient, ServingError
from keras_mdr.serving.server import LocalModelServer, serve_forever, start_server
