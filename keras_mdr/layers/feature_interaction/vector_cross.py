"""The DCN-v1 cross layer: a rank-one feature cross with a weight vector."""

import keras
from keras import ops

from keras_mdr.api_export import km_export


@km_export("keras_mdr.layers.VectorCross")
class VectorCross(keras.layers.Layer):
    """`x_{l+1} = x0 (x_l . w) + b + x_l`: one cross layer of DCN (v1).

    `x_l . w` is a scalar per row, so a layer costs `O(F)` per row (DCN-v2's
    matrix cross, `keras_rs.layers.FeatureCross`, costs `O(F^2)`). Stack
    layers by feeding each one's output back as `x` with the same `x0`.

    Args:
        kernel_initializer: initializer of `w [F]`.
        bias_initializer: initializer of `b [F]`.

    Call arguments:
        x0: `[B, F]`, the cross network's input.
        x: `[B, F]`, the previous layer's output (`None`: `x0`).

    Returns:
        `[B, F]`.

    Example:
    >>> VectorCross()(np.ones((2, 5))).shape
    (2, 5)

    Reference: Wang et al., "Deep & Cross Network for Ad Click
    Predictions", ADKDD 2017.
    """

    def __init__(self, kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, x0_shape, x_shape=None):
        width = x0_shape[-1]
        self.kernel = self.add_weight(name="kernel", shape=(width,), initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=(width,), initializer=self.bias_initializer)

    def call(self, x0, x=None):
        if x is None:
            x = x0
        scale = ops.sum(x * self.kernel, axis=-1, keepdims=True)
        return x0 * scale + self.bias + x

    def compute_output_shape(self, x0_shape, x_shape=None):
        return x0_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config
