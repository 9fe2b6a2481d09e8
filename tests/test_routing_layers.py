"""Routing layers: each efficient form equals a naive per-domain loop."""

import numpy as np
import pytest

from keras_mdr import layers
from keras_mdr.layers.routing import grouped_dispatch
from keras_mdr.testing import run_layer_test

RNG = np.random.default_rng(0)


def _rows(batch, width=6, groups=3):
    return {
        "inputs": RNG.normal(size=(batch, width)).astype("float32"),
        "group_ids": RNG.integers(0, groups, batch).astype("int32"),
    }


def _domain_rows(batch, width=6, domains=3):
    return {
        "inputs": RNG.normal(size=(batch, width)).astype("float32"),
        "domain_ids": RNG.integers(0, domains, batch).astype("int32"),
    }


@pytest.mark.parametrize(
    "rows,groups,tile", [(1, 3, 64), (7, 3, 4), (100, 5, 8), (513, 4, 64), (50, 1, 16), (40, 6, 8), (90, 20, 4)]
)
def test_grouped_matmul_equals_per_row_loop(rows, groups, tile):
    x = RNG.normal(size=(rows, 5)).astype("float32")
    g = RNG.integers(0, groups, rows).astype("int32")
    if rows >= groups:
        g[:groups] = np.arange(groups)
    kernels = RNG.normal(size=(groups, 5, 3)).astype("float32")
    biases = RNG.normal(size=(groups, 3)).astype("float32")
    plan = grouped_dispatch.plan_groups(g, groups, tile)
    y = grouped_dispatch.from_tiles(
        grouped_dispatch.grouped_matmul(grouped_dispatch.to_tiles(x, plan), kernels, plan, biases), plan
    )
    expected = np.stack([x[i] @ kernels[g[i]] + biases[g[i]] for i in range(rows)])
    np.testing.assert_allclose(np.asarray(y), expected, atol=1e-5)


@pytest.mark.parametrize("rows,groups", [(1, 3), (57, 1), (200, 4), (300, 40)])
def test_rank_in_group_by_count_and_by_sort_equal_a_loop(rows, groups):
    g = RNG.integers(0, groups, rows).astype("int32")
    seen = np.zeros(groups, dtype="int32")
    expected = []
    for group in g:
        expected.append(seen[group])
        seen[group] += 1
    for counting in (True, False):
        rank = grouped_dispatch.rank_in_group(g, groups, counting=counting)
        np.testing.assert_array_equal(np.asarray(rank), expected)


