"""AdaptDHM: model test case, the cluster router's centroid update, and routing against a per-row loop."""

import os

import keras
import numpy as np
import pytest
from model_probes import layer_outputs

import keras_mdr as km
from keras_mdr import layers
from keras_mdr.testing import run_layer_test, run_model_test, tiny_synthetic

RNG = np.random.default_rng(0)
TINY = {"num_clusters": 3, "hidden_units": [8], "domain_embedding_dim": 3, "seed": 1}


def test_adaptdhm_passes_model_test_case():
    run_model_test("adaptdhm", TINY, data=tiny_synthetic(600))


def _normalize(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_cluster_router_updates_centroids_in_training_only_and_routes_to_the_nearest():
    router = layers.ClusterRouter(3, momentum=0.8, routing_iterations=2, seed=3)
    x = RNG.normal(size=(40, 5)).astype("float32")
    router.build(x.shape)
    start = router.centroids.numpy()
    np.testing.assert_allclose(np.linalg.norm(start, axis=1), 1.0, atol=1e-6)

    clusters = np.asarray(router(x, training=False))
    np.testing.assert_array_equal(router.centroids.numpy(), start)  # inference never updates them
    np.testing.assert_array_equal(clusters, np.argmax(x @ start.T, axis=1))

    expected = start
    for _ in range(2):
        s = _softmax(x @ expected.T).T @ x
        expected = _normalize(0.8 * expected + 0.2 * _normalize(s))
    clusters = np.asarray(router(x, training=True))
    np.testing.assert_allclose(router.centroids.numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(clusters, np.argmax(x @ expected.T, axis=1))


def test_cluster_router_keeps_a_centroid_without_weight_in_the_batch():
    router = layers.ClusterRouter(2, momentum=0.5, routing_iterations=1)
    router.build((None, 2))
    router.centroids.assign(np.array([[1.0, 0.0], [0.0, 1.0]], "float32"))
    # Rows far along the first axis: the second cluster's softmax weight underflows to 0.
    router(np.array([[200.0, -200.0], [300.0, -100.0]], "float32"), training=True)
    np.testing.assert_allclose(router.centroids.numpy()[1], [0.0, 1.0])
    assert np.all(np.isfinite(router.centroids.numpy()))


def test_cluster_router_passes_layer_test_case():
    run_layer_test(
        layers.ClusterRouter,
        {"num_clusters": 4, "seed": 0},
        lambda b: {"inputs": RNG.normal(size=(b, 6)).astype("float32")},
        expected_output_shape=(8,),
        expected_num_trainable_weights=0,
        run_training=False,
    )


def _build(data, **hyper_params):
    return km.build_model(
        "adaptdhm", data.features, data.domain, data.tasks, data=data.frame, **{**TINY, **hyper_params}
    )


def test_adaptdhm_routes_each_row_to_its_nearest_centroids_star_network():
    data = tiny_synthetic(300)
    model = _build(data, hidden_units=[6, 4])
    domain_ids, out = layer_outputs(model, data.frame.iloc[:60], ["representation", "router", "cluster_logits"])
    x, logits = out["representation"], out["cluster_logits"]
    centroids = model.get_layer("router").centroids.numpy()
    clusters = np.argmax(x @ centroids.T, axis=1)
    np.testing.assert_array_equal(out["router"], clusters)
    assert len(np.unique(clusters)) > 1
    names = ["cluster_fcn_0", "cluster_fcn_1", "cluster_logits"]
    star = [model.get_layer(n) for n in names]
    for i in range(60):
        h, k = x[i], clusters[i]
        for j, layer in enumerate(star):
            kernel = layer.shared_kernel.numpy() * layer.kernel.numpy()[k]
            h = h @ kernel + layer.shared_bias.numpy() + layer.bias.numpy()[k]
            if j < len(star) - 1:
                h = np.maximum(h, 0)
        np.testing.assert_allclose(logits[i], h, atol=1e-5)


def test_adaptdhm_centroids_learn_in_fit_and_are_saved_with_the_model(tmp_path):
    data = tiny_synthetic(300)
    model = _build(data)
    start = model.get_layer("router").centroids.numpy()
    model.compile(optimizer="adam", jit_compile=False)
    model.fit(data.frame, epochs=1, batch_size=100, verbose=0)
    trained = model.get_layer("router").centroids.numpy()
    assert not np.allclose(trained, start)
    path = os.path.join(tmp_path, "adaptdhm.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded.get_layer("router").centroids.numpy(), trained)

    table = km.training.cluster_assignment(loaded, data.frame, batch_size=64)
    assert list(table.index) == model.domain.names
    np.testing.assert_allclose(table.filter(like="cluster_").sum(axis=1), 1.0)
    assert table["rows"].sum() == len(data.frame)


@pytest.mark.parametrize(
    "hyper_params,message",
    [
        ({"num_clusters": 0}, "num_clusters must be an integer >= 1, got 0"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\), got 1.0"),
        ({"domain_embedding_dim": -1}, r"domain_embedding_dim must be an integer >= 0 \(0: no domain input\), got -1"),
    ],
)
def test_invalid_hyper_parameters_name_the_received_value(hyper_params, message):
    with pytest.raises(ValueError, match=message):
        _build(tiny_synthetic(100), **hyper_params)
