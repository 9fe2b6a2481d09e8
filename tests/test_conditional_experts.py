"""CESAA's routed experts: sparse dispatch equals the dense top-K mixture, losses equal numpy."""

import numpy as np
import pytest
from keras import ops

from keras_mdr import layers
from keras_mdr.layers.experts import expert_dispatch, routing_losses
from keras_mdr.testing import run_layer_test

RNG = np.random.default_rng(0)


def _relu(x):
    return np.maximum(x, 0.0)


def _expert_weights(num_experts, widths):
    shapes = list(zip(widths, widths[1:]))
    kernels = [(RNG.normal(size=(num_experts, i, o)) / np.sqrt(i)).astype("float32") for i, o in shapes]
    biases = [RNG.normal(size=(num_experts, o)).astype("float32") for o in widths[1:]]
    return kernels, biases


def _all_experts(x, kernels, biases):
    """Every expert on every row, `[B, N, out]` (the dense computation)."""
    h = np.repeat(x[:, None, :], kernels[0].shape[0], axis=1)
    for kernel, bias in zip(kernels, biases):
        h = _relu(np.einsum("bni,nio->bno", h, kernel) + bias)
    return h


def _dense_top_k(x, expert_ids, weights, kernels, biases, kept=None):
    """The dense mixture masked to each row's chosen experts (and to the kept pairs)."""
    mixing = np.zeros((x.shape[0], kernels[0].shape[0]), dtype="float32")
    kept = np.ones_like(weights, dtype=bool) if kept is None else kept
    for i in range(x.shape[0]):
        for k in range(expert_ids.shape[1]):
            if kept[i, k]:
                mixing[i, expert_ids[i, k]] += weights[i, k]
    return np.einsum("bn,bno->bo", mixing, _all_experts(x, kernels, biases))


def _routing(rows, num_experts, top_k):
    expert_ids = np.argsort(RNG.random((rows, num_experts)), axis=1)[:, :top_k].astype("int32")
    weights = RNG.random((rows, top_k)).astype("float32")
    return expert_ids, weights / weights.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("rows,num_experts,top_k", [(1, 4, 2), (37, 5, 2), (64, 8, 3), (20, 3, 1)])
def test_capacity_dispatch_equals_dense_top_k_when_capacity_suffices(rows, num_experts, top_k):
    x = RNG.normal(size=(rows, 6)).astype("float32")
    expert_ids, weights = _routing(rows, num_experts, top_k)
    kernels, biases = _expert_weights(num_experts, [6, 5, 4])
    # capacity_factor = N / K gives C = B: no expert can overflow.
    y = expert_dispatch.dispatch_with_capacity(
        x, expert_ids, weights, kernels, biases, ops.relu, num_experts / top_k
    )
    expected = _dense_top_k(x, expert_ids, weights, kernels, biases)
    np.testing.assert_allclose(np.asarray(y), expected, atol=1e-5)


def test_capacity_dispatch_drops_exactly_the_overflowing_pairs():
    # B = 6, N = 3, K = 2, capacity_factor = 0.5: C = ceil(0.5 * 2 * 6 / 3) = 2 rows per expert.
    expert_ids = np.array([[0, 1], [0, 2], [0, 1], [0, 2], [1, 2], [2, 1]], dtype="int32")
    weights = np.array([[0.7, 0.3], [0.6, 0.4], [0.8, 0.2], [0.5, 0.5], [0.9, 0.1], [0.55, 0.45]], "float32")
    assert expert_dispatch.expert_capacity(6, 2, 3, 0.5) == 2
    # First choices go first (rows in order), then second choices:
    # expert 0 takes rows 0, 1 (drops 2, 3); expert 1 takes row 4 then row 0
    # (drops 2, 5); expert 2 takes row 5 then row 1 (drops 3, 4).
    kept = np.array([[1, 1], [1, 1], [0, 0], [0, 0], [1, 0], [1, 0]], dtype=bool)
    x = RNG.normal(size=(6, 4)).astype("float32")
    kernels, biases = _expert_weights(3, [4, 3])
    y = expert_dispatch.dispatch_with_capacity(x, expert_ids, weights, kernels, biases, ops.relu, 0.5)
    y = np.asarray(y)
    np.testing.assert_allclose(y, _dense_top_k(x, expert_ids, weights, kernels, biases, kept), atol=1e-5)
    # Rows with every pair dropped get nothing from the routed experts.
    np.testing.assert_array_equal(y[2:4], 0.0)
    assert np.abs(y - _dense_top_k(x, expert_ids, weights, kernels, biases)).max() > 1e-2


