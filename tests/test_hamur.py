"""HAMUR on every backbone, and the backbone layers it adds (DCN-v1 cross, FM)."""

import sys

import keras
import numpy as np
import pytest

import keras_mdr as km
from keras_mdr import layers
from keras_mdr.testing import run_layer_test, run_model_test, tiny_synthetic

RNG = np.random.default_rng(0)
TINY = {"hidden_units": [8, 6], "rank": 3, "bottleneck": 4, "hyper_units": [5], "tower_units": [4]}


@pytest.mark.parametrize(
    "backbone,extra",
    [
        ("mlp", {"adapter_after": [0, -1], "dropout": 0.1}),
        ("dcn", {"cross": "v2", "cross_layers": 2}),
        pytest.param("wide_deep", {}, marks=pytest.mark.large),
        pytest.param("dcn", {"cross": "v1", "cross_layers": 2, "adapter_after": [0, 1]}, marks=pytest.mark.large),
        pytest.param("deepfm", {"adapter_after": [0, 1], "reference_init": True}, marks=pytest.mark.large),
    ],
)
def test_hamur_passes_model_test_case(backbone, extra):
    run_model_test("hamur", {"backbone": backbone, **TINY, **extra}, data=tiny_synthetic(600))


@pytest.mark.parametrize(
    "backbone,parts",
    [
        ("mlp", ["towers"]),
        ("wide_deep", ["towers", "linear"]),
        ("dcn", ["towers"]),
        ("deepfm", ["towers", "linear", "fm"]),
    ],
)
def test_each_backbones_logit_is_the_sum_of_its_parts(backbone, parts):
    data = tiny_synthetic(200)
    model = _build(backbone=backbone, adapter_after=[0, 1], data=data)
    probe = keras.Model(model.input, [model.get_layer(name).output for name in parts] + [model.output])
    *values, probabilities = probe(model.preprocessor(dict(data.frame.iloc[:32])))
    logits = sum(np.asarray(v) for v in values)
    for i, task in enumerate(data.tasks):
        p = np.asarray(probabilities[task.name])
        np.testing.assert_allclose(np.log(p / (1 - p)), logits[:, i], atol=1e-4)


def _build(data=None, **hyper_params):
    data = data or tiny_synthetic(200)
    return km.build_model(
        "hamur", features=data.features, domain=data.domain, tasks=data.tasks, data=data.frame,
        **{**TINY, **hyper_params},
    )


def test_mlp_backbone_is_routed_segments_around_the_adapters():
    model = _build(backbone="mlp", hidden_units=[8, 6, 4], adapter_after=[0, -1])
    names = [layer.name for layer in model.layers]
    assert names.index("hidden_0") < names.index("adapter_0") < names.index("hidden_1") < names.index("adapter_2")
    assert model.get_layer("hidden_0").units == [8]
    assert model.get_layer("hidden_1").units == [6, 4]
    assert isinstance(model.get_layer("hidden_1"), layers.DomainMLP)
    # One hyper-network feeds every cell.
    assert sum(isinstance(layer, layers.HyperNetwork) for layer in model.layers) == 1


def test_adapter_after_last_segment_without_adapter_and_bare_backbone():
    model = _build(backbone="wide_deep", hidden_units=[8, 6, 4], adapter_after=[1])
    assert model.get_layer("hidden_0").units == [8, 6]
    assert model.get_layer("hidden_2").units == [4]
    bare = _build(backbone="dcn", cross="v1", adapter_after=[])
    assert not any(isinstance(layer, (layers.HyperAdapter, layers.HyperNetwork)) for layer in bare.layers)


def test_dcn_v2_without_keras_rs_asks_for_the_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_rs", None)
    monkeypatch.setitem(sys.modules, "keras_rs.layers", None)
    with pytest.raises(ImportError, match="pip install keras-rs"):
        _build(backbone="dcn", cross="v2")
    assert any(isinstance(layer, layers.VectorCross) for layer in _build(backbone="dcn", cross="v1").layers)


@pytest.mark.parametrize(
    "hyper_params,message",
    [
        ({"backbone": "star"}, "backbone must be one of .* got 'star'"),
        ({"cross": "v3"}, "cross must be one of .* got 'v3'"),
        ({"adapter_after": [2]}, r"indices into the 2 hidden layers \(-2 to 1\), got \[2\]"),
        ({"adapter_after": [1, -1]}, r"names a hidden layer twice: \[1, -1\]"),
        ({"rank": 0}, "rank must be an integer >= 1, got 0"),
    ],
)
def test_invalid_hyper_parameters_name_the_received_value(hyper_params, message):
    with pytest.raises(ValueError, match=message):
        _build(**hyper_params)


def test_vector_cross_equals_dcn_v1_formula():
    cross = layers.VectorCross(bias_initializer="random_normal")
    x0, x = RNG.normal(size=(5, 4)).astype("float32"), RNG.normal(size=(5, 4)).astype("float32")
    y = np.asarray(cross(x0, x))
    w, b = cross.kernel.numpy(), cross.bias.numpy()
    expected = np.stack([x0[i] * (x[i] @ w) + b + x[i] for i in range(5)])
    np.testing.assert_allclose(y, expected, atol=1e-5)


def test_vector_cross_passes_layer_test_case():
    run_layer_test(
        layers.VectorCross,
        {},
        lambda b: {"x0": RNG.normal(size=(b, 6)).astype("float32"), "x": RNG.normal(size=(b, 6)).astype("float32")},
        expected_output_shape=(8, 6),
        expected_num_trainable_weights=2,
    )


def test_factorization_machine_equals_sum_over_field_pairs():
    v = RNG.normal(size=(4, 5, 3)).astype("float32")
    expected = [sum(v[b, i] @ v[b, j] for i in range(5) for j in range(i + 1, 5)) for b in range(4)]
    np.testing.assert_allclose(np.asarray(layers.FactorizationMachine()(v))[:, 0], expected, atol=1e-4)


def test_factorization_machine_passes_layer_test_case():
    run_layer_test(
        layers.FactorizationMachine,
        {},
        lambda b: {"inputs": RNG.normal(size=(b, 5, 3)).astype("float32")},
        expected_output_shape=(8, 1),
        run_training=False,
    )
