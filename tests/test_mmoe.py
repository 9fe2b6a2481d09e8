"""MMoE: model test case, and the mixture equals a hand-computed sum over experts."""

import numpy as np
import pytest
from model_probes import expert, gate, layer_outputs

import keras_mdr as km
from keras_mdr import layers
from keras_mdr.testing import run_layer_test, run_model_test, tiny_synthetic

RNG = np.random.default_rng(0)


def test_mmoe_passes_model_test_case():
    run_model_test("mmoe", {"num_experts": 3, "expert_units": [8, 4], "tower_units": [4], "dropout": 0.1})


@pytest.mark.large  # a second XLA fit; the default suite keeps one per model
def test_mmoe_with_task_gates_shared_by_domains():
    run_model_test("mmoe", {"num_experts": 2, "expert_units": [8], "tower_units": [4], "domain_gates": False})


@pytest.mark.parametrize("domain_gates", [True, False])
def test_mmoe_mixture_is_the_rows_gated_sum_over_experts(domain_gates):
    data = tiny_synthetic(300)
    model = km.build_model(
        "mmoe", data.features, data.domain, data.tasks, data=data.frame,
        num_experts=3, expert_units=[6, 5], tower_units=[4], domain_gates=domain_gates,
    )
    domain_ids, out = layer_outputs(model, data.frame.iloc[:40], ["embedding", "mixture"])
    x = out["embedding"]
    bank, gate_layer = model.get_layer("experts"), model.get_layer("gates")
    experts = np.stack([expert(bank, e, x) for e in range(3)], axis=1)  # [B, E, H]
    gates = gate(gate_layer, x, domain_ids)  # [B, T, E]
    assert gates.shape == (40, 2, 3)
    for b in range(40):
        for t in range(2):
            expected = sum(gates[b, t, e] * experts[b, e] for e in range(3))
            np.testing.assert_allclose(out["mixture"][b, t], expected, atol=1e-5)


def test_expert_mixture_with_shared_and_per_gate_experts():
    mixture = layers.ExpertMixture()
    gates = RNG.dirichlet(np.ones(3), size=(4, 2)).astype("float32")
    shared = RNG.normal(size=(4, 3, 5)).astype("float32")
    per_gate = RNG.normal(size=(4, 2, 3, 5)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(mixture(gates, shared)), (gates[..., None] * shared[:, None]).sum(2), atol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(mixture(gates, per_gate)), (gates[..., None] * per_gate).sum(2), atol=1e-5
    )


def test_expert_mixture_passes_layer_test_case():
    run_layer_test(
        layers.ExpertMixture,
        {},
        lambda b: {
            "gates": RNG.dirichlet(np.ones(3), size=(b, 2)).astype("float32"),
            "experts": RNG.normal(size=(b, 3, 5)).astype("float32"),
        },
        expected_output_shape=(8, 2, 5),
        run_training=False,
    )
