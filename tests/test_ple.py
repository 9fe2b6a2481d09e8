"""PLE: model test case, and each level equals a naive per-task loop."""

import numpy as np
import pytest
from model_probes import expert, gate, layer_outputs

import keras_mdr as km
from keras_mdr import layers
from keras_mdr.testing import run_layer_test, run_model_test, tiny_synthetic

RNG = np.random.default_rng(0)


def test_ple_passes_model_test_case():
    run_model_test(
        "ple",
        {"num_levels": 2, "num_shared_experts": 2, "expert_units": [8], "tower_units": [4], "dropout": 0.1},
    )


@pytest.mark.large  # a second XLA fit; the default suite keeps one per model
def test_cgc_single_level_with_task_gates_shared_by_domains():
    run_model_test("ple", {"num_levels": 1, "expert_units": [8], "tower_units": [4], "domain_gates": False})


def _naive_level(level, slots, domain_ids):
    """One CGC level, task by task: `slots` are the T task inputs then the shared input."""
    t, s, k = level.num_tasks, level.num_specific_experts, level.num_shared_experts
    bank = level.experts
    shared = [expert(bank, t * s + j, slots[t]) for j in range(k)]
    outputs = []
    for task in range(t):
        own = [expert(bank, task * s + j, slots[task]) for j in range(s)]
        pool = np.stack(own + shared, axis=1)  # [B, S + K, H]
        groups = domain_ids * t + task if level.num_domains is not None else np.full_like(domain_ids, task)
        g = gate(level.task_gates, slots[task], groups)[:, 0]  # [B, S + K]
        outputs.append((g[..., None] * pool).sum(1))
    if level.shared_output:
        every = [expert(bank, task * s + j, slots[task]) for task in range(t) for j in range(s)] + shared
        g = gate(level.shared_gate, slots[t], domain_ids)[:, 0]  # [B, E]
        outputs.append((g[..., None] * np.stack(every, axis=1)).sum(1))
    return outputs


@pytest.mark.parametrize("domain_gates", [True, False])
def test_ple_levels_equal_naive_per_task_loop(domain_gates):
    data = tiny_synthetic(300)
    model = km.build_model(
        "ple", data.features, data.domain, data.tasks, data=data.frame, num_levels=2,
        num_specific_experts=2, num_shared_experts=1, expert_units=[6, 5], tower_units=[3],
        domain_gates=domain_gates,
    )
    domain_ids, out = layer_outputs(model, data.frame.iloc[:40], ["embedding", "level_0", "level_1"])
    assert out["level_0"].shape == (40, 3, 5) and out["level_1"].shape == (40, 2, 5)
    x = out["embedding"]
    level_0 = _naive_level(model.get_layer("level_0"), [x, x, x], domain_ids)
    level_1 = _naive_level(model.get_layer("level_1"), level_0, domain_ids)
    np.testing.assert_allclose(out["level_0"], np.stack(level_0, axis=1), atol=1e-5)
    np.testing.assert_allclose(out["level_1"], np.stack(level_1, axis=1), atol=1e-5)


def _domain_rows(batch, shape=(6,), domains=3):
    return {
        "inputs": RNG.normal(size=(batch, *shape)).astype("float32"),
        "domain_ids": RNG.integers(0, domains, batch).astype("int32"),
    }


def test_cgc_first_level_passes_layer_test_case():
    run_layer_test(
        layers.CustomizedGateControl,
        {"num_tasks": 2, "num_specific_experts": 2, "num_shared_experts": 1, "expert_units": [4],
         "num_domains": 3, "shared_output": True, "dropout": 0.1},
        _domain_rows,
        expected_output_shape=(8, 3, 4),
    )


def test_cgc_later_level_passes_layer_test_case():
    run_layer_test(
        layers.CustomizedGateControl,
        {"num_tasks": 2, "expert_units": [4]},
        lambda b: _domain_rows(b, shape=(3, 6)),
        expected_output_shape=(8, 2, 4),
    )


def test_cgc_rejects_invalid_arguments():
    with pytest.raises(ValueError, match="num_shared_experts must be an integer >= 1, got 0"):
        layers.CustomizedGateControl(2, num_shared_experts=0)
