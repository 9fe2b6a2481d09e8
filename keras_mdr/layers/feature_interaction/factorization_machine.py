"""The second-order term of a factorization machine over field embeddings."""

import keras
from keras import ops

from keras_mdr.api_export import km_export


@km_export("keras_mdr.layers.FactorizationMachine")
class FactorizationMachine(keras.layers.Layer):
    """`y = sum_{i<j} <v_i, v_j> = 1/2 sum_e ((sum_i v_ie)^2 - sum_i v_ie^2)`.

    The pairwise interactions of all fields in `O(n e)` per row instead of
    `O(n^2 e)`.

    Call arguments:
        inputs: `[B, n, e]` field embeddings (`FeatureEmbedding` with
            `output_mode="fields"`).

    Returns:
        `[B, 1]`.

    Example:
    >>> FactorizationMachine()(np.ones((2, 3, 4))).shape
    (2, 1)

    Reference: Rendle, "Factorization Machines", ICDM 2010; Guo et al.,
    "DeepFM", IJCAI 2017.
    """

    def call(self, inputs):
        square_of_sum = ops.square(ops.sum(inputs, axis=1))
        sum_of_squares = ops.sum(ops.square(inputs), axis=1)
        return 0.5 * ops.sum(square_of_sum - sum_of_squares, axis=-1, keepdims=True)

    def compute_output_shape(self, inputs_shape):
        return (inputs_shape[0], 1)
