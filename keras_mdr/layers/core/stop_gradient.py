"""The identity in the forward pass, a zero gradient in the backward pass."""

import keras
from keras import ops

from keras_mdr.api_export import km_export


@km_export("keras_mdr.layers.StopGradient")
class StopGradient(keras.layers.Layer):
    """`y = x`, with no gradient flowing back into `x`.

    For inputs that a part of the model should read without training what
    produces them, e.g. M3oE's gates reading `stop_gradient(h)` so that the
    gates' loss does not pull the shared bottom. A layer rather than a
    `Lambda`, so models using it load with `safe_mode=True`.

    Call arguments:
        inputs: a tensor of any shape.

    Returns:
        `inputs`, unchanged.
    """

    def call(self, inputs):
        return ops.stop_gradient(inputs)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape
