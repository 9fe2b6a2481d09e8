"""Bad input gets a clear error naming the column and what was expected."""

import numpy as np
import pytest

import keras_mdr as km
from keras_mdr.testing import tiny_synthetic


@pytest.fixture(scope="module")
def data():
    return tiny_synthetic(300)


@pytest.fixture(scope="module")
def model(data):
    return km.build_model("shared_bottom", features=data.features, domain=data.domain, tasks=data.tasks,
                          data=data.frame, bottom_units=[4], tower_units=[2])


def test_missing_feature_column_is_named(model, data):
    with pytest.raises(ValueError, match="missing feature column 'price'"):
        model.fit(data.frame.drop(columns=["price"]), verbose=0)


def test_missing_label_column_is_named(model, data):
    with pytest.raises(ValueError, match=r"missing label \(task 'click'\) column 'click'"):
        model.fit(data.frame.drop(columns=["click"]), verbose=0)


def test_missing_domain_column_is_named(model, data):
    with pytest.raises(ValueError, match="missing domain column 'domain'"):
        model.predict(data.frame.drop(columns=["domain"]))


def test_text_in_a_numeric_feature_is_a_type_error_naming_the_value(model, data):
    frame = data.frame.copy()
    frame["price"] = frame["price"].astype(object)
    frame.loc[5, "price"] = "cheap"
    with pytest.raises(ValueError, match="numeric feature column 'price' must be numeric, found 'cheap' at row 5"):
        model.fit(frame, verbose=0)


def test_non_integer_ids_in_an_int64_feature_are_rejected(model, data):
    frame = data.frame.assign(item_id=data.frame["item_id"].astype(str))
    frame.loc[3, "item_id"] = "abc"
    with pytest.raises(ValueError, match="column 'item_id' must hold integer ids, found 'abc' at row 3"):
        model.predict(frame)


def test_nan_in_a_numeric_feature_is_rejected(model, data):
    frame = data.frame.copy()
    frame.loc[[2, 7], "age"] = np.nan
    with pytest.raises(ValueError, match="numeric feature 'age' has 2 NaN or infinite values \\(first at row 2\\)"):
        model.fit(frame, verbose=0)


def test_nan_in_a_numeric_feature_is_rejected_when_adapting(data):
    frame = data.frame.copy()
    frame.loc[4, "price"] = np.nan
    with pytest.raises(ValueError, match="numeric feature 'price' has 1 NaN"):
        km.build_model("shared_bottom", features=data.features, domain="domain", tasks=data.tasks, data=frame)


def test_unknown_domain_value_at_training_is_rejected(model, data):
    frame = data.frame.copy()
    frame.loc[0, "domain"] = "d9"
    with pytest.raises(ValueError, match=r"domain column 'domain' has unknown values \['d9'\]"):
        model.fit(frame, verbose=0)


def test_non_binary_label_is_rejected(model, data):
    frame = data.frame.copy()
    frame.loc[1, "click"] = 3
    with pytest.raises(ValueError, match="label column 'click' \\(task 'click'\\) must be 0 or 1, found 3 at row 1"):
        model.fit(frame, verbose=0)


def test_empty_data_is_rejected(model, data):
    with pytest.raises(ValueError, match="has no rows"):
        model.fit(data.frame.iloc[:0], verbose=0)


def test_unknown_model_name_lists_the_models(data):
    with pytest.raises(ValueError, match=r"Unknown model 'mmmoe' \(did you mean 'mmoe'\?\); available: .*shared_bot"):
        km.build_model("mmmoe", features=data.features, domain=data.domain, tasks=data.tasks)


def test_unknown_hyper_parameter_lists_the_allowed_ones(data):
    with pytest.raises(ValueError, match="no hyper-parameter 'num_layers'.*bottom_units"):
        km.build_model("shared_bottom", features=data.features, domain=data.domain, tasks=data.tasks,
                       data=data.frame, num_layers=3)


def test_unadapted_specs_without_data_say_how_to_fix_it(data):
    with pytest.raises(ValueError, match="Pass `data=` to `build_model`"):
        km.build_model("shared_bottom", features=data.features, domain=data.domain, tasks=data.tasks)


@pytest.mark.parametrize(
    "spec,message",
    [
        (lambda: km.SparseFeature("x", dtype="float"), "dtype must be 'string' or 'int64', got 'float'"),
        (lambda: km.SparseFeature("x", embedding_dim=0), "embedding_dim must be an integer >= 1, got 0"),
        (lambda: km.SparseFeature("x", vocabulary=["a"], num_hash_bins=4), "not both"),
        (lambda: km.SequenceFeature("x", pooling="max"), "pooling must be 'mean' or 'sum', got 'max'"),
        (lambda: km.Task("x", kind="regression"), "kind must be 'binary', got 'regression'"),
        (lambda: km.Domain("d", values=[]), "values is empty"),
        (lambda: km.specs.feature_from_config({"name": "x", "type": "categorical", "dim": 4}),
         r"unknown keys \['dim'\]"),
    ],
)
def test_invalid_specs_name_the_problem(spec, message):
    with pytest.raises(ValueError, match=message):
        spec()


def test_empty_and_missing_files_are_clear_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        km.data.read_table(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("a,b\n")
    with pytest.raises(ValueError, match="has a header but no rows"):
        km.data.read_table(header_only)
    with pytest.raises(FileNotFoundError, match="Data file not found"):
        km.data.read_table(tmp_path / "nope.csv")
