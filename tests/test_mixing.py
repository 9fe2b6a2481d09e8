"""`mix`: each row's weighted sums equal a loop over rows, groups and values, under XLA too."""

import numpy as np
import pytest
import tensorflow as tf

from keras_mdr.layers.core.mixing import mix

RNG = np.random.default_rng(0)


def naive_mix(weights, values):
    batch, groups, _ = weights.shape
    out = np.zeros((batch, groups, values.shape[-1]), np.float64)
    for b in range(batch):
        for g in range(groups):
            rows = values[b] if values.ndim == 3 else values[b, g]
            out[b, g] = sum(weights[b, g, e] * rows[e] for e in range(weights.shape[2]))
    return out


@pytest.mark.parametrize("values_shape", [(7, 4, 5), (7, 3, 4, 5)], ids=["shared_values", "values_per_group"])
@pytest.mark.parametrize("jit_compile", [False, True])
def test_mix_equals_a_loop_over_rows_groups_and_values(values_shape, jit_compile):
    weights = RNG.random((7, 3, 4)).astype("float32")
    values = RNG.normal(size=values_shape).astype("float32")
    out = tf.function(mix, jit_compile=jit_compile)(weights, values)
    assert out.shape == (7, 3, 5)
    np.testing.assert_allclose(out, naive_mix(weights, values), rtol=1e-5, atol=1e-6)
