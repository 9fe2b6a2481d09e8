"""Export: versioned atomic SavedModels, both signatures, warmup records, the model card, XLA."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import prediction_log_pb2

import keras_mdr as km
from keras_mdr.export import saved_model as saved_model_lib
from keras_mdr.export import warmup as warmup_lib
from keras_mdr.serving.server import Servable
from keras_mdr.testing import tiny_synthetic
from keras_mdr.testing.serving_checks import with_unseen_values

TOLERANCE = 1e-5
BATCH = 256
METRICS = {"auc": np.float32(0.71), "tasks": {"click": {"auc": 0.7}}}


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(3)
    data = tiny_synthetic(num_rows=640)
    model = km.build_model(
        "shared_bottom", features=data.features, domain=data.domain, tasks=data.tasks, data=data.frame,
        bottom_units=[8], tower_units=[8],
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(data.frame, epochs=1, batch_size=128, verbose=0, seed=0)
    rows = with_unseen_values(data.frame.iloc[:BATCH].reset_index(drop=True))
    columns, _ = km.data.prepare_columns(rows, model.features, model.domain)
    return model, data, rows, columns, model.predict(rows, batch_size=BATCH)


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    model, data, *_ = trained
    base_dir = tmp_path_factory.mktemp("export") / "mdr"
    version_dir = km.export_saved_model(model, base_dir, warmup_data=data.frame, metrics=METRICS)
    return base_dir, version_dir


def _run(signature, inputs):
    return {k: v.numpy() for k, v in signature(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def _assert_close(actual, expected, what):
    assert set(actual) == set(expected), what
    for task in expected:
        np.testing.assert_allclose(actual[task], expected[task], atol=TOLERANCE, rtol=TOLERANCE, err_msg=what)


def test_export_writes_a_versioned_saved_model_with_a_model_card(trained, exported):
    model, *_ = trained
    base_dir, version_dir = exported
    assert os.listdir(base_dir) == ["1"], "only the version directory, no temporary debris"
    assert version_dir == os.path.join(base_dir, "1")
    for name in ("saved_model.pb", "variables", "model_card.json", "assets.extra/tf_serving_warmup_requests"):
        assert os.path.exists(os.path.join(version_dir, name)), name
    card = km.export.read_model_card(version_dir)
    assert card["model"] == "shared_bottom" and card["version"] == 1
    assert card["hyper_parameters"]["bottom_units"] == [8]
    assert {f["name"]: f.get("vocabulary_size") for f in card["features"]}["item_id"] == 60
    assert card["domain"]["column"] == "domain" and list(card["domain"]["values"]) == ["d0", "d1", "d2"]
    assert [t["name"] for t in card["tasks"]] == ["click", "like"]
    assert card["metrics"]["auc"] == pytest.approx(0.71)
    assert card["versions"]["keras_mdr"] == km.__version__ and card["versions"]["tensorflow"] == tf.__version__
    assert card["signatures"]["serving_default"]["inputs"] == {
        "age": "float32", "category": "string", "domain": "string", "gender": "string",
        "item_id": "int64", "price": "float32", "tags": "string", "user_id": "string",
    }
    assert card["signatures"]["predict_examples"] == {
        "inputs": {"examples": "string"}, "outputs": {"click": "float32", "like": "float32"},
    }
    signature = km.export.read_signature_defs(version_dir)["serving_default"]
    assert [d.size for d in signature.outputs["click"].tensor_shape.dim] == [-1]


def test_versions_count_up_and_are_never_overwritten(trained, tmp_path):
    model, *_ = trained
    base_dir = tmp_path / "mdr"
    assert km.export_saved_model(model, base_dir, version=7).endswith(os.sep + "7")
    with pytest.raises(FileExistsError, match="Version 7 already exists"):
        km.export_saved_model(model, base_dir, version=7)
    with pytest.raises(ValueError, match="version must be an integer >= 1, got 0"):
        km.export_saved_model(model, base_dir, version=0)
    assert km.export_saved_model(model, base_dir).endswith(os.sep + "8")
    assert sorted(os.listdir(base_dir)) == ["7", "8"]


def test_signatures_agree_with_keras_including_unseen_values(trained, exported):
    model, _, rows, columns, expected = trained
    loaded = tf.saved_model.load(exported[1])
    raw = loaded.signatures["serving_default"]
    _assert_close(_run(raw, columns), expected, "serving_default, batch 256")
    _assert_close(_run(raw, {k: v[:1] for k, v in columns.items()}), {t: v[:1] for t, v in expected.items()},
                  "serving_default, batch 1")
    examples = km.export.serialize_examples(model, rows)
    _assert_close(_run(loaded.signatures["predict_examples"], {"examples": examples}), expected, "predict_examples")
    bad = dict(columns, domain=np.array(["d9"] * BATCH, dtype=object))
    unknown_domain = r"domain column \\?'domain\\?' got a value outside the known domains"
    with pytest.raises(tf.errors.InvalidArgumentError, match=unknown_domain):
        _run(raw, bad)
    incomplete = tf.train.Example()
    incomplete.features.feature["age"].float_list.value.append(1.0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="category"):
        _run(loaded.signatures["predict_examples"], {"examples": [incomplete.SerializeToString()]})


def test_warmup_file_holds_prediction_logs_that_replay(trained, exported):
    model, *_ = trained
    version_dir = exported[1]
    path = os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests")
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path)]
    assert all(log.WhichOneof("log_type") == "predict_log" for log in logs)
    requests = [log.predict_log.request for log in logs]
    raw = [r for r in requests if r.model_spec.signature_name == "serving_default"]
    sizes = [r.inputs["age"].tensor_shape.dim[0].size for r in raw]
    assert sizes == list(warmup_lib.WARMUP_BATCH_SIZES)
    assert set(raw[0].inputs) == set(model.preprocessor.input_signature())
    assert [r.model_spec.signature_name for r in requests].count("predict_examples") == 1
    assert {r.model_spec.name for r in requests} == {"mdr"}
    # Real rows: the first warmup rows are the first rows of warmup_data.
    assert tf.make_ndarray(raw[-1].inputs["user_id"])[0].decode() == trained[1].frame["user_id"][0]
    servable = Servable(1, version_dir)
    assert servable.warm_up() == len(requests)
    response = servable.predict(raw[-1])
    assert tf.make_ndarray(response.outputs["click"]).shape == (warmup_lib.WARMUP_BATCH_SIZES[-1],)


def test_untrained_model_exports_with_default_warmup_rows_covering_every_domain(trained, tmp_path):
    data = trained[1]
    model = km.build_model("shared_bottom", features=data.features, domain=data.domain, tasks=data.tasks,
                           data=data.frame, bottom_units=[4], tower_units=[4])
    version_dir = km.export_saved_model(model, tmp_path / "mdr")
    requests = km.export.read_warmup_requests(version_dir)
    domains = tf.make_ndarray(requests[-1].inputs["examples"])
    parsed = tf.io.parse_example(domains, {"domain": tf.io.FixedLenFeature([], tf.string)})
    assert sorted(set(parsed["domain"].numpy().tolist())) == [b"d0", b"d1", b"d2"]
    Servable(1, version_dir).warm_up()


def test_xla_export_compiles_the_core_and_gives_the_same_numbers(trained, tmp_path):
    model, data, rows, columns, expected = trained
    version_dir = km.export_saved_model(model, tmp_path / "mdr", jit_compile=True, warmup_data=data.frame)
    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(version_dir, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    compiled = [
        fn.signature.name for fn in saved.meta_graphs[0].graph_def.library.function
        if fn.attr["_XlaMustCompile"].b
    ]
    assert compiled, "jit_compile=True must mark the core function for XLA"
    assert not any("parse_example" in name or "preprocessor" in name for name in compiled)
    assert json.load(open(os.path.join(version_dir, "model_card.json")))["jit_compile"] is True
    loaded = tf.saved_model.load(version_dir)
    raw = loaded.signatures["serving_default"]
    _assert_close(_run(raw, columns), expected, "XLA serving_default, batch 256")
    for row in (0, 7):
        _assert_close(_run(raw, {k: v[row : row + 1] for k, v in columns.items()}),
                      {t: v[row : row + 1] for t, v in expected.items()}, f"XLA row {row} alone")


def test_failed_export_leaves_previous_versions_and_no_debris(trained, exported, monkeypatch):
    model, *_ = trained
    base_dir, version_dir = exported

    def fail(*args, **kwargs):
        raise OSError("disk full (simulated)")

    # Fails after the SavedModel is written, before the warmup file.
    monkeypatch.setattr(warmup_lib, "write_warmup_requests", fail)
    with pytest.raises(OSError, match="simulated"):
        km.export_saved_model(model, base_dir)
    monkeypatch.undo()
    # Fails the load-back check.
    monkeypatch.setattr(saved_model_lib, "VERIFY_TOLERANCE", -1.0)
    with pytest.raises(RuntimeError, match="differs from the Keras model"):
        km.export_saved_model(model, base_dir)
    assert os.listdir(base_dir) == ["1"], "a failed export must leave no directory behind"
    assert km.export.list_versions(base_dir) == [1]
    Servable(1, version_dir).warm_up()


def test_export_rejects_a_model_that_is_not_multi_domain(tmp_path):
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    with pytest.raises(TypeError, match="MultiDomainModel"):
        km.export_saved_model(plain, tmp_path / "mdr")
    assert not (tmp_path / "mdr").exists()


def test_hashed_ids_and_an_integer_domain_column_export(trained, tmp_path):
    data = trained[1]
    frame = data.frame.assign(domain=data.frame["domain"].str[1:].astype("int64") * 10)
    features = [km.SparseFeature("user_id", num_hash_bins=32, embedding_dim=4),
                km.SparseFeature("item_id", dtype="int64", num_hash_bins=16, embedding_dim=4),
                km.DenseFeature("price")]
    model = km.build_model("shared_bottom", features=features, domain=km.Domain("domain"), tasks=data.tasks,
                           data=frame, bottom_units=[4], tower_units=[4])
    version_dir = km.export_saved_model(model, tmp_path / "mdr", warmup_data=frame)
    card = km.export.read_model_card(version_dir)
    assert card["signatures"]["serving_default"]["inputs"] == {
        "domain": "int64", "item_id": "int64", "price": "float32", "user_id": "string",
    }
    rows = frame.iloc[:64]
    loaded = tf.saved_model.load(version_dir)
    columns, _ = km.data.prepare_columns(rows, model.features, model.domain)
    expected = model.predict(rows, batch_size=64)
    _assert_close(_run(loaded.signatures["serving_default"], columns), expected, "hashed ids, int64 domain")
    examples = km.export.serialize_examples(model, rows)
    _assert_close(_run(loaded.signatures["predict_examples"], {"examples": examples}), expected, "tf.Example")
