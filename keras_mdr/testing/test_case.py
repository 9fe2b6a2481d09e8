"""The shared test case every layer and every model of the zoo passes.

`run_layer_test` checks a layer completely: output shapes, the `get_config`
round trip, `.keras` save/load with `safe_mode=True` giving identical outputs,
an XLA (`jit_compile=True`) train step and predict, and batch independence (a
row's output alone equals its output inside a batch of 512).

`run_model_test` does the same for a model of the zoo on a small synthetic
data set, end to end: build from raw data, `fit` under XLA, `evaluate`,
`predict`, `.keras` round trip, and batch independence of `predict`.
"""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf
from keras import tree

TOLERANCE = 1e-5
BATCH_INDEPENDENCE_SIZE = 512


def _symbolic_inputs(call_args, prefix=""):
    if isinstance(call_args, dict):
        return {k: _symbolic_inputs(v, f"{prefix}{k}") for k, v in call_args.items()}
    value = np.asarray(call_args)
    return keras.Input(shape=value.shape[1:], dtype=str(value.dtype), name=prefix)


def _functional(layer, call_args, call_kwargs=None):
    inputs = _symbolic_inputs(call_args)
    outputs = layer(**inputs, **(call_kwargs or {}))
    return keras.Model(inputs, outputs)


def _numpy(structure):
    return tree.map_structure(lambda t: np.asarray(keras.ops.convert_to_numpy(t)), structure)


def assert_allclose(actual, expected, atol=TOLERANCE, rtol=TOLERANCE, what="outputs"):
    actual, expected = tree.flatten(_numpy(actual)), tree.flatten(_numpy(expected))
    assert len(actual) == len(expected), f"{what}: {len(actual)} vs {len(expected)} tensors"
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, atol=atol, rtol=rtol, err_msg=what)


def _float_outputs(outputs):
    return [o for o in tree.flatten(outputs) if "float" in str(o.dtype)]


def xla_train_step(model, args):
    """One XLA-compiled SGD step on `sum(mean(output^2))`; returns the loss."""
    optimizer = keras.optimizers.SGD(0.01)
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=True)
    def step(args):
        with tf.GradientTape() as tape:
            outputs = model(args, training=True)
            loss = tf.add_n([tf.reduce_mean(tf.square(o)) for o in _float_outputs(outputs)])
            loss = loss + tf.add_n([tf.constant(0.0)] + [tf.reduce_sum(l) for l in model.losses])
        variables = model.trainable_variables
        grads = tape.gradient(loss, variables)
        optimizer.apply(grads, variables)
        return loss

    return float(step(args))


