"""STAR: model test case; logits are star logits plus the auxiliary logits, unactivated."""

import numpy as np
import pytest
from model_probes import layer_outputs

import keras_mdr as km
from keras_mdr.testing import run_model_test, tiny_synthetic


def test_star_passes_model_test_case():
    run_model_test(
        "star", {"star_units": [16, 8], "aux_units": [4], "domain_embedding_dim": 4, "dropout": 0.1}
    )


@pytest.mark.large  # a second XLA fit; the default suite keeps one per model
def test_star_without_partitioned_norm_or_hidden_layers():
    run_model_test("star", {"star_units": [], "aux_units": [], "partitioned_norm": False})


def test_star_logit_is_main_plus_aux_without_activation():
    data = tiny_synthetic(300)
    model = km.build_model(
        "star", data.features, data.domain, data.tasks, data=data.frame,
        star_units=[8], aux_units=[4], domain_embedding_dim=3,
    )
    # Negative biases: a ReLU (or any non-negative activation) on the output would show.
    model.get_layer("star_logits").shared_bias.assign(np.full((2,), -3.0, "float32"))
    model.get_layer("aux_logits").bias.assign(np.full((2,), -1.0, "float32"))
    frame = data.frame.iloc[:60]
    domain_ids, out = layer_outputs(model, frame, ["star_logits", "aux_logits"])
    main, aux = out["star_logits"], out["aux_logits"]
    assert (main < 0).mean() > 0.9
    # The auxiliary logit is a function of the domain alone, and differs between domains.
    domains = np.unique(domain_ids)
    assert len(domains) > 1
    per_domain = np.stack([aux[domain_ids == d][0] for d in domains])
    np.testing.assert_allclose(aux, per_domain[np.searchsorted(domains, domain_ids)], atol=1e-6)
    assert not np.allclose(per_domain[0], per_domain[1])

    probabilities = model.predict(frame)
    for t, task in enumerate(["click", "like"]):
        np.testing.assert_allclose(probabilities[task], 1 / (1 + np.exp(-(main[:, t] + aux[:, t]))), atol=1e-5)
        assert probabilities[task].max() < 0.5