@pytest.mark.parametrize("rows,tile", [(1, 64), (37, 4), (200, 16), (64, 1)])
def test_grouped_dispatch_equals_dense_top_k(rows, tile):
    num_experts, top_k = 6, 2
    x = RNG.normal(size=(rows, 5)).astype("float32")
    expert_ids, weights = _routing(rows, num_experts, top_k)
    kernels, biases = _expert_weights(num_experts, [5, 7, 3])
    y = expert_dispatch.dispatch_grouped(x, expert_ids, weights, kernels, biases, ops.relu, tile)
    expected = _dense_top_k(x, expert_ids, weights, kernels, biases)
    np.testing.assert_allclose(np.asarray(y), expected, atol=1e-5)


def _numpy_mutual_information(probabilities, domain_ids, num_domains):
    joint = np.zeros((num_domains, probabilities.shape[1]))
    for d in range(num_domains):
        joint[d] = probabilities[domain_ids == d].sum(axis=0) / len(domain_ids)
    p_domain, p_expert = joint.sum(axis=1), joint.sum(axis=0)
    total = 0.0
    for d in range(num_domains):
        for j in range(probabilities.shape[1]):
            if joint[d, j] > 0:
                total += joint[d, j] * np.log(joint[d, j] / (p_domain[d] * p_expert[j]))
    return total


def test_mutual_information_loss_equals_numpy_with_an_absent_domain():
    logits = RNG.normal(size=(50, 5)) * 2
    probabilities = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype("float32")
    domain_ids = RNG.choice([0, 1, 3], size=50).astype("int32")  # domain 2 absent: zero entries
    value = float(routing_losses.domain_expert_mutual_information(probabilities, domain_ids, 4))
    expected = _numpy_mutual_information(probabilities, domain_ids, 4)
    assert expected > 0.01
    np.testing.assert_allclose(value, expected, atol=1e-5, rtol=1e-5)


def test_mutual_information_is_log_d_for_one_expert_per_domain_and_zero_for_shared_routing():
    domain_ids = np.array([0, 1, 0, 1], dtype="int32")
    separate = np.eye(2, dtype="float32")[domain_ids]
    shared = np.full((4, 2), 0.5, dtype="float32")
    information = routing_losses.domain_expert_mutual_information
    np.testing.assert_allclose(float(information(separate, domain_ids, 2)), np.log(2.0), atol=1e-5)
    np.testing.assert_allclose(float(information(shared, domain_ids, 2)), 0.0, atol=1e-6)


def test_load_balancing_loss_equals_numpy():
    probabilities = RNG.dirichlet(np.ones(4), size=30).astype("float32")
    expert_ids, _ = _routing(30, 4, 2)
    fraction = np.bincount(expert_ids.reshape(-1), minlength=4) / expert_ids.size
    expected = 4 * np.sum(fraction * probabilities.mean(axis=0))
    value = float(routing_losses.load_balancing_loss(probabilities, expert_ids, 4))
    np.testing.assert_allclose(value, expected, atol=1e-5, rtol=1e-5)
    uniform = np.full((4, 4), 0.25, dtype="float32")
    balanced = np.array([[0, 1], [2, 3], [1, 0], [3, 2]], dtype="int32")
    balanced_value = float(routing_losses.load_balancing_loss(uniform, balanced, 4))
    np.testing.assert_allclose(balanced_value, 1.0, atol=1e-6)