def run_layer_test(
    layer_cls,
    init_kwargs,
    make_inputs,
    expected_output_shape=None,
    call_kwargs=None,
    expected_num_trainable_weights=None,
    run_training=True,
    batch_independent=True,
    tolerance=TOLERANCE,
):
    """Checks a layer the way every keras_mdr layer must pass.

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments.
        make_inputs: `batch_size -> dict` of numpy arrays, the `call`
            arguments by name (a nested dict for dict-valued arguments).
        expected_output_shape: the output shape (or structure of shapes) for
            `make_inputs(8)`.
        call_kwargs: extra non-tensor `call` arguments.
        expected_num_trainable_weights: checked when given.
        run_training: run an XLA train step (layers without trainable
            weights may skip it).
        batch_independent: check that a row's inference output does not
            depend on the rest of the batch.
        tolerance: absolute and relative tolerance of the comparisons.
    """
    layer = layer_cls(**init_kwargs)
    args = make_inputs(8)

    # Shapes, eager.
    outputs = layer(**args, **(call_kwargs or {}))
    if expected_output_shape is not None:
        shapes = tree.map_structure(lambda t: tuple(t.shape), outputs)
        assert shapes == expected_output_shape, f"output shape {shapes} != {expected_output_shape}"
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights, (
            f"{len(layer.trainable_weights)} trainable weights, expected {expected_num_trainable_weights}"
        )

    # Config round trip.
    config = layer.get_config()
    restored = layer_cls.from_config(config)
    assert restored.get_config() == config, "get_config round trip changed the config"

    # .keras round trip, safe_mode=True.
    model = _functional(layer_cls(**init_kwargs), args, call_kwargs)
    expected = model.predict(args, verbose=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "layer.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
    assert_allclose(loaded.predict(args, verbose=0), expected, tolerance, tolerance, "after .keras round trip")

    # XLA predict and train step.
    xla_predict = tf.function(lambda a: model(a, training=False), jit_compile=True)
    assert_allclose(xla_predict(args), expected, 1e-4, 1e-4, "XLA predict vs eager predict")
    if run_training:
        loss = xla_train_step(model, args)
        assert np.isfinite(loss), f"XLA train step gave a non-finite loss {loss}"

    # Batch independence.
    if batch_independent:
        assert_batch_independent(lambda a: model(a, training=False), make_inputs, tolerance)
    return layer


def assert_batch_independent(predict, make_inputs, tolerance=TOLERANCE):
    """Each of a few rows gives the same output alone and inside a batch of 512."""
    batch = make_inputs(BATCH_INDEPENDENCE_SIZE)
    full = _numpy(predict(batch))
    for row in (0, 1, BATCH_INDEPENDENCE_SIZE // 2, BATCH_INDEPENDENCE_SIZE - 1):
        single = tree.map_structure(lambda v: np.asarray(v)[row : row + 1], batch)
        alone = _numpy(predict(single))
        inside = tree.map_structure(lambda v: v[row : row + 1], full)
        assert_allclose(alone, inside, tolerance, tolerance, f"row {row} alone vs inside a batch of 512")


def tiny_synthetic(num_rows=1200, seed=7):
    """A small synthetic data set for model tests (`keras_mdr.data.synthetic`)."""
    from keras_mdr.data.synthetic import synthetic

    return synthetic(num_rows=num_rows, num_users=100, num_items=60, seed=seed, embedding_dim=4)


def run_model_test(name, hyper_params=None, data=None, epochs=1, batch_size=128, validation_data=None):
    """Checks a zoo model end to end on small synthetic data.

    Builds `name` with `hyper_params` from raw data, fits it with
    `jit_compile=True` (and asserts XLA stayed on), evaluates, predicts,
    round-trips it through `.keras` with `safe_mode=True`, and checks that
    `predict` is batch independent. `validation_data` (raw rows) is passed to
    `fit`, for models that train on it (bi-level M3oE). Returns the trained
    model.
    """
    import keras_mdr as km

    data = data or tiny_synthetic()
    model = km.build_model(
        name,
        features=data.features,
        domain=data.domain,
        tasks=data.tasks,
        data=data.frame,
        **(hyper_params or {}),
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    assert model.jit_compile, f"{name}: jit_compile was turned off; the core must be XLA-compilable"
    history = model.fit(
        data.frame, validation_data=validation_data, epochs=epochs, batch_size=batch_size, verbose=0, seed=0
    )
    assert np.isfinite(history.history["loss"][-1]), f"{name}: non-finite training loss"

    results = model.evaluate(data.frame, batch_size=batch_size, return_dict=True, verbose=0)
    for task in data.tasks:
        assert 0.0 <= float(results[f"{task.name}_auc"]) <= 1.0

    sample = data.frame.iloc[:BATCH_INDEPENDENCE_SIZE].reset_index(drop=True)
    predictions = model.predict(sample, batch_size=BATCH_INDEPENDENCE_SIZE)
    assert set(predictions) == {t.name for t in data.tasks}
    for values in predictions.values():
        assert values.shape == (len(sample),) and np.all((values >= 0) & (values <= 1))

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is type(model)
    assert_allclose(loaded.predict(sample, batch_size=BATCH_INDEPENDENCE_SIZE), predictions,
                    what=f"{name} after .keras round trip")

    for row in (0, 3, len(sample) - 1):
        alone = model.predict(sample.iloc[row : row + 1], batch_size=1)
        for task, values in predictions.items():
            np.testing.assert_allclose(
                alone[task][0], values[row], atol=TOLERANCE, rtol=TOLERANCE,
                err_msg=f"{name}: row {row} of task {task} alone vs in a batch of {len(sample)}",
            )
    return model
