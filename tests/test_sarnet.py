"""SAR-Net: model test case with a behaviour sequence, its attentions and experts against per-row loops."""

import numpy as np
import pytest
import tensorflow as tf
from model_probes import layer_outputs

import keras_mdr as km
from keras_mdr import layers
from keras_mdr.testing import run_layer_test, run_model_test, tiny_synthetic

RNG = np.random.default_rng(0)
TINY = {"attention_dim": 3, "num_shared_experts": 2, "num_specific_experts": 2, "expert_units": [6], "tower_units": [4]}


def with_history(data, seed=0):
    """The synthetic data plus `history`, each row's previously seen items ("" for none)."""
    rng = np.random.default_rng(seed)
    frame = data.frame.copy()
    frame["history"] = [
        "|".join(f"i{j}" for j in rng.integers(0, 60, rng.integers(0, 6))) for _ in range(len(frame))
    ]
    features = list(data.features) + [km.SequenceFeature("history", separator="|", max_len=5, embedding_dim=4)]
    return data._replace(frame=frame, features=features)


@pytest.fixture(scope="module")
def behaviour_model():
    """SAR-Net with its behaviour attention, trained by `run_model_test`, and its data."""
    data = with_history(tiny_synthetic(600))
    behaviour = {"behavior_feature": "history", "target_feature": "item_id"}
    return run_model_test("sarnet", {**TINY, **behaviour}, data=data), data


def test_sarnet_with_behaviour_attention_passes_model_test_case(behaviour_model):
    model, _ = behaviour_model
    assert any(isinstance(layer, layers.ScenarioBehaviorAttention) for layer in model.layers)


def test_sarnet_with_behaviour_attention_exports_and_its_signature_agrees_with_keras(behaviour_model, tmp_path):
    # The serving test covers every model with its defaults; SAR-Net's default has no behaviour sequence.
    model, data = behaviour_model
    rows = data.frame.iloc[:64].reset_index(drop=True)
    rows.loc[::4, "history"] = ""  # no behaviour at all
    rows.loc[1::4, "history"] = "i-never-seen|i3"
    expected = model.predict(rows, batch_size=len(rows))
    version_dir = km.export_saved_model(model, tmp_path / "mdr", warmup_data=rows)
    columns, _ = km.data.prepare_columns(rows, model.features, model.domain)
    serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    for size in (len(rows), 1):
        served = serve(**{k: tf.constant(v[:size]) for k, v in columns.items()})
        for task, values in expected.items():
            np.testing.assert_allclose(served[task].numpy(), values[:size], atol=1e-5, err_msg=f"{task}, batch {size}")


def _attention_rows(batch):
    lengths = RNG.integers(0, 5, batch)
    return {
        "behaviors": RNG.normal(size=(batch, 4, 5)).astype("float32"),
        "padding_mask": np.arange(4) < lengths[:, None],
        "target": RNG.normal(size=(batch, 3)).astype("float32"),
        "domain_ids": RNG.integers(0, 3, batch).astype("int32"),
    }


def test_scenario_behavior_attention_passes_layer_test_case():
    run_layer_test(
        layers.ScenarioBehaviorAttention,
        {"num_domains": 3, "attention_dim": 4},
        _attention_rows,
        expected_output_shape=(8, 10),
        expected_num_trainable_weights=4,
    )


def _pool(query, keys, behaviors, mask, a):
    if not mask.any():
        return np.zeros(behaviors.shape[-1])
    logits = (behaviors[mask] @ keys) @ query / np.sqrt(a)
    weights = np.exp(logits - logits.max())
    return (weights / weights.sum()) @ behaviors[mask]


def expected_attention(layer, behaviors, padding_mask, target, domain_ids):
    q, ks = layer.domain_queries.numpy(), layer.scenario_keys.numpy()
    qi, ki = layer.item_queries.numpy(), layer.item_keys.numpy()
    a = layer.attention_dim
    return np.stack([
        np.concatenate([
            _pool(q[domain_ids[b]], ks, behaviors[b], padding_mask[b], a),
            _pool(target[b] @ qi, ki, behaviors[b], padding_mask[b], a),
        ])
        for b in range(len(behaviors))
    ])


def test_scenario_behavior_attention_equals_per_row_attention_over_the_rows_own_behaviours():
    layer = layers.ScenarioBehaviorAttention(3, attention_dim=4)
    args = _attention_rows(20)
    args["padding_mask"][0] = False  # a row without behaviours pools to zeros
    y = np.asarray(layer(**args))
    np.testing.assert_allclose(y, expected_attention(layer, **args), atol=1e-5)
    np.testing.assert_array_equal(y[0], 0.0)


