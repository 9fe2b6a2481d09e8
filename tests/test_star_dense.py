"""StarDense: the star-topology layer equals a per-row loop over W_shared * W_d."""

import numpy as np
import pytest

from keras_mdr import layers
from keras_mdr.testing import run_layer_test

RNG = np.random.default_rng(0)


def _rows(batch, width=6, domains=3):
    return {
        "inputs": RNG.normal(size=(batch, width)).astype("float32"),
        "group_ids": RNG.integers(0, domains, batch).astype("int32"),
    }


@pytest.mark.parametrize("rows,tile", [(1, 64), (37, 8)])
def test_star_dense_equals_per_row_loop_over_elementwise_product(rows, tile):
    layer = layers.StarDense(
        4, num_domains=3, activation="relu", tile_size=tile,
        kernel_initializer="random_normal", bias_initializer="random_normal",
        shared_bias_initializer="random_normal",
    )
    args = _rows(rows)
    y = np.asarray(layer(**args))
    shared, kernel = layer.shared_kernel.numpy(), layer.kernel.numpy()
    shared_bias, bias = layer.shared_bias.numpy(), layer.bias.numpy()
    for i in range(rows):
        d = args["group_ids"][i]
        expected = np.maximum(args["inputs"][i] @ (shared * kernel[d]) + shared_bias + bias[d], 0.0)
        np.testing.assert_allclose(y[i], expected, atol=1e-5)


def test_star_dense_starts_as_the_shared_layer_for_every_domain():
    layer = layers.StarDense(5, num_domains=3, shared_bias_initializer="random_normal")
    args = _rows(20)
    y = np.asarray(layer(**args))
    np.testing.assert_allclose(layer.kernel.numpy(), 1.0)
    expected = args["inputs"] @ layer.shared_kernel.numpy() + layer.shared_bias.numpy()
    np.testing.assert_allclose(y, expected, atol=1e-5)


def test_star_dense_passes_layer_test_case():
    run_layer_test(
        layers.StarDense,
        {"units": 4, "num_domains": 3, "activation": "relu"},
        _rows,
        expected_output_shape=(8, 4),
        expected_num_trainable_weights=4,
    )


def test_star_dense_without_bias_has_only_kernels():
    layer = layers.StarDense(2, num_domains=2, use_bias=False)
    layer(**_rows(4, domains=2))
    assert [w.name for w in layer.trainable_weights] == ["kernel", "shared_kernel"]


def test_star_dense_rejects_invalid_arguments():
    with pytest.raises(ValueError, match="num_groups must be an integer >= 1, got 0"):
        layers.StarDense(2, num_domains=0)
