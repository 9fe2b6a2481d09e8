"""Serving: Keras == SavedModel in a TensorFlow-only process == gRPC, for every model of the zoo.

The gRPC checks run through `PredictClient` against the local
`PredictionService` server, and against a real `tensorflow_model_server`
when one is on PATH.
"""

import collections
import os
import shutil
import socket
import subprocess

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

import keras_mdr as km
from keras_mdr.export import EXAMPLES_INPUT, EXAMPLES_SIGNATURE, serialize_examples
from keras_mdr.serving import PredictClient, ServingError, start_server
from keras_mdr.testing import tiny_synthetic
from keras_mdr.testing.serving_checks import TfOnlyPrediction, tiny_hyper_parameters, with_unseen_values

TOLERANCE = 1e-5
BATCH = 256
SINGLE_ROWS = (0, 5, BATCH - 1)  # row 0 and 5 carry unseen categorical values
MODEL_NAME = "mdr"

Served = collections.namedtuple("Served", "name model base_dir version_dir rows expected server tf_only")


def _train(name, data):
    model = km.build_model(
        name, features=data.features, domain=data.domain, tasks=data.tasks, data=data.frame,
        **tiny_hyper_parameters(name),
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(data.frame, epochs=1, batch_size=128, verbose=0, seed=0)
    return model


@pytest.fixture(scope="module")
def data():
    return tiny_synthetic(num_rows=640)


@pytest.fixture(scope="module", params=km.list_models())
def served(request, data, tmp_path_factory):
    """A trained model of the zoo, exported and served by the local server."""
    keras.utils.set_random_seed(1)
    model = _train(request.param, data)
    base_dir = tmp_path_factory.mktemp(request.param) / MODEL_NAME
    version_dir = km.export_saved_model(model, base_dir, warmup_data=data.frame)
    rows = with_unseen_values(data.frame.iloc[:BATCH].reset_index(drop=True))
    columns, _ = km.data.prepare_columns(rows, model.features, model.domain)
    tf_only = TfOnlyPrediction(version_dir, columns, SINGLE_ROWS)  # runs while the rest sets up
    expected = model.predict(rows, batch_size=BATCH)
    with start_server(base_dir, MODEL_NAME) as server:
        yield Served(request.param, model, base_dir, version_dir, rows, expected, server, tf_only)


def _assert_close(actual, expected, what):
    assert set(actual) == set(expected), f"{what}: outputs {sorted(actual)} != tasks {sorted(expected)}"
    for task, values in expected.items():
        assert actual[task].dtype == np.float32, f"{what}: {task} is {actual[task].dtype}"
        np.testing.assert_allclose(actual[task], values, atol=TOLERANCE, rtol=TOLERANCE, err_msg=f"{what}: {task}")


def _columns(served):
    columns, _ = km.data.prepare_columns(served.rows, served.model.features, served.model.domain)
    return columns


def _request(served, columns, signature="serving_default"):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    request.model_spec.signature_name = signature
    for name, values in columns.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
    return request


def _assert_fails(client, request, code, *words):
    with pytest.raises(ServingError) as caught:
        client.send(request)
    assert caught.value.code == code, f"expected {code}, got {caught.value}"
    for word in words:
        assert word in caught.value.details, f"{word!r} not in {caught.value.details!r}"
    return caught.value


def run_client_suite(target, served, local=True):
    """Predictions and bad requests through `PredictClient`; messages checked on the local server."""
    rows, expected = served.rows, served.expected
    with PredictClient(target, MODEL_NAME, retries=20, backoff_s=0.2) as client:
        signatures = client.metadata()["signatures"]
        assert {"serving_default", EXAMPLES_SIGNATURE} <= set(signatures)
        assert signatures["serving_default"]["inputs"]["item_id"] == {"dtype": "int64", "shape": [-1]}
        assert set(signatures["serving_default"]["outputs"]) == {t.name for t in served.model.tasks}

        _assert_close(client.predict(rows), expected, f"{served.name}: gRPC batch {BATCH}")
        for row in SINGLE_ROWS:
            alone = client.predict(rows.iloc[row : row + 1])
            _assert_close(alone, {t: v[row : row + 1] for t, v in expected.items()}, f"gRPC row {row} alone")
        # Python lists of ints are cast to the declared int64, floats to float32.
        as_lists = {name: rows[name].tolist() for name in rows.columns}
        _assert_close(client.predict(as_lists), expected, "gRPC from lists")

        with PredictClient(target, MODEL_NAME, signature=EXAMPLES_SIGNATURE) as examples_client:
            examples = serialize_examples(served.model, rows)
            _assert_close(examples_client.predict({EXAMPLES_INPUT: examples}), expected, "gRPC tf.Example")

        columns = _columns(served)
        good = _request(served, {k: v[:2] for k, v in columns.items()})
        unknown_domain = dict(columns, domain=np.array(["d0", "no-such-domain"], dtype=object))
        unknown_domain = {k: v[:2] for k, v in unknown_domain.items()}
        words = ["domain column 'domain'", "no-such-domain"] if local else ["domain", "no-such-domain"]
        _assert_fails(client, _request(served, unknown_domain), grpc.StatusCode.INVALID_ARGUMENT, *words)
        # Bytes that are not UTF-8 in the domain column: the graph's message quotes them.
        not_utf8 = {k: v[:2] for k, v in dict(columns, domain=np.array([b"d0", b"d\xff\xfe"], dtype=object)).items()}
        words = ["input 'domain' (row 1: b'd\\xff\\xfe')", "not UTF-8", "domain column 'domain'"]
        words = words if local else ["domain"]
        _assert_fails(client, _request(served, not_utf8), grpc.StatusCode.INVALID_ARGUMENT, *words)
        missing = _request(served, {k: v for k, v in columns.items() if k != "age"})
        _assert_fails(client, missing, grpc.StatusCode.INVALID_ARGUMENT, "age")
        wrong_dtype = _request(served, dict(columns, age=columns["age"].astype(np.int32)))
        _assert_fails(client, wrong_dtype, grpc.StatusCode.INVALID_ARGUMENT, *(["age", "int32"] if local else []))
        wrong_shape = _request(served, dict(columns, price=columns["price"][:, None]))
        _assert_fails(client, wrong_shape, grpc.StatusCode.INVALID_ARGUMENT, *(["price"] if local else []))
        unknown_signature = _request(served, columns, signature="no_such_signature")
        _assert_fails(client, unknown_signature, grpc.StatusCode.FAILED_PRECONDITION, "no_such_signature")
        if local:  # TF Serving runs an empty batch; the local server rejects it
            empty = _request(served, {k: v[:0] for k, v in columns.items()})
            _assert_fails(client, empty, grpc.StatusCode.INVALID_ARGUMENT, "empty batch")
        wrong_model = predict_pb2.PredictRequest()
        wrong_model.CopyFrom(good)
        wrong_model.model_spec.name = "no-such-model"
        _assert_fails(client, wrong_model, grpc.StatusCode.NOT_FOUND, "no-such-model")
        with PredictClient(target, "no-such-model") as stranger, pytest.raises(ServingError) as caught:
            stranger.predict(rows)
        assert caught.value.code == grpc.StatusCode.NOT_FOUND

        # Still serving after the bad requests.
        response = client.send(good)
        assert response.model_spec.version.value == int(os.path.basename(served.version_dir))
        _assert_close(client.predict(rows), expected, "gRPC after bad requests")


def test_keras_savedmodel_and_grpc_agree_at_batch_1_and_256(served):
    """The reference is Keras at batch 256 (Keras alone at batch 1 is `run_model_test`'s check)."""
    run_client_suite(served.server.target, served)
    batch, alone = served.tf_only.result()
    _assert_close(batch, served.expected, f"{served.name}: TensorFlow-only SavedModel, batch {BATCH}")
    for row in SINGLE_ROWS:
        reference = {t: v[row : row + 1] for t, v in served.expected.items()}
        _assert_close(alone[row], reference, f"{served.name}: TensorFlow-only SavedModel row {row} alone")


def test_server_picks_up_new_versions_and_survives_a_broken_one(served):
    server = served.server
    assert server.version == 1
    shutil.copytree(served.version_dir, served.base_dir / "2")
    assert server.poll() == 2
    broken = served.base_dir / "3"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    assert server.poll() == 2, "a version that fails to load must not replace the served one"
    with PredictClient(server.target, MODEL_NAME) as client:
        _assert_close(client.predict(served.rows), served.expected, "after the broken version")
        pinned = PredictClient(server.target, MODEL_NAME, version=1)
        with pytest.raises(ServingError) as caught:
            pinned.predict(served.rows)
        assert caught.value.code == grpc.StatusCode.NOT_FOUND
        pinned.close()
    shutil.rmtree(broken)
    shutil.rmtree(served.base_dir / "2")
    assert server.poll() == 1, "rolling back by deleting the newest version serves the previous one"


def test_concurrent_requests_each_get_their_own_rows(served):
    import concurrent.futures

    rows = list(range(0, BATCH, 16))
    # A generous deadline: this checks which rows come back, not latency, and on a busy 2-core machine
    # eight requests at once exceeded the client's default 10 s (seen at load average 10).
    with PredictClient(served.server.target, MODEL_NAME, timeout=120) as client:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda r: client.predict(served.rows.iloc[r : r + 1]), rows))
    for row, answer in zip(rows, answers):
        _assert_close(answer, {t: v[row : row + 1] for t, v in served.expected.items()}, f"concurrent row {row}")


