"""EPNet and PPNet (PEPNet): model test cases, the Gate NU, and the gated towers against per-row loops."""

import numpy as np
import pytest
import tensorflow as tf
from model_probes import layer_outputs

import keras_mdr as km
from keras_mdr import layers
from keras_mdr.testing import run_layer_test, run_model_test, tiny_synthetic

RNG = np.random.default_rng(0)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _gate_nu(gate, x):
    hidden, out = gate.hidden, gate.gate
    h = np.maximum(x @ hidden.kernel.numpy() + hidden.bias.numpy(), 0)
    return gate.gamma * _sigmoid(h @ out.kernel.numpy() + out.bias.numpy())


def test_epnet_passes_model_test_case():
    run_model_test("epnet", {"tower_units": [8, 4], "domain_embedding_dim": 3}, data=tiny_synthetic(600))


def test_ppnet_passes_model_test_case():
    run_model_test("ppnet", {"tower_units": [8], "prior_features": ["user_id", "item_id"]}, data=tiny_synthetic(600))


def test_gate_nu_is_gamma_times_a_two_layer_sigmoid_gate():
    gate = layers.GateNU(4, hidden_units=3, gamma=2.0)
    x = RNG.normal(size=(6, 5)).astype("float32")
    y = np.asarray(gate(x))
    np.testing.assert_allclose(y, _gate_nu(gate, x), atol=1e-6)
    assert y.min() >= 0 and y.max() <= 2.0


def test_gate_nu_passes_layer_test_case():
    run_layer_test(
        layers.GateNU,
        {"units": 4},
        lambda b: {"inputs": RNG.normal(size=(b, 6)).astype("float32")},
        expected_output_shape=(8, 4),
        expected_num_trainable_weights=4,
    )


def _embeddings_and_domains(batch):
    return {
        "embeddings": RNG.normal(size=(batch, 6)).astype("float32"),
        "domain_ids": RNG.integers(0, 3, batch).astype("int32"),
    }


def test_embedding_personalization_gates_each_element_and_stops_the_gates_gradient():
    layer = layers.EmbeddingPersonalization(3, domain_embedding_dim=2)
    args = _embeddings_and_domains(7)
    embeddings = tf.constant(args["embeddings"])
    with tf.GradientTape() as tape:
        tape.watch(embeddings)
        y = layer(embeddings, args["domain_ids"])
    table = layer.domain_embeddings.numpy()
    delta = _gate_nu(layer.gate, np.concatenate([table[args["domain_ids"]], args["embeddings"]], axis=1))
    np.testing.assert_allclose(np.asarray(y), delta * args["embeddings"], atol=1e-5)
    # The gate reads E behind a stop-gradient: d sum(y) / dE is the gate itself.
    np.testing.assert_allclose(tape.gradient(y, embeddings).numpy(), delta, atol=1e-5)


def test_embedding_personalization_passes_layer_test_case():
    run_layer_test(
        layers.EmbeddingPersonalization,
        {"num_domains": 3, "domain_embedding_dim": 2},
        _embeddings_and_domains,
        expected_output_shape=(8, 6),
        expected_num_trainable_weights=5,
    )


