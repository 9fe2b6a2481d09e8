"""M3oE: the model test case in both training modes, bi-level separation, the group-mean loss."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mdr as km
from keras_mdr.features.preprocessing import DOMAIN_ID
from keras_mdr.testing import run_model_test, tiny_synthetic

SMALL = {"num_shared_experts": 2, "expert_units": [8], "bottom_units": [8], "tower_units": [4]}


@pytest.fixture(scope="module")
def data():
    return tiny_synthetic(num_rows=600)


def _build(data, **params):
    return km.build_model(
        "m3oe", features=data.features, domain=data.domain, tasks=data.tasks, data=data.frame, **SMALL, **params
    )


def _values(variables):
    return [np.array(v.numpy()) for v in variables]


# Batches of 200 divide the data, so XLA compiles each step for one batch shape only.
def test_m3oe_joint_single_task_passes_model_test_case():
    data = tiny_synthetic()
    run_model_test("m3oe", {**SMALL, "dropout": 0.1}, data=data._replace(tasks=data.tasks[:1]), batch_size=200)


def test_m3oe_bilevel_two_tasks_passes_model_test_case(tmp_path):
    data = tiny_synthetic()
    validation = tiny_synthetic(num_rows=400, seed=8).frame
    model = run_model_test(
        "m3oe",
        {**SMALL, "training_mode": "bilevel", "partitioned_norm": True},
        data=data,
        validation_data=validation,
        batch_size=200,
    )
    assert model.structure() != pytest.approx(dict.fromkeys(model.structure(), 0.5))
    # The structure optimiser's state is saved with the model, so bi-level training resumes.
    path = os.path.join(str(tmp_path), "m3oe.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert int(loaded.structure_optimizer.iterations) == int(model.structure_optimizer.iterations) == 6
    assert loaded.structure() == pytest.approx(model.structure())


def test_bilevel_with_zero_structure_learning_rate_changes_only_network_weights(data):
    model = _build(data, training_mode="bilevel", structure_learning_rate=0.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    structure, network = _values(model.structure_variables), _values(model.network_variables)
    model.fit(data.frame, validation_data=data.frame.iloc[:200], epochs=1, batch_size=200, verbose=0)
    for before, after in zip(structure, _values(model.structure_variables)):
        np.testing.assert_array_equal(after, before)
    for variable, before in zip(model.network_variables, network):
        assert not np.array_equal(variable.numpy(), before), f"{variable.path} did not train"


def _structure_gradient(model, frame):
    """Gradient of the training-mode loss on `frame` (one batch) w.r.t. the structure weights."""
    x, y = next(iter(model.make_dataset(frame, batch_size=len(frame))))
    state = _values(model.non_trainable_weights)
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x, y, model(x, training=True), training=True)
    gradients = tape.gradient(loss, model.structure_variables)
    for variable, value in zip(model.non_trainable_weights, state):
        variable.assign(value)
    return np.array([float(g) for g in gradients]), x


def test_bilevel_steps_structure_weights_on_the_validation_batch_only(data):
    train = data.frame.iloc[:300].reset_index(drop=True)
    # Validation labels flipped, so its gradient differs from the training batch's.
    validation = data.frame.iloc[300:].reset_index(drop=True)
    validation["click"] = 1 - validation["click"]
    model = _build(data, training_mode="bilevel", structure_learning_rate=0.05, partitioned_norm=True)
    model.compile(optimizer=keras.optimizers.Adam(0.0), jit_compile=False)
    validation_gradient, _ = _structure_gradient(model, validation)
    train_gradient, train_x = _structure_gradient(model, train)
    assert np.any(np.sign(validation_gradient) != np.sign(train_gradient))
    structure, network = _values(model.structure_variables), _values(model.network_variables)
    state = _values(model.non_trainable_weights)

    model.fit(train, validation_data=validation, epochs=1, batch_size=len(train), verbose=0)

    # One Adam step on the validation gradient g: -lr g / (|g| + eps / sqrt(1 - beta_2)).
    delta = np.array(_values(model.structure_variables)) - np.array(structure)
    g = validation_gradient
    np.testing.assert_allclose(delta, -0.05 * g / (np.abs(g) + 1e-7 / np.sqrt(0.001)), rtol=1e-3)
    for variable, before in zip(model.network_variables, network):
        np.testing.assert_array_equal(variable.numpy(), before, err_msg=variable.path)
    # The partitioned normalisation's moving statistics saw the training batch only.
    assert model.non_trainable_weights
    trained_state = _values(model.non_trainable_weights)
    for variable, value in zip(model.non_trainable_weights, state):
        variable.assign(value)
    model(train_x, training=True)
    for variable, value in zip(model.non_trainable_weights, trained_state):
        np.testing.assert_allclose(variable.numpy(), value, atol=1e-5, err_msg=variable.path)


@pytest.mark.parametrize("stop", [True, False])
def test_gates_train_the_bottom_only_without_gate_stop_gradient(data, stop):
    model = _build(data, gate_stop_gradient=stop)
    batch = next(iter(model.make_dataset(data.frame.iloc[:32], labels=False)))
    gates = keras.Model(model.input, model.get_layer("gates").output)
    bottom = model.get_layer("skip_bottom").trainable_variables
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(gates(batch, training=True)))
    gradients = tape.gradient(loss, bottom + model.get_layer("gates").trainable_variables)
    assert all(g is not None for g in gradients[len(bottom):])
    assert all((g is None) == stop for g in gradients[: len(bottom)])


def test_bilevel_fit_without_validation_data_is_a_clear_error(data):
    model = _build(data, training_mode="bilevel")
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="pass validation_data to fit"):
        model.fit(data.frame, epochs=1)


def test_m3oe_defaults_and_invalid_arguments(data):
    params = km.models.hyper_parameters("m3oe")
    assert params["loss_reduction"] == "domain_task_mean"
    assert params["training_mode"] == "joint" and params["gate_stop_gradient"] is True
    with pytest.raises(ValueError, match="training_mode must be one of .* got 'alternating'"):
        _build(data, training_mode="alternating")
    with pytest.raises(ValueError, match="structure_learning_rate must be >= 0, got -1"):
        _build(data, structure_learning_rate=-1)


def _logloss(labels, probabilities):
    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return -(labels * np.log(p) + (1 - labels) * np.log(1 - p))


def test_domain_task_mean_loss_equals_numpy_with_absent_groups(data):
    tasks = [km.Task("click"), km.Task("like", mask="click", weight=0.5)]
    model = km.build_model("m3oe", features=data.features, domain=data.domain, tasks=tasks, data=data.frame, **SMALL)
    rng = np.random.default_rng(3)
    # Domain 2 is absent; `like` is masked (-1) on every row of domain 1.
    domains = np.array([0, 0, 1, 0, 1, 1, 0], "int32")
    labels = {"click": rng.integers(0, 2, 7).astype("float32"), "like": rng.integers(0, 2, 7).astype("float32")}
    labels["like"][domains == 1] = -1.0
    labels["like"][1] = -1.0
    predictions = {t: rng.uniform(0.05, 0.95, 7).astype("float32") for t in labels}

    loss = model.compute_loss({DOMAIN_ID: domains}, labels, predictions)

    group_losses = []
    for task, weight in (("click", 1.0), ("like", 0.5)):
        for d in range(3):
            rows = (domains == d) & (labels[task] >= 0)
            if rows.any():
                group_losses.append(weight * _logloss(labels[task][rows], predictions[task][rows]).mean())
    assert len(group_losses) == 3
    np.testing.assert_allclose(float(loss), np.mean(group_losses), rtol=1e-5)
