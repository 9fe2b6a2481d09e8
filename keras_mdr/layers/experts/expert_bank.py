"""A bank of equally shaped MLP experts evaluated as stacked matmuls."""

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.core.validation import check_positive_int, check_rate, check_units


@km_export("keras_mdr.layers.ExpertBank")
class ExpertBank(keras.layers.Layer):
    """E MLP experts, `f_e(x)`, with weights stacked as `[E, in, out]`.

    Every expert runs on every row (the dense mixture of MMoE and PLE); for
    sparse, routed experts see `ConditionalExperts`.

    Args:
        num_experts: E.
        units: widths of each expert's layers.
        activation: activation after every layer.
        dropout: dropout rate after each activation.

    Call arguments:
        inputs: `[B, in]` (all experts see the same input) or `[B, E, in]`
            (one input per expert).
        training: enables dropout.

    Returns:
        `[B, E, units[-1]]`.
    """

    def __init__(self, num_experts, units, activation="relu", dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_experts = check_positive_int("num_experts", num_experts)
        self.units = check_units("units", units)
        self.activation = keras.activations.get(activation)
        self.dropout = check_rate("dropout", dropout)
        self.dropout_layer = keras.layers.Dropout(self.dropout) if self.dropout else None

    def build(self, inputs_shape):
        self.kernels, self.biases = [], []
        width = inputs_shape[-1]
        for i, units in enumerate(self.units):
            self.kernels.append(
                self.add_weight(
                    name=f"kernel_{i}",
                    shape=(self.num_experts, width, units),
                    initializer="glorot_uniform",
                )
            )
            self.biases.append(
                self.add_weight(name=f"bias_{i}", shape=(self.num_experts, units), initializer="zeros")
            )
            width = units

    def call(self, inputs, training=None):
        x = inputs
        for i, (kernel, bias) in enumerate(zip(self.kernels, self.biases)):
            if i == 0 and len(inputs.shape) == 2:
                x = ops.einsum("bi,eij->bej", x, kernel)
            else:
                x = ops.einsum("bei,eij->bej", x, kernel)
            x = self.activation(x + bias)
            if self.dropout_layer is not None:
                x = self.dropout_layer(x, training=training)
        return x

    def compute_output_shape(self, inputs_shape):
        return (inputs_shape[0], self.num_experts, self.units[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            num_experts=self.num_experts,
            units=self.units,
            activation=keras.activations.serialize(self.activation),
            dropout=self.dropout,
        )
        return config
