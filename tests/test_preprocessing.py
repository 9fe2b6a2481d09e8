"""Raw columns to core inputs: vocabularies, OOV rows, hashing, splitting, normalisation, domains."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import keras_mdr as km
from keras_mdr.data.columns import prepare_columns
from keras_mdr.features import DOMAIN_ID, Preprocessor


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "user": ["a", "b", "a", "c", "a"],
            "item": [10, 20, 30, 10, 10],
            "age": [1.0, 2.0, 3.0, 4.0, 5.0],
            "genres": ["Drama|Comedy", "", "Comedy", "Action|Drama|Comedy", "Drama"],
            "dom": ["x", "y", "x", "y", "x"],
            "click": [1, 0, 1, 0, 1],
        }
    )


FEATURES = [
    km.SparseFeature("user"),
    km.SparseFeature("item", dtype="int64"),
    km.DenseFeature("age"),
    km.SequenceFeature("genres", max_len=2),
]


def _preprocess(features, domain, frame):
    inputs, _ = prepare_columns(frame, features, domain)
    return {k: v.numpy() for k, v in Preprocessor(features, domain)(inputs).items()}


def test_adapt_learns_vocabularies_by_frequency_and_statistics(frame):
    features, domain = km.adapt(FEATURES, "dom", frame)
    assert features[0].vocabulary == ("a", "b", "c")
    assert features[1].vocabulary == (10, 20, 30)
    assert features[2].mean == pytest.approx(3.0) and features[2].variance == pytest.approx(2.0)
    # Values beyond max_len=2 are not counted: Drama 3, Comedy 2, Action 1.
    assert features[3].vocabulary == ("Drama", "Comedy", "Action")
    assert domain.names == ["x", "y"]


def test_unknown_categorical_values_map_to_the_oov_row(frame):
    features, domain = km.adapt(FEATURES, "dom", frame)
    unseen = frame.assign(user=["zzz", "a", "b", "c", "q"], item=[99, 10, 20, 30, 7])
    out = _preprocess(features, domain, unseen)
    np.testing.assert_array_equal(out["user"], [0, 1, 2, 3, 0])
    np.testing.assert_array_equal(out["item"], [0, 1, 2, 3, 0])


def test_multi_valued_feature_is_split_truncated_and_padded(frame):
    features, domain = km.adapt(FEATURES, "dom", frame)
    out = _preprocess(features, domain, frame.assign(genres=["Drama|Comedy", "", "Unknown", "Action|Drama|Comedy", "Drama"]))
    # 0 pads, 1 is OOV, vocabulary rows start at 2 (Drama, Comedy, Action).
    np.testing.assert_array_equal(out["genres"], [[2, 3], [0, 0], [1, 0], [4, 2], [2, 0]])


def test_numeric_feature_is_standardised(frame):
    features, domain = km.adapt(FEATURES, "dom", frame)
    out = _preprocess(features, domain, frame)
    np.testing.assert_allclose(out["age"], (frame["age"] - 3.0) / np.sqrt(2.0), rtol=1e-6)


def test_hashed_feature_stays_within_its_bins(frame):
    feature = km.SparseFeature("user", num_hash_bins=7)
    features, domain = km.adapt([feature], "dom", frame)
    out = _preprocess(features, domain, frame)
    assert out["user"].min() >= 0 and out["user"].max() < 7
    assert out["user"][0] == out["user"][2]


def test_grouped_domains_map_raw_values_to_domain_ids():
    domain = km.Domain("age", values={"young": [1, 18], "adult": [25], "senior": [35, 45]})
    frame = pd.DataFrame({"age": [18, 25, 45, 1], "x": [1.0, 2.0, 3.0, 4.0]})
    features, domain = km.adapt([km.DenseFeature("x")], domain, frame)
    out = _preprocess(features, domain, frame)
    np.testing.assert_array_equal(out[DOMAIN_ID], [0, 1, 2, 0])


def test_unknown_domain_at_serving_is_rejected_naming_the_column(frame):
    features, domain = km.adapt(FEATURES, "dom", frame)
    inputs, _ = prepare_columns(frame, features, km.Domain("dom", values=["x", "y", "z"]))
    inputs["dom"] = np.array(["x", "z", "x", "y", "x"], dtype=object)
    with pytest.raises(tf.errors.InvalidArgumentError, match="(?s)domain column 'dom'.*outside the known domains.*z"):
        Preprocessor(features, domain)(inputs)


def test_domain_column_can_also_be_a_feature():
    frame = pd.DataFrame({"age": [18, 25, 45, 1], "click": [0, 1, 0, 1]})
    domain = km.Domain("age", values={"young": [1, 18], "old": [25, 45]})
    features, domain = km.adapt([km.SparseFeature("age", dtype="int64")], domain, frame)
    out = _preprocess(features, domain, frame)
    np.testing.assert_array_equal(out[DOMAIN_ID], [0, 1, 1, 0])
    assert out["age"].shape == (4,)


def test_feature_names_that_look_like_layer_names_work():
    frame = pd.DataFrame(
        {"dense": ["a", "b"], "embedding": [1.0, 2.0], "input_layer": ["x", "y"], "d": ["p", "q"], "click": [0, 1]}
    )
    features = [km.SparseFeature("dense"), km.DenseFeature("embedding"), km.SparseFeature("input_layer")]
    model = km.build_model("shared_bottom", features=features, domain="d", tasks=["click"], data=frame,
                           bottom_units=[4], tower_units=[2])
    assert set(model.input) == {"dense", "embedding", "input_layer", DOMAIN_ID}
    assert set(model.preprocessor.input_signature()) == {"dense", "embedding", "input_layer", "d"}
    assert model.predict(frame)["click"].shape == (2,)


def test_mask_naming_a_task_uses_that_tasks_label_column():
    _, _, tasks = km.specs.normalize_specs(
        [km.DenseFeature("x")], "d", [km.Task("click", label="label"), km.Task("like", mask="click")]
    )
    assert tasks[1].mask == "label"
