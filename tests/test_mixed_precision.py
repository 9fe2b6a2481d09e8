"""Mixed precision: every zoo model computes in bfloat16 with float32 variables, outputs, loss and metrics."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mdr as km
from keras_mdr.features.preprocessing import DOMAIN_ID
from keras_mdr.testing import tiny_synthetic
from keras_mdr.testing.serving_checks import tiny_hyper_parameters

# The default suite runs these two; every other zoo model is `large` (one XLA compile each).
DEFAULT_RUN = ("cesaa", "star")
BF16_TOLERANCE = 2e-2  # absolute, on probabilities: bfloat16 keeps 8 bits of mantissa


@pytest.fixture(scope="module")
def data():
    return tiny_synthetic(num_rows=64)


def _build(name, data, dtype_policy):
    return km.build_model(
        name, features=data.features, domain=data.domain, tasks=data.tasks, data=data.frame,
        dtype_policy=dtype_policy, **tiny_hyper_parameters(name),
    )


def _assert_float32_outputs(predictions, what):
    for task, values in predictions.items():
        assert values.dtype == np.float32, f"{what}: {task} is {values.dtype}"


@pytest.mark.parametrize(
    "name", [n if n in DEFAULT_RUN else pytest.param(n, marks=pytest.mark.large) for n in km.list_models()]
)
def test_model_computes_in_bfloat16_keeps_float32_variables_and_outputs_trains_under_xla_and_saves_its_policy(
    name, data, tmp_path
):
    mixed = _build(name, data, "mixed_bfloat16")
    assert mixed.get_layer("embedding").compute_dtype == "bfloat16"
    assert mixed.get_layer("probabilities").compute_dtype == "float32"
    assert mixed.preprocessor.compute_dtype == "float32"
    assert {v.dtype for v in mixed.weights} == {"float32"}

    reference = _build(name, data, "float32")
    reference.set_weights(mixed.get_weights())
    expected = reference.predict(data.frame)
    predictions = mixed.predict(data.frame)
    _assert_float32_outputs(predictions, name)
    for task, values in expected.items():
        np.testing.assert_allclose(predictions[task], values, atol=BF16_TOLERANCE, err_msg=f"{name}: {task}")

    mixed.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    history = mixed.fit(data.frame, epochs=1, batch_size=len(data.frame), verbose=0)
    assert mixed.jit_compile, f"{name}: XLA was turned off under mixed_bfloat16"
    assert np.isfinite(history.history["loss"][-1]), f"{name}: non-finite loss under mixed_bfloat16"
    assert {v.dtype for v in mixed.weights} == {"float32"}

    path = str(tmp_path / "model.keras")
    mixed.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.dtype_policy.name == "mixed_bfloat16"
    assert loaded.get_layer("embedding").compute_dtype == "bfloat16"
    trained = mixed.predict(data.frame)
    np.testing.assert_allclose(
        loaded.predict(data.frame)[data.tasks[0].name], trained[data.tasks[0].name], atol=1e-6,
        err_msg=f"{name}: after .keras round trip",
    )


def test_mixed_float16_wraps_the_optimizer_in_a_loss_scale_optimizer_and_trains_a_step_under_xla(data):
    model = _build("shared_bottom", data, "mixed_float16")
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=True)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.get_layer("embedding").compute_dtype == "float16"
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(data.frame, epochs=1, batch_size=len(data.frame), verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert any(not np.array_equal(b, a) for b, a in zip(before, model.get_weights())), "the step moved no weight"
    _assert_float32_outputs(model.predict(data.frame), "mixed_float16")


def test_a_global_mixed_policy_leaves_the_preprocessing_in_float32(data):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = _build("shared_bottom", data, None)
    finally:
        keras.config.set_dtype_policy(previous)
    assert model.dtype_policy.name == "mixed_bfloat16"
    assert model.get_config()["dtype_policy"] == "mixed_bfloat16"
    reference = _build("shared_bottom", data, "float32")
    inputs = next(iter(model.make_dataset(data.frame, labels=False)))
    expected = next(iter(reference.make_dataset(data.frame, labels=False)))
    for feature in data.features:
        if feature.kind == "numeric":
            assert inputs[feature.name].dtype == "float32"
            np.testing.assert_array_equal(inputs[feature.name], expected[feature.name], err_msg=feature.name)
    np.testing.assert_array_equal(inputs[DOMAIN_ID], expected[DOMAIN_ID])


def test_a_policy_with_16_bit_variables_is_refused_with_the_choices(data):
    with pytest.raises(ValueError, match="dtype_policy must be one of .*mixed_bfloat16.* got 'bfloat16'"):
        _build("shared_bottom", data, "bfloat16")



def test_an_exported_mixed_bfloat16_model_serves_its_float32_probabilities_and_records_its_policy(data, tmp_path):
    model = _build("shared_bottom", data, "mixed_bfloat16")
    version_dir = km.export_saved_model(model, tmp_path / "mdr", warmup_data=data.frame)
    card = json.load(open(os.path.join(version_dir, "model_card.json")))
    assert card["hyper_parameters"]["dtype_policy"] == "mixed_bfloat16"
    columns, _ = km.data.prepare_columns(data.frame, model.features, model.domain)
    served = tf.saved_model.load(version_dir).signatures["serving_default"](
        **{k: tf.constant(v) for k, v in columns.items()}
    )
    expected = model.predict(data.frame)
    for task, values in expected.items():
        assert served[task].dtype == tf.float32
        np.testing.assert_allclose(served[task].numpy(), values, atol=1e-6, err_msg=task)


def test_training_mixed_float16_on_a_strategy_is_refused_with_the_fix(data):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = _build("shared_bottom", data, "mixed_float16")
    with pytest.raises(ValueError, match="does not support dtype_policy='mixed_float16' .* use 'mixed_bfloat16'"):
        km.training.train(model, data.frame, epochs=1, strategy=strategy)
