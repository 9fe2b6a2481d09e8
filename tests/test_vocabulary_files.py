"""Large vocabularies as assets beside the config: .keras round trips, export, add_domain, learned vocabularies."""

import json
import zipfile

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import keras_mdr as km
from keras_mdr.data import synthetic
from keras_mdr.export import saved_model as saved_model_lib
from keras_mdr.features import vocabulary_files
from keras_mdr.testing.serving_checks import with_unseen_values

SOURCE_DOMAIN = km.Domain("domain", values=["d0", "d1"])


@pytest.fixture(scope="module")
def data():
    # More users and items than MAX_INLINE_SIZE; some users missing (the value "").
    data = synthetic(num_rows=3000, num_users=2500, num_items=1600, seed=5, embedding_dim=4)
    data.frame.loc[::97, "user_id"] = None
    return data


@pytest.fixture(scope="module")
def source(data):
    keras.utils.set_random_seed(5)
    train = data.frame[data.frame.domain != "d2"]
    return km.build_model(
        "shared_bottom", features=data.features, domain=SOURCE_DOMAIN, tasks=data.tasks, data=train,
        bottom_units=[8], tower_units=[4],
    )


@pytest.fixture(scope="module")
def saved(source, tmp_path_factory):
    path = tmp_path_factory.mktemp("vocabulary") / "model.keras"
    source.save(path)
    return path


def _rows(data, domains):
    rows = data.frame[data.frame.domain.isin(domains)].iloc[:100].reset_index(drop=True)
    return with_unseen_values(rows).drop(columns=["click", "like"])


def _assert_same(actual, expected, what):
    for task, values in expected.items():
        np.testing.assert_allclose(actual[task], values, atol=1e-6, err_msg=f"{task}: {what}")


def test_saved_config_leaves_large_vocabularies_out_and_keeps_small_ones(source, saved):
    sizes = {f.name: len(f.vocabulary) for f in source.features if f.kind != "numeric"}
    assert sizes["user_id"] > vocabulary_files.MAX_INLINE_SIZE and sizes["item_id"] > vocabulary_files.MAX_INLINE_SIZE
    assert "" in source.features[0].vocabulary, "a missing user is a value of its own"
    with zipfile.ZipFile(saved) as archive:
        config = json.loads(archive.read("config.json"))["config"]
        names = archive.namelist()
    vocabularies = {f["name"]: f.get("vocabulary") for f in config["features"]}
    assert vocabularies["user_id"] is None and vocabularies["item_id"] is None
    assert config["vocabulary_files"] == {"user_id": sizes["user_id"], "item_id": sizes["item_id"]}
    assert vocabularies["category"] == list(source.features[3].vocabulary), "a small vocabulary stays inline"
    assert "assets/vocabulary_0.txt" in names and "assets/vocabulary_1.txt" in names


def test_keras_round_trip_keeps_vocabularies_predictions_and_oov_rows(data, source, saved):
    loaded = keras.saving.load_model(saved, safe_mode=True)
    assert loaded.features == source.features
    rows = _rows(data, ["d0", "d1"])
    _assert_same(loaded.predict(rows), source.predict(rows), "after .keras")
    columns, _ = km.data.prepare_columns(rows.iloc[:2], loaded.features, loaded.domain)
    columns.update(user_id=np.array(["user-never-seen", ""], dtype=object), item_id=np.array([10**9, 10**9]))
    indices = loaded.preprocessor({k: tf.constant(v) for k, v in columns.items()})
    assert indices["user_id"].numpy().tolist() == [0, source.features[0].vocabulary.index("") + 1]
    assert indices["item_id"].numpy().tolist() == [0, 0]


def test_export_of_a_loaded_model_serves_the_same_numbers(data, source, saved, tmp_path):
    loaded = keras.saving.load_model(saved, safe_mode=True)
    rows = _rows(data, ["d0", "d1"])
    version_dir = km.export_saved_model(loaded, tmp_path / "mdr", warmup_data=rows)
    columns, _ = km.data.prepare_columns(rows, loaded.features, loaded.domain)
    serve = tf.saved_model.load(version_dir).signatures[saved_model_lib.SERVING_SIGNATURE]
    served = {k: v.numpy() for k, v in serve(**{k: tf.constant(v) for k, v in columns.items()}).items()}
    _assert_same(served, source.predict(rows), "SavedModel")


def test_add_domain_extends_a_vocabulary_kept_in_a_file(data, source, saved, tmp_path):
    new = data.frame[data.frame.domain == "d2"]
    grown = km.transfer.add_domain(saved, "d2", data=new, method="head")
    assert len(grown.features[0].vocabulary) > len(source.features[0].vocabulary)
    assert grown.features[0].vocabulary[: len(source.features[0].vocabulary)] == source.features[0].vocabulary
    path = tmp_path / "grown.keras"
    grown.save(path)
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))["config"]
    assert config["vocabulary_files"]["user_id"] == len(grown.features[0].vocabulary)
    loaded = keras.saving.load_model(path, safe_mode=True)
    rows = _rows(data, ["d0", "d1", "d2"])
    expected = grown.predict(rows)
    _assert_same(loaded.predict(rows), expected, "grown, after .keras")
    old_rows = _rows(data, ["d0", "d1"])
    _assert_same(loaded.predict(old_rows), source.predict(old_rows), "source domains of the grown model")


def test_from_config_alone_leaves_file_vocabularies_unread_and_says_so(source):
    config = source.get_config()
    model = type(source).from_config(config)
    assert model.get_config() == config
    assert model.features[0].num_rows == source.features[0].num_rows
    with pytest.raises(ValueError, match=r"\['user_id', 'item_id'\] are in the assets .* keras.saving.load_model"):
        model.preprocessor


def test_a_vocabulary_with_a_line_break_stays_in_the_config():
    values = [f"v{i}" for i in range(vocabulary_files.MAX_INLINE_SIZE)] + ["two\nlines"]
    assert not vocabulary_files.in_file(km.SparseFeature("x", vocabulary=values))
    assert vocabulary_files.in_file(km.SparseFeature("x", vocabulary=values[:-1] + ["one\rline"]))


def test_min_frequency_and_max_vocabulary_size_trim_a_learned_vocabulary():
    frame = pd.DataFrame({"user": ["a"] * 3 + ["b"] * 2 + ["c"] * 2 + ["d"], "dom": ["x"] * 8})
    (rare_dropped,), _ = km.adapt([km.SparseFeature("user", min_frequency=2)], "dom", frame)
    assert rare_dropped.vocabulary == ("a", "b", "c")
    (capped,), _ = km.adapt([km.SparseFeature("user", min_frequency=2, max_vocabulary_size=2)], "dom", frame)
    assert capped.vocabulary == ("a", "b"), "the most frequent first, ties by value"