def test_classify_and_regress_are_unimplemented(served):
    from tensorflow_serving.apis import classification_pb2, prediction_service_pb2_grpc

    with grpc.insecure_channel(served.server.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Classify(classification_pb2.ClassificationRequest(), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_client_casts_inputs_to_the_declared_dtypes():
    from keras_mdr.serving.client import cast_input

    ids = cast_input("item_id", [1, 2, 3], tf.int64)
    assert ids.dtype == np.int64 and ids.tolist() == [1, 2, 3]
    assert cast_input("item_id", np.array([4.0, 5.0]), tf.int64).tolist() == [4, 5]
    assert cast_input("item_id", ["6"], tf.int64).tolist() == [6]
    with pytest.raises(ValueError, match="input 'item_id' must hold integer ids"):
        cast_input("item_id", [1.5], tf.int64)
    with pytest.raises(ValueError, match="input 'age' must hold float32 values"):
        cast_input("age", ["old"], tf.float32)
    assert cast_input("age", [30], tf.float32).dtype == np.float32
    # Bytes keep their trailing NULs (a serialized tf.Example ending in an int64 0 has one).
    assert cast_input("examples", [b"\n\x01\x00", b"x"], tf.string).tolist() == [b"\n\x01\x00", b"x"]
    # As in training data: numbers in a string column become their str(), missing values "".
    assert cast_input("user_id", np.array(["u1", 7, None, float("nan")], dtype=object), tf.string).tolist() == [
        "u1", "7", "", "",
    ]


def test_client_retries_while_the_server_is_unavailable(tmp_path):
    with start_server(tmp_path / "empty", MODEL_NAME) as server:
        client = PredictClient(server.target, MODEL_NAME, retries=2, backoff_s=0.01)
        with pytest.raises(ServingError) as caught:
            client.metadata()
        client.close()
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert "no loaded version" in caught.value.details


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(
    shutil.which("tensorflow_model_server") is None,
    reason="tensorflow_model_server is not on PATH (not installable here: no package, no Docker engine); "
    "put it on PATH to run the client suite against stock TF Serving",
)
def test_client_suite_against_tensorflow_model_server(served):
    port = _free_port()
    process = subprocess.Popen(
        [
            shutil.which("tensorflow_model_server"),
            f"--port={port}",
            "--rest_api_port=0",
            f"--model_name={MODEL_NAME}",
            f"--model_base_path={served.base_dir}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        run_client_suite(f"127.0.0.1:{port}", served, local=False)
    finally:
        process.terminate()
        process.wait(timeout=30)


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_deployment_configs_parse_and_match_the_warmup_batch_sizes():
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    with open(os.path.join(REPO, "serving", "models.config")) as f:
        config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert (model.name, model.base_path) == (MODEL_NAME, "/models/mdr")
    assert model.model_version_policy.WhichOneof("policy_choice") == "latest"
    with open(os.path.join(REPO, "serving", "batching_parameters.txt")) as f:
        allowed = [int(line.split(":")[1]) for line in f if line.startswith("allowed_batch_sizes")]
    assert tuple(allowed) == km.export.WARMUP_BATCH_SIZES, "XLA exports warm up exactly the allowed batch sizes"


def test_client_example_script_prints_probabilities(served, capsys, tmp_path):
    import runpy

    example = runpy.run_path(os.path.join(REPO, "serving", "client_example.py"))
    rows = tmp_path / "rows.csv"
    served.rows.iloc[:3].to_csv(rows, index=False)
    assert example["main"](["--target", served.server.target, "--model", MODEL_NAME, "--data", str(rows)]) == 0
    printed = capsys.readouterr().out.split("\n")
    assert set(printed[0].split()) == set(served.expected)
    first = dict(zip(printed[0].split(), map(float, printed[1].split())))
    for task, value in first.items():
        assert value == pytest.approx(float(served.expected[task][0]), abs=1e-5)
    assert example["main"](["--target", served.server.target, "--model", "nope", "--data", str(rows)]) == 1
