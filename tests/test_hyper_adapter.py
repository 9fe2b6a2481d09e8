"""HyperNetwork and HyperAdapter: the reassociated cell equals the materialised-weight form."""

import numpy as np
import pytest

from keras_mdr import layers
from keras_mdr.testing import run_layer_test

RNG = np.random.default_rng(0)
WIDTH, RANK, BOTTLENECK, DOMAINS = 6, 3, 4, 3


def _cell_rows(batch):
    return {
        "inputs": RNG.normal(size=(batch, WIDTH)).astype("float32"),
        "hyper": RNG.normal(size=(batch, RANK, RANK)).astype("float32"),
        "domain_ids": RNG.integers(0, DOMAINS, batch).astype("int32"),
    }


def _randomise(cell):
    """Random values for every weight, so no term of the cell can hide."""
    for weight in cell.weights:
        values = RNG.normal(size=weight.shape).astype("float32")
        if "variance" in weight.name:
            values = np.abs(values) + 0.5
        weight.assign(values)


def _materialised_cell(cell, z, hyper, d, training):
    """The cell with the per-row weights `W = U H V` built explicitly, row by row."""
    u1, v1, u2, v2 = (w.numpy() for w in (cell.u1, cell.v1, cell.u2, cell.v2))
    b1, b2 = cell.b1.numpy(), cell.b2.numpy()
    u = np.zeros_like(z)
    for b in range(len(z)):
        a = np.maximum(z[b] @ (u1 @ hyper[b] @ v1) + b1[d[b]], 0.0)
        u[b] = a @ (u2 @ hyper[b] @ v2) + b2[d[b]]
    norm = cell.norm
    mean, variance = norm.moving_mean.numpy(), norm.moving_variance.numpy()
    if training:
        mean, variance = mean.copy(), variance.copy()
        for domain in np.unique(d):
            mean[domain], variance[domain] = u[d == domain].mean(0), u[d == domain].var(0)
    xhat = (u - mean[d]) / np.sqrt(variance[d] + norm.epsilon)
    return z + norm.gamma.numpy()[d] * xhat + norm.beta.numpy()[d]


@pytest.mark.parametrize("training", [False, True])
def test_hyper_adapter_equals_materialised_per_row_weights(training):
    cell = layers.HyperAdapter(RANK, BOTTLENECK, DOMAINS)
    args = _cell_rows(40)
    cell(**args)
    _randomise(cell)
    expected = _materialised_cell(cell, args["inputs"], args["hyper"], args["domain_ids"], training)
    actual = np.asarray(cell(**args, training=training))
    np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=1e-5)


def test_hyper_adapter_low_rank_product_equals_materialised_product():
    x = RNG.normal(size=(7, 5)).astype("float32")
    hyper = RNG.normal(size=(7, 3, 3)).astype("float32")
    left, right = RNG.normal(size=(5, 3)).astype("float32"), RNG.normal(size=(3, 4)).astype("float32")
    expected = np.stack([x[b] @ (left @ hyper[b] @ right) for b in range(7)])
    actual = np.asarray(layers.HyperAdapter.low_rank_product(x, hyper, left, right))
    np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=1e-5)


def test_reference_init_sets_every_u_and_v_to_one():
    cell = layers.HyperAdapter(RANK, BOTTLENECK, DOMAINS, reference_init=True)
    cell(**_cell_rows(4))
    for weight in (cell.u1, cell.v1, cell.u2, cell.v2, cell.norm.gamma):
        np.testing.assert_array_equal(weight.numpy(), 1.0)


@pytest.mark.parametrize("training", [False, True])
def test_default_init_starts_near_identity_and_reference_init_does_not(training):
    args = _cell_rows(64)
    z = args["inputs"]
    default = np.asarray(layers.HyperAdapter(RANK, BOTTLENECK, DOMAINS)(**args, training=training))
    reference = np.asarray(
        layers.HyperAdapter(RANK, BOTTLENECK, DOMAINS, reference_init=True)(**args, training=training)
    )
    assert np.linalg.norm(default - z) <= 1e-6 * np.linalg.norm(z)
    assert np.linalg.norm(reference - z) > 0.5 * np.linalg.norm(z)


def test_default_init_factors_are_scaled_by_fan_in():
    cell = layers.HyperAdapter(8, 64, DOMAINS)
    cell(RNG.normal(size=(2, 256)).astype("float32"), np.ones((2, 8, 8), "float32"), np.zeros(2, "int32"))
    for weight, fan_in in ((cell.u1, 256), (cell.v1, 8), (cell.u2, 64), (cell.v2, 8)):
        assert 0.5 / fan_in < np.var(weight.numpy()) < 1.5 / fan_in, weight.name


def test_hyper_adapter_is_finite_at_batch_size_one_in_training():
    args = _cell_rows(1)
    cell = layers.HyperAdapter(RANK, BOTTLENECK, DOMAINS, reference_init=True)
    assert np.all(np.isfinite(np.asarray(cell(**args, training=True))))


@pytest.mark.parametrize("reference_init", [False, True])
def test_hyper_adapter_passes_layer_test_case(reference_init):
    run_layer_test(
        layers.HyperAdapter,
        {"rank": RANK, "bottleneck": BOTTLENECK, "num_domains": DOMAINS, "reference_init": reference_init},
        _cell_rows,
        expected_output_shape=(8, WIDTH),
        # U1, V1, U2, V2, b1, b2 and the norm's gamma, beta.
        expected_num_trainable_weights=8,
    )


def test_hyper_network_passes_layer_test_case():
    run_layer_test(
        layers.HyperNetwork,
        {"rank": RANK, "units": [5]},
        lambda b: {"inputs": RNG.normal(size=(b, 7)).astype("float32")},
        expected_output_shape=(8, RANK, RANK),
        expected_num_trainable_weights=4,
    )


def test_hyper_network_without_hidden_layers_is_linear():
    net = layers.HyperNetwork(2, units=[])
    x = RNG.normal(size=(5, 4)).astype("float32")
    h = np.asarray(net(x))
    kernel, bias = net.output_dense.kernel.numpy(), net.output_dense.bias.numpy()
    np.testing.assert_allclose(h, (x @ kernel + bias).reshape(5, 2, 2), atol=1e-5)


def test_hyper_adapter_rejects_a_hyper_matrix_of_another_rank():
    cell = layers.HyperAdapter(4, BOTTLENECK, DOMAINS)
    with pytest.raises(ValueError, match=r"hyper must have shape \[B, 4, 4\] \(rank=4\), got \(2, 3, 3\)"):
        cell(np.ones((2, WIDTH), "float32"), np.ones((2, 3, 3), "float32"), np.zeros(2, "int32"))


@pytest.mark.parametrize(
    "layer_cls,kwargs,message",
    [
        (layers.HyperAdapter, {"rank": 0, "bottleneck": 4, "num_domains": 2}, "rank must be an integer >= 1, got 0"),
        (layers.HyperAdapter, {"rank": 2, "bottleneck": -1, "num_domains": 2}, "bottleneck must be .* got -1"),
        (layers.HyperNetwork, {"rank": 2, "units": [0]}, r"units must be a list of integers >= 1, got \[0\]"),
    ],
)
def test_invalid_arguments_name_the_received_value(layer_cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        layer_cls(**kwargs)
