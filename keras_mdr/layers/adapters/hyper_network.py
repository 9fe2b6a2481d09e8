"""A hyper-network: an instance embedding to a small k x k matrix per row."""

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.core.mlp_block import MLPBlock
from keras_mdr.layers.core.validation import check_positive_int, check_units


@km_export("keras_mdr.layers.HyperNetwork")
class HyperNetwork(keras.layers.Layer):
    """`H(x) = reshape(MLP(x) W + b, [k, k])`: one `k x k` matrix per row.

    The domain-shared hyper-network of HAMUR: it reads the instance embedding
    and emits the core `H` of every `HyperAdapter`'s low-rank weights
    `U H V`. Call it once per forward pass and hand its output to all cells.

    Args:
        rank: k.
        units: hidden widths of the MLP before the `k * k` output layer
            (empty: a single linear layer).
        activation: activation of the hidden layers.
        kernel_initializer: initializer of every kernel.

    Call arguments:
        inputs: `[B, F]` instance embedding.
        training: enables dropout/batch norm of the MLP (none by default).

    Returns:
        `[B, k, k]`.

    Example:
    >>> HyperNetwork(rank=4, units=[8])(np.ones((2, 5))).shape
    (2, 4, 4)

    Reference: Li et al., "HAMUR: Hyper Adapter for Multi-Domain
    Recommendation", CIKM 2023.
    """

    def __init__(self, rank, units=(64,), activation="relu", kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.rank = check_positive_int("rank", rank)
        self.units = check_units("units", units, allow_empty=True)
        self.activation = activation
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.hidden = None
        if self.units:
            self.hidden = MLPBlock(
                self.units, activation=activation, kernel_initializer=self.kernel_initializer, name="hidden"
            )
        self.output_dense = keras.layers.Dense(
            self.rank * self.rank, kernel_initializer=self.kernel_initializer, name="output"
        )

    def build(self, inputs_shape):
        shape = tuple(inputs_shape)
        if self.hidden is not None:
            self.hidden.build(shape)
            shape = self.hidden.compute_output_shape(shape)
        self.output_dense.build(shape)

    def call(self, inputs, training=None):
        x = inputs
        if self.hidden is not None:
            x = self.hidden(x, training=training)
        return ops.reshape(self.output_dense(x), (-1, self.rank, self.rank))

    def compute_output_shape(self, inputs_shape):
        return (inputs_shape[0], self.rank, self.rank)

    def get_config(self):
        config = super().get_config()
        config.update(
            rank=self.rank,
            units=self.units,
            activation=self.activation,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