def test_parameter_personalization_gates_split_per_task_and_stop_the_tower_inputs_gradient():
    layer = layers.ParameterPersonalizationGates([6, 4], num_tasks=2, hidden_units=5)
    priors = tf.constant(RNG.normal(size=(3, 2)).astype("float32"))
    tower_inputs = tf.constant(RNG.normal(size=(3, 6)).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([priors, tower_inputs])
        gates = layer(priors, tower_inputs)
        total = tf.add_n([tf.reduce_sum(g) for g in gates])
    x = np.concatenate([priors.numpy(), tower_inputs.numpy()], axis=1)
    for gate, nu, width in zip(gates, layer.gates, [6, 4]):
        np.testing.assert_allclose(np.asarray(gate), _gate_nu(nu, x).reshape(3, 2, width), atol=1e-5)
    assert tape.gradient(total, tower_inputs) is None
    assert np.abs(tape.gradient(total, priors).numpy()).sum() > 0


def test_parameter_personalization_gates_pass_layer_test_case():
    run_layer_test(
        layers.ParameterPersonalizationGates,
        {"widths": [6, 3], "num_tasks": 2},
        lambda b: {
            "priors": RNG.normal(size=(b, 4)).astype("float32"),
            "tower_inputs": RNG.normal(size=(b, 6)).astype("float32"),
        },
        expected_output_shape=[(8, 2, 6), (8, 2, 3)],
    )


def _build(name, data, **hyper_params):
    return km.build_model(name, data.features, data.domain, data.tasks, data=data.frame, **hyper_params)


def _tower(towers, group, x, gates=()):
    """One tower of a `DomainTaskTowers` on one row, layer by layer."""
    weights = [w.numpy() for w in towers.towers.weights]
    kernels, biases = weights[0::2], weights[1::2]
    h = x
    for i, (kernel, bias) in enumerate(zip(kernels, biases)):
        if len(gates):
            h = gates[i] * h
        h = h @ kernel[group] + bias[group]
        if i < len(kernels) - 1:
            h = np.maximum(h, 0)
    return h[0]


def test_epnet_logits_are_task_towers_on_the_domain_gated_embeddings():
    data = tiny_synthetic(300)
    model = _build("epnet", data, tower_units=[5], domain_embedding_dim=3)
    frame = data.frame.iloc[:40]
    domain_ids, out = layer_outputs(model, frame, ["embedding", "epnet", "task_towers"])
    assert len(np.unique(domain_ids)) == 3
    epnet = model.get_layer("epnet")
    x = out["embedding"]
    delta = _gate_nu(epnet.gate, np.concatenate([epnet.domain_embeddings.numpy()[domain_ids], x], axis=1))
    np.testing.assert_allclose(out["epnet"], delta * x, atol=1e-5)
    towers = model.get_layer("task_towers")
    for b in range(40):
        for t in range(2):  # the tower of task t, whatever the row's domain
            np.testing.assert_allclose(out["task_towers"][b, t], _tower(towers, t, out["epnet"][b]), atol=1e-5)


def test_ppnet_towers_equal_a_per_row_loop_over_gated_layers():
    data = tiny_synthetic(300)
    model = _build("ppnet", data, tower_units=[5, 3], gate_hidden_units=4)
    assert model.hyper_parameters["prior_features"] is None  # the default: user_id, item_id
    frame = data.frame.iloc[:40]
    domain_ids, out = layer_outputs(model, frame, ["embedding", "towers"])
    x = out["embedding"]
    dims = {f.name: f.embedding_dim for f in model.features if f.kind != "numeric"}
    priors = x[:, : dims["user_id"] + dims["item_id"]]  # user_id and item_id come first
    gate_layer = model.get_layer("ppnet_gates")
    gate_inputs = np.concatenate([priors, x], axis=1)
    gates = [_gate_nu(nu, gate_inputs).reshape(40, 2, w) for nu, w in zip(gate_layer.gates, gate_layer.widths)]
    towers = model.get_layer("towers")
    for b in range(40):
        for t in range(2):
            expected = _tower(towers, domain_ids[b] * 2 + t, x[b], [g[b, t] for g in gates])
            np.testing.assert_allclose(out["towers"][b, t], expected, atol=1e-5)


def test_ppnet_without_id_features_asks_for_prior_features():
    data = tiny_synthetic(100)
    features = [f for f in data.features if not f.name.endswith("_id")]
    with pytest.raises(ValueError, match="pass prior_features"):
        km.build_model("ppnet", features, data.domain, data.tasks, data=data.frame)
    with pytest.raises(ValueError, match=r"unknown features \['nope'\]"):
        _build("ppnet", data, prior_features=["nope"])