def _rows(batch, width=6, domains=3):
    return {
        "inputs": RNG.normal(size=(batch, width)).astype("float32"),
        "domain_ids": RNG.integers(0, domains, batch).astype("int32"),
    }


def _numpy_layer(layer, x, domain_ids):
    """ConditionalExperts at inference, written out densely in numpy."""
    gate = layer.gate
    z = np.concatenate([x, gate.domain_embedding.numpy()[domain_ids]], axis=1)
    logits = z @ gate.kernel.numpy() + gate.bias.numpy()
    expert_ids = np.argsort(-logits, axis=1)[:, : layer.top_k]
    top = np.take_along_axis(logits, expert_ids, axis=1)
    weights = np.exp(top - top.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    shared = [w.numpy() for w in layer.shared_experts.weights]
    routed = [w.numpy() for w in layer.experts.weights]
    shared_out = _all_experts(x, shared[0::2], shared[1::2]).mean(axis=1)
    return shared_out + _dense_top_k(x, expert_ids, weights, routed[0::2], routed[1::2])


@pytest.mark.parametrize("dispatch", ["capacity", "grouped"])
def test_conditional_experts_equals_dense_shared_plus_top_k_mixture(dispatch):
    layer = layers.ConditionalExperts(
        [5, 4], num_experts=5, top_k=2, num_domains=3, num_shared_experts=2, noisy_gating=False,
        capacity_factor=2.5, dispatch=dispatch,
    )
    args = _rows(40)
    for training in (False, True):
        y = np.asarray(layer(**args, training=training))
        expected = _numpy_layer(layer, args["inputs"], args["domain_ids"])
        # capacity_factor = N / K: nothing dropped, training equals the dense mixture too.
        np.testing.assert_allclose(y, expected, atol=1e-5)
    assert len(layer.losses) == 2  # mutual information and load balance, from the training call only


def test_noisy_gate_is_random_in_training_only_and_weights_renormalise_over_top_k():
    gate = layers.NoisyTopKGate(num_experts=6, top_k=3, num_domains=3, seed=3)
    args = _rows(64)
    pi, ids, g = (np.asarray(t) for t in gate(**args))
    chosen = np.take_along_axis(pi, ids, axis=1)
    np.testing.assert_allclose(g, chosen / chosen.sum(axis=1, keepdims=True), atol=1e-6)
    np.testing.assert_array_equal(ids, np.asarray(gate(**args)[1]))
    first, second = (np.asarray(gate(**args, training=True)[1]) for _ in range(2))
    assert (first != second).any()


def test_conditional_experts_passes_layer_test_case():
    run_layer_test(
        layers.ConditionalExperts,
        {"units": [4], "num_experts": 4, "top_k": 2, "num_domains": 3, "capacity_factor": 1.0, "seed": 1},
        _rows,
        expected_output_shape=(8, 4),
        # gate: domain embedding, kernel, bias, noise kernel; two expert banks: kernel, bias each.
        expected_num_trainable_weights=8,
    )


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"top_k": 5}, "top_k must be <= num_experts (4), got 5"),
        ({"dispatch": "dense"}, "dispatch must be one of"),
        ({"capacity_factor": 0}, "capacity_factor must be > 0, got 0"),
        ({"mutual_information_weight": -1.0}, "mutual_information_weight must be >= 0, got -1.0"),
        ({"num_shared_experts": 0}, "num_shared_experts must be an integer >= 1, got 0"),
    ],
)
def test_conditional_experts_rejects_invalid_arguments(kwargs, message):
    arguments = {"units": [4], "num_experts": 4, "top_k": 2, "num_domains": 3, **kwargs}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        layers.ConditionalExperts(**arguments)
