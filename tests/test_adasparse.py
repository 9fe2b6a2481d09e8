"""AdaSparse: model test case, the Fusion pruner against a per-row loop, its schedule, regulariser and report."""

import numpy as np
import pytest
import tensorflow as tf

import keras_mdr as km
from keras_mdr import layers
from keras_mdr.testing import run_layer_test, run_model_test, tiny_synthetic

RNG = np.random.default_rng(0)
TINY = {"hidden_units": [8, 4], "domain_embedding_dim": 3}


def test_adasparse_passes_model_test_case():
    hyper_params = {**TINY, "sparsity_range": (0.1, 0.5), "alpha_step": 0.1}
    run_model_test("adasparse", hyper_params, data=tiny_synthetic(600))


def _rows(batch, width=6):
    return {
        "inputs": RNG.normal(size=(batch, width)).astype("float32"),
        "domain_ids": RNG.integers(0, 3, batch).astype("int32"),
    }


@pytest.mark.parametrize("pruner_input", ["domain", "domain_and_neurons"])
def test_domain_pruned_mlp_passes_layer_test_case(pruner_input):
    run_layer_test(
        layers.DomainPrunedMLP,
        {"units": [5, 4], "num_domains": 3, "domain_embedding_dim": 2, "pruner_input": pruner_input},
        _rows,
        expected_output_shape=(8, 4),
    )


def _fusion(v, alpha, beta=2.0, epsilon=0.01):
    scaled = beta / (1 + np.exp(-alpha * v))
    return np.where(scaled >= epsilon, scaled, 0.0)


@pytest.mark.parametrize("pruner_input", ["domain", "domain_and_neurons"])
def test_domain_pruned_mlp_equals_a_per_row_loop_and_prunes_to_exact_zeros(pruner_input):
    layer = layers.DomainPrunedMLP([5, 4], 3, domain_embedding_dim=2, pruner_input=pruner_input, epsilon=1.0)
    args = _rows(30)
    layer(**args)
    layer.alpha_value.assign(4.0)
    y, factors = layer.forward(args["inputs"], args["domain_ids"])
    table = layer.domain_embeddings.numpy()
    P = [p.numpy() for p in layer.domain_pruners]
    Q = [q.numpy() for q in layer.neuron_pruners]
    dense = [block.blocks[0][0] for block in layer.hidden]
    zeros = 0
    for i in range(30):
        e = table[args["domain_ids"][i]]

        def prune(l, n):
            v = e @ P[l] + (n @ Q[l] if Q else 0.0)
            pi = _fusion(v, 4.0, epsilon=1.0)
            np.testing.assert_allclose(np.asarray(factors[l])[i], pi, atol=1e-5)
            return pi * n, (pi == 0).sum()

        h, z = prune(0, args["inputs"][i])
        zeros += z
        h = np.concatenate([e, h])
        for l, d in enumerate(dense, start=1):
            h, z = prune(l, np.maximum(h @ d.kernel.numpy() + d.bias.numpy(), 0))
            zeros += z
        np.testing.assert_allclose(np.asarray(y)[i], h, atol=1e-5)
    assert zeros > 0, "about half the neurons (v < 0) should be pruned at epsilon=1"
    if pruner_input == "domain":  # one mask per domain, taken by its rows
        masks = [np.asarray(m) for m in layer.domain_masks()]
        for l, pi in enumerate(factors):
            np.testing.assert_allclose(np.asarray(pi), masks[l][args["domain_ids"]], atol=1e-6)
    else:
        with pytest.raises(ValueError, match="depend on the row"):
            layer.domain_masks()


def test_schedule_grows_alpha_in_training_only_and_regulariser_keeps_sparsity_in_range():
    layer = layers.DomainPrunedMLP([4], 3, domain_embedding_dim=2, alpha=1.0, alpha_step=0.5,
                                   sparsity_range=(0.6, 0.9), sparsity_weight=2.0)
    args = _rows(16)
    layer(**args)
    assert float(layer.alpha_value.numpy()) == 1.0 and not layer.losses
    inputs = tf.constant(args["inputs"])
    with tf.GradientTape() as tape:
        y = layer(inputs, args["domain_ids"], training=True)
        loss = tf.reduce_sum(y) + tf.add_n(layer.losses)
    assert float(layer.alpha_value.numpy()) == 1.5
    # The regulariser: 2 * sum_l relu(0.6 - s_l), s_l the mean of 1 - sigmoid(alpha v) at alpha = 1.
    table, ids = layer.domain_embeddings.numpy(), args["domain_ids"]
    v0, v1 = (table[ids] @ p.numpy() for p in layer.domain_pruners)  # pruner_input="domain": no neurons
    soft = [np.mean(1 - 1 / (1 + np.exp(-v))) for v in (v0, v1)]
    expected = 2.0 * sum(max(0.0, 0.6 - s) + max(0.0, s - 0.9) for s in soft)
    np.testing.assert_allclose(float(layer.losses[0]), expected, atol=1e-5)
    assert expected > 0
    # The relaxation carries gradients to the pruner.
    gradients = tape.gradient(loss, layer.domain_pruners)
    assert all(float(tf.reduce_sum(tf.abs(g))) > 0 for g in gradients)
    layer(**args, training=False)
    assert float(layer.alpha_value.numpy()) == 1.5


def test_sparsity_report_gives_each_domains_pruned_share_per_layer():
    data = tiny_synthetic(200)
    model = km.build_model("adasparse", data.features, data.domain, data.tasks, data=data.frame,
                           **TINY, epsilon=1.0)
    layer = model.get_layer("pruned_mlp")
    layer.alpha_value.assign(5.0)
    table = model.sparsity()
    masks = [np.asarray(m) for m in layer.domain_masks()]
    assert list(table.columns) == ["layer_0", "layer_1", "layer_2", "all"]
    for d in range(3):
        np.testing.assert_allclose(table.iloc[d, :3], [(m[d] == 0).mean() for m in masks])
    assert table["all"].max() > 0
    # With rows, the same shares (the masks are per domain) and the row counts.
    with_rows = model.sparsity(data.frame, batch_size=64)
    np.testing.assert_allclose(with_rows.drop(columns="rows").to_numpy(), table.to_numpy(), atol=1e-12)
    counts = data.frame["domain"].value_counts()
    assert with_rows["rows"].to_dict() == {name: counts[name] for name in model.domain.names}


@pytest.mark.parametrize(
    "hyper_params,message",
    [
        ({"pruner_input": "hidden"}, r"pruner_input must be one of \('domain', 'domain_and_neurons'\), got 'hidden'"),
        ({"epsilon": 2.0}, r"epsilon must be in \[0, beta=2.0\), got 2.0"),
        ({"sparsity_range": (0.5, 0.2)}, r"sparsity_range must be \(low, high\) .* got \(0.5, 0.2\)"),
        ({"beta": 0}, "beta must be a number > 0, got 0"),
    ],
)
def test_invalid_hyper_parameters_name_the_received_value(hyper_params, message):
    data = tiny_synthetic(100)
    with pytest.raises(ValueError, match=message):
        km.build_model("adasparse", data.features, data.domain, data.tasks, data=data.frame, **hyper_params)
