"""M3oE's layers: the expert fusion equals a naive loop; stop-gradient blocks gradients only."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_mdr import layers
from keras_mdr.testing import run_layer_test

RNG = np.random.default_rng(0)


def _fusion_inputs(batch, experts=3, domains=3, tasks=2, units=4):
    gates = RNG.random((batch, tasks, experts)).astype("float32")
    return {
        "shared_experts": RNG.normal(size=(batch, experts, units)).astype("float32"),
        "gates": gates / gates.sum(-1, keepdims=True),
        "domain_experts": RNG.normal(size=(batch, domains, units)).astype("float32"),
        "task_experts": RNG.normal(size=(batch, tasks, units)).astype("float32"),
        "domain_ids": RNG.integers(0, domains, batch).astype("int32"),
    }


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _balanced(experts, own, weight):
    """`w E_own + (1 - w) / (N - 1) sum_{other} E_other`, written as a loop; `E_own` when N = 1."""
    if len(experts) == 1:
        return experts[own]
    others = sum(experts[j] for j in range(len(experts)) if j != own)
    return weight * experts[own] + (1.0 - weight) / (len(experts) - 1) * others


@pytest.mark.parametrize("domains,tasks", [(3, 2), (4, 3), (1, 2), (3, 1), (1, 1)])
def test_expert_fusion_equals_naive_loop_over_rows_domains_and_tasks(domains, tasks):
    layer = layers.ExpertFusion()
    args = _fusion_inputs(13, domains=domains, tasks=tasks)
    layer(**args)
    logits = RNG.normal(size=4).astype("float32")
    for weight, value in zip(layer.structure_weights, logits):
        weight.assign(value)
    w_d, w_t, beta_d, beta_t = _sigmoid(logits)
    f = np.asarray(layer(**args))

    expected = np.zeros_like(f)
    for b in range(13):
        d = args["domain_ids"][b]
        domain_view = _balanced(args["domain_experts"][b], d, w_d)
        for t in range(tasks):
            shared = sum(args["gates"][b, t, e] * args["shared_experts"][b, e] for e in range(3))
            task_view = _balanced(args["task_experts"][b], t, w_t)
            expected[b, t] = shared + beta_d * domain_view + beta_t * task_view
    np.testing.assert_allclose(f, expected, atol=1e-5)


def test_expert_fusion_structure_weights_are_four_named_scalars_at_one_half():
    layer = layers.ExpertFusion()
    layer(**_fusion_inputs(2))
    assert [w.name for w in layer.structure_weights] == [
        "structure_domain_balance",
        "structure_task_balance",
        "structure_domain_scale",
        "structure_task_scale",
    ]
    assert all(w.shape == () for w in layer.structure_weights)
    assert layer.structure_values() == pytest.approx(dict.fromkeys(layer.structure_values(), 0.5))


def test_expert_fusion_with_one_domain_gives_finite_gradients():
    layer = layers.ExpertFusion()
    args = _fusion_inputs(5, domains=1, tasks=1)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(**args))
    gradients = tape.gradient(loss, layer.trainable_variables)
    assert all(g is not None and np.all(np.isfinite(g)) for g in gradients)
    # Nothing to balance against: the balance weights get a zero gradient.
    np.testing.assert_allclose([gradients[0], gradients[1]], 0.0)


def test_expert_fusion_passes_layer_test_case():
    run_layer_test(
        layers.ExpertFusion,
        {"structure_initializer": "random_normal"},
        _fusion_inputs,
        expected_output_shape=(8, 2, 4),
        expected_num_trainable_weights=4,
    )


def test_stop_gradient_is_identity_with_zero_gradient():
    x = tf.constant(RNG.normal(size=(3, 4)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layers.StopGradient()(x)
        loss = tf.reduce_sum(y * y)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x))
    assert tape.gradient(loss, x) is None


def test_stop_gradient_passes_layer_test_case():
    run_layer_test(
        layers.StopGradient,
        {},
        lambda b: {"inputs": RNG.normal(size=(b, 6)).astype("float32")},
        expected_output_shape=(8, 6),
        run_training=False,
    )


def test_expert_fusion_loads_from_config_unbuilt():
    layer = layers.ExpertFusion(structure_initializer=keras.initializers.Constant(2.0))
    restored = layers.ExpertFusion.from_config(layer.get_config())
    restored(**_fusion_inputs(2))
    assert restored.structure_values()["structure_task_scale"] == pytest.approx(_sigmoid(2.0))
