"""M2M: model test case, and the meta attention and meta towers against a per-row loop."""

import numpy as np
from model_probes import layer_outputs

import keras_mdr as km
from keras_mdr import layers
from keras_mdr.testing import run_layer_test, run_model_test, tiny_synthetic

RNG = np.random.default_rng(0)
TINY = {
    "num_experts": 2, "expert_units": [6], "scenario_units": [4], "attention_units": [5],
    "num_tower_layers": 1, "domain_embedding_dim": 3, "task_embedding_dim": 3,
    "transformer_intermediate_dim": 8,
}


def test_m2m_passes_model_test_case():
    run_model_test("m2m", TINY, data=tiny_synthetic(600))


def _rows(batch):
    return {
        "experts": RNG.normal(size=(batch, 3, 4)).astype("float32"),
        "domain_ids": RNG.integers(0, 3, batch).astype("int32"),
    }


def test_scenario_meta_towers_pass_layer_test_case():
    run_layer_test(
        layers.ScenarioMetaTowers,
        {"num_domains": 3, "num_tasks": 2, "scenario_units": [4], "attention_units": [5, 3]},
        _rows,
        expected_output_shape=(8, 2, 4),
    )


def _relu(x):
    return np.maximum(x, 0)


def _dense(layer, x):
    return _relu(x @ layer.kernel.numpy() + layer.bias.numpy())


def _meta_layer(generator, s):
    """One meta layer's kernel and bias for the scenario representation `s`."""
    V, v = generator["kernel_generator"].numpy(), generator["kernel_offset"].numpy()
    U, u = generator["bias_generator"].numpy(), generator["bias_offset"].numpy()
    return np.einsum("s,sio->io", s, V) + v, s @ U + u


def expected_meta_towers(layer, experts, domain_ids):
    """`ScenarioMetaTowers` row by row: the row's own domain's generated weights, its own experts."""
    scenarios = layer.domain_embeddings.numpy()
    for dense in layer.scenario_mlp:
        scenarios = _dense(dense, scenarios)
    tasks = _dense(layer.task_mlp, layer.task_embeddings.numpy())
    w = layer.attention_vector.numpy()
    out = np.zeros((len(experts), layer.num_tasks, experts.shape[-1]))
    for b, d in enumerate(domain_ids):
        s = scenarios[d]
        for t in range(layer.num_tasks):
            scores = []
            for i in range(experts.shape[1]):
                h = np.concatenate([experts[b, i], tasks[t]])
                for generator in layer.attention_generators:
                    kernel, bias = _meta_layer(generator, s)
                    h = _relu(h @ kernel + bias)
                scores.append(h @ w)
            alpha = np.exp(scores - np.max(scores))
            alpha /= alpha.sum()
            tower = (alpha[:, None] * experts[b]).sum(0)
            for generator in layer.tower_generators:
                kernel, bias = _meta_layer(generator, s)
                tower = _relu(_relu(tower @ kernel + bias) + tower)
            out[b, t] = tower
    return out


def test_scenario_meta_towers_equal_a_per_row_loop_with_each_domains_generated_weights():
    layer = layers.ScenarioMetaTowers(3, 2, scenario_units=[4], attention_units=[5, 3], num_tower_layers=2, tile_size=4)
    args = _rows(23)
    layer(**args)  # builds
    for generators in (layer.attention_generators, layer.tower_generators):  # make the generated parts count
        for generator in generators:
            generator["bias_generator"].assign(RNG.normal(size=generator["bias_generator"].shape))
    y = np.asarray(layer(**args))
    np.testing.assert_allclose(y, expected_meta_towers(layer, **args), atol=1e-5)


def test_m2m_fields_are_tokens_and_the_meta_layer_reads_its_experts():
    data = tiny_synthetic(200)
    model = km.build_model("m2m", data.features, data.domain, data.tasks, data=data.frame, **TINY)
    domain_ids, out = layer_outputs(model, data.frame.iloc[:30], ["field_transformer_0", "experts", "meta"])
    assert out["field_transformer_0"].shape == (30, len(data.features), 4)  # one token per feature
    np.testing.assert_allclose(
        out["meta"], expected_meta_towers(model.get_layer("meta"), out["experts"], domain_ids), atol=1e-5
    )