def test_grouped_plan_puts_each_row_in_a_tile_of_its_own_group():
    g = np.array([2, 0, 2, 2, 1, 0, 2], dtype="int32")
    plan = grouped_dispatch.plan_groups(g, 3, 2)
    slots = np.asarray(plan.slot_of_row)
    tile_group = np.asarray(plan.tile_group)
    assert len(set(slots.tolist())) == len(g)
    np.testing.assert_array_equal(tile_group[slots // 2], g)
    # At most one partly filled tile per group.
    assert plan.num_tiles * 2 < len(g) + 3 * 2


def test_domain_dense_equals_per_domain_loop():
    layer = layers.DomainDense(4, num_groups=3, bias_initializer="random_normal", tile_size=8)
    args = _rows(37)
    y = np.asarray(layer(**args))
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    for d in range(3):
        rows = args["group_ids"] == d
        np.testing.assert_allclose(y[rows], args["inputs"][rows] @ kernel[d] + bias[d], atol=1e-5)


def test_domain_dense_passes_layer_test_case():
    run_layer_test(
        layers.DomainDense,
        {"units": 4, "num_groups": 3, "activation": "relu"},
        _rows,
        expected_output_shape=(8, 4),
        expected_num_trainable_weights=2,
    )


def test_domain_mlp_equals_per_domain_loop():
    layer = layers.DomainMLP([5, 3], num_groups=3, activation="relu", tile_size=4)
    args = _rows(29)
    y = np.asarray(layer(**args))
    k0, b0, k1, b1 = [w.numpy() for w in layer.weights]
    for d in range(3):
        rows = args["group_ids"] == d
        hidden = np.maximum(args["inputs"][rows] @ k0[d] + b0[d], 0)
        np.testing.assert_allclose(y[rows], hidden @ k1[d] + b1[d], atol=1e-5)


def test_domain_mlp_passes_layer_test_case():
    run_layer_test(
        layers.DomainMLP,
        {"units": [8, 2], "num_groups": 3, "dropout": 0.1},
        _rows,
        expected_output_shape=(8, 2),
        expected_num_trainable_weights=4,
    )


def test_domain_task_towers_route_each_task_to_its_domain_tower():
    towers = layers.DomainTaskTowers([4], num_domains=3, num_tasks=2)
    x = RNG.normal(size=(11, 2, 6)).astype("float32")
    d = RNG.integers(0, 3, 11).astype("int32")
    logits = np.asarray(towers(x, d))
    k0, b0, k1, b1 = [w.numpy() for w in towers.weights]
    for b in range(11):
        for t in range(2):
            g = d[b] * 2 + t
            hidden = np.maximum(x[b, t] @ k0[g] + b0[g], 0)
            np.testing.assert_allclose(logits[b, t], (hidden @ k1[g] + b1[g])[0], atol=1e-5)


def test_gated_domain_task_towers_scale_each_layers_input_by_its_rows_task_gate():
    towers = layers.DomainTaskTowers([4], num_domains=3, num_tasks=2, tile_size=4)
    x = RNG.normal(size=(11, 6)).astype("float32")
    d = RNG.integers(0, 3, 11).astype("int32")
    gates = [RNG.uniform(0, 2, size=(11, 2, w)).astype("float32") for w in (6, 4)]
    logits = np.asarray(towers(x, d, gates=gates))
    k0, b0, k1, b1 = [w.numpy() for w in towers.weights]
    for b in range(11):
        for t in range(2):
            g = d[b] * 2 + t
            hidden = np.maximum((gates[0][b, t] * x[b]) @ k0[g] + b0[g], 0)
            expected = (gates[1][b, t] * hidden) @ k1[g] + b1[g]
            np.testing.assert_allclose(logits[b, t], expected[0], atol=1e-5)


def test_task_towers_without_domain_ids_are_shared_by_the_domains():
    towers = layers.DomainTaskTowers([], num_domains=1, num_tasks=3)
    x = RNG.normal(size=(9, 3, 5)).astype("float32")
    logits = np.asarray(towers(x))
    kernel, bias = [w.numpy() for w in towers.weights]
    expected = np.einsum("bti,tij->btj", x, kernel)[..., 0] + bias[:, 0]
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    with pytest.raises(ValueError, match="domain_ids are needed with num_domains=3"):
        layers.DomainTaskTowers([], num_domains=3, num_tasks=2)(x[:, :2])


def test_domain_task_towers_pass_layer_test_case():
    run_layer_test(
        layers.DomainTaskTowers,
        {"units": [8], "num_domains": 3, "num_tasks": 2},
        _domain_rows,
        expected_output_shape=(8, 2),
    )


def test_domain_normalization_uses_each_domains_own_batch_statistics():
    layer = layers.DomainNormalization(3, epsilon=1e-3)
    args = _domain_rows(64)
    y = np.asarray(layer(**args, training=True))
    for d in range(3):
        rows = args["domain_ids"] == d
        x = args["inputs"][rows]
        expected = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3)
        np.testing.assert_allclose(y[rows], expected, atol=1e-4)


def test_domain_normalization_moving_statistics_start_at_the_first_batch_and_skip_absent_domains():
    layer = layers.DomainNormalization(3, momentum=0.5)
    first, second = _domain_rows(32), _domain_rows(32)
    for args in (first, second):
        args["domain_ids"][:] = np.where(args["domain_ids"] == 2, 0, args["domain_ids"])
        layer(**args, training=True)
    mean = layer.moving_mean.numpy()
    np.testing.assert_allclose(mean[2], 0.0)
    np.testing.assert_allclose(layer.moving_variance.numpy()[2], 1.0)

    def domain_mean(args):
        return args["inputs"][args["domain_ids"] == 0].mean(0)

    np.testing.assert_allclose(mean[0], 0.5 * domain_mean(first) + 0.5 * domain_mean(second), atol=1e-5)


def test_domain_normalization_single_row_of_a_domain_does_not_zero_its_moving_variance():
    layer = layers.DomainNormalization(2, momentum=0.5)
    args = _domain_rows(16, domains=2)
    args["domain_ids"][:] = 0
    args["domain_ids"][3] = 1
    layer(**args, training=True)
    # One row averages into the (0, 1) start instead of setting variance 0 outright.
    np.testing.assert_allclose(layer.moving_variance.numpy()[1], 0.5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_mean.numpy()[1], 0.5 * args["inputs"][3], atol=1e-6)
    second = _domain_rows(16, domains=2)
    second["domain_ids"][:] = np.arange(16) % 2
    layer(**second, training=True)
    # The first batch with two or more rows still sets the statistics outright.
    rows = second["inputs"][second["domain_ids"] == 1]
    np.testing.assert_allclose(layer.moving_mean.numpy()[1], rows.mean(0), atol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy()[1], rows.var(0), atol=1e-5)


def test_domain_normalization_shared_affine_is_star_partitioned_norm():
    layer = layers.DomainNormalization(2, shared_affine=True)
    args = _domain_rows(16, domains=2)
    layer(**args)
    gamma = RNG.normal(size=(2, 6)).astype("float32")
    shared = RNG.normal(size=(6,)).astype("float32")
    layer.gamma.assign(gamma)
    layer.shared_gamma.assign(shared)
    layer.shared_beta.assign(np.ones(6, "float32"))
    y = np.asarray(layer(**args, training=False))
    d = args["domain_ids"]
    expected = (gamma[d] * shared) * args["inputs"] / np.sqrt(1 + 1e-3) + 1.0
    np.testing.assert_allclose(y, expected, atol=1e-5)


def test_domain_normalization_passes_layer_test_case():
    run_layer_test(
        layers.DomainNormalization,
        {"num_domains": 3},
        _domain_rows,
        expected_output_shape=(8, 6),
        expected_num_trainable_weights=2,
    )


def test_expert_bank_equals_loop_over_experts():
    bank = layers.ExpertBank(3, [4, 2])
    x = RNG.normal(size=(5, 6)).astype("float32")
    y = np.asarray(bank(x))
    k0, k1 = bank.kernels[0].numpy(), bank.kernels[1].numpy()
    b0, b1 = bank.biases[0].numpy(), bank.biases[1].numpy()
    for e in range(3):
        h = np.maximum(x @ k0[e] + b0[e], 0)
        np.testing.assert_allclose(y[:, e], np.maximum(h @ k1[e] + b1[e], 0), atol=1e-5)


def test_expert_bank_passes_layer_test_case():
    run_layer_test(
        layers.ExpertBank,
        {"num_experts": 3, "units": [4]},
        lambda b: {"inputs": RNG.normal(size=(b, 6)).astype("float32")},
        expected_output_shape=(8, 3, 4),
    )


def test_expert_gate_per_domain_equals_per_domain_softmax():
    gate = layers.ExpertGate(4, num_gates=2, num_domains=3)
    args = _domain_rows(20)
    g = np.asarray(gate(**args))
    kernel, bias = gate.projection.kernel.numpy(), gate.projection.bias.numpy()
    for i in range(20):
        logits = (args["inputs"][i] @ kernel[args["domain_ids"][i]] + bias[args["domain_ids"][i]]).reshape(2, 4)
        expected = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        np.testing.assert_allclose(g[i], expected, atol=1e-5)


def test_expert_gate_passes_layer_test_case():
    run_layer_test(
        layers.ExpertGate,
        {"num_experts": 4, "num_gates": 2, "num_domains": 3},
        _domain_rows,
        expected_output_shape=(8, 2, 4),
    )


def test_mlp_block_passes_layer_test_case():
    run_layer_test(
        layers.MLPBlock,
        {"units": [8, 4], "dropout": 0.1, "batch_norm": True},
        lambda b: {"inputs": RNG.normal(size=(b, 6)).astype("float32")},
        expected_output_shape=(8, 4),
    )


@pytest.mark.parametrize(
    "layer_cls,kwargs,message",
    [
        (layers.DomainDense, {"units": 0, "num_groups": 2}, "units must be an integer >= 1, got 0"),
        (layers.DomainMLP, {"units": [4], "num_groups": 2, "dropout": 1.5}, "dropout must be in"),
        (layers.ExpertBank, {"num_experts": 0, "units": [2]}, "num_experts must be an integer >= 1, got 0"),
        (layers.DomainNormalization, {"num_domains": 2, "momentum": 1.0}, "momentum must be in"),
    ],
)
def test_invalid_arguments_name_the_received_value(layer_cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        layer_cls(**kwargs)