def _mixture_rows(batch):
    return {
        "inputs": RNG.normal(size=(batch, 6)).astype("float32"),
        "domain_ids": RNG.integers(0, 3, batch).astype("int32"),
    }


def test_scenario_expert_mixture_passes_layer_test_case():
    run_layer_test(
        layers.ScenarioExpertMixture,
        {"num_domains": 3, "num_tasks": 2, "num_shared_experts": 2, "num_specific_experts": 2, "units": [4]},
        _mixture_rows,
        expected_output_shape=(8, 2, 4),
    )


def expected_mixture(layer, inputs, domain_ids):
    p, s = layer.num_specific_experts, layer.num_shared_experts
    shared_k = [k.numpy() for k in layer.shared_experts.kernels]
    shared_b = [b.numpy() for b in layer.shared_experts.biases]
    specific_k = [k.numpy() for k in layer.specific_experts.kernels]
    specific_b = [b.numpy() for b in layer.specific_experts.biases]
    logits = layer.gate_logits.numpy()
    out = []
    for x, d in zip(inputs, domain_ids):
        experts = []
        for e in range(s):
            h = x
            for k, b in zip(shared_k, shared_b):
                h = np.maximum(h @ k[e] + b[e], 0)
            experts.append(h)
        for j in range(p):  # only the row's own domain's experts
            h = x
            for k, b in zip(specific_k, specific_b):
                h = np.maximum(h @ k[d * p + j] + b[d * p + j], 0)
            experts.append(h)
        gates = np.exp(logits[d]) / np.exp(logits[d]).sum(-1, keepdims=True)
        out.append(gates @ np.stack(experts))
    return np.stack(out)


def test_scenario_expert_mixture_equals_a_per_row_loop_over_shared_and_own_experts():
    layer = layers.ScenarioExpertMixture(3, 2, num_shared_experts=2, num_specific_experts=2, units=[5, 4])
    args = _mixture_rows(25)
    layer(**args)
    layer.gate_logits.assign(RNG.normal(size=layer.gate_logits.shape))
    np.testing.assert_allclose(np.asarray(layer(**args)), expected_mixture(layer, **args), atol=1e-5)


def test_sarnet_pools_behaviours_only_when_given_and_keeps_them_out_of_the_encoded_features():
    data = with_history(tiny_synthetic(200))
    plain = km.build_model("sarnet", data.features, data.domain, data.tasks, data=data.frame, **TINY)
    assert not any(isinstance(layer, layers.ScenarioBehaviorAttention) for layer in plain.layers)
    model = km.build_model(
        "sarnet", data.features, data.domain, data.tasks, data=data.frame, **TINY,
        behavior_feature="history", target_feature="item_id",
    )
    names = [f["name"] for f in model.get_layer("embedding").sparse_fields]
    assert "history" not in names and "history" in [f["name"] for f in plain.get_layer("embedding").sparse_fields]
    frame = data.frame.iloc[:30]
    names = ["behavior_embedding", "embedding", "behavior_attention", "scenario_transform", "experts"]
    domain_ids, out = layer_outputs(model, frame, names)
    batch = next(iter(model.make_dataset(frame, batch_size=30, labels=False)))
    ids = np.asarray(batch["history"])
    item_width = model.get_layer("embedding").sparse_fields[1]["dim"]  # item_id follows user_id
    user_width = model.get_layer("embedding").sparse_fields[0]["dim"]
    target = out["embedding"][:, user_width : user_width + item_width]
    attention = model.get_layer("behavior_attention")
    expected = expected_attention(attention, out["behavior_embedding"], ids > 0, target, domain_ids)
    np.testing.assert_allclose(out["behavior_attention"], expected, atol=1e-5)
    np.testing.assert_allclose(
        out["experts"], expected_mixture(model.get_layer("experts"), out["scenario_transform"], domain_ids), atol=1e-5
    )


@pytest.mark.parametrize(
    "hyper_params,message",
    [
        ({"behavior_feature": "history"}, "needs both behavior_feature and target_feature"),
        ({"behavior_feature": "tags", "target_feature": "price"}, "target_feature must name a categorical feature"),
        ({"behavior_feature": "item_id", "target_feature": "item_id"}, "behavior_feature must name a SequenceFeature"),
    ],
)
def test_invalid_behaviour_arguments_name_the_received_value(hyper_params, message):
    data = with_history(tiny_synthetic(100))
    with pytest.raises(ValueError, match=message):
        km.build_model("sarnet", data.features, data.domain, data.tasks, data=data.frame, **hyper_params)
