"""A plain stack of dense layers."""

import keras

from keras_mdr.api_export import km_export
from keras_mdr.layers.core.validation import check_rate, check_units


@km_export("keras_mdr.layers.MLPBlock")
class MLPBlock(keras.layers.Layer):
    """`x -> [Dense -> (BatchNorm) -> act -> (Dropout)] * len(units)`.

    Batch normalisation, when on, uses its moving statistics at inference, so
    a row's output never depends on the rest of the batch.

    Args:
        units: layer widths, e.g. `[256, 128]`.
        activation: activation name or callable.
        dropout: dropout rate after each activation.
        batch_norm: normalise before each activation.
        kernel_initializer: initializer of the kernels.

    Call arguments:
        inputs: `[..., in]`.
        training: enables dropout and batch statistics.

    Returns:
        `[..., units[-1]]`.
    """

    def __init__(
        self,
        units,
        activation="relu",
        dropout=0.0,
        batch_norm=False,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_units("units", units)
        self.activation = activation
        self.dropout = check_rate("dropout", dropout)
        self.batch_norm = bool(batch_norm)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.blocks = []
        for i, width in enumerate(self.units):
            block = [keras.layers.Dense(width, kernel_initializer=self.kernel_initializer, name=f"dense_{i}")]
            if self.batch_norm:
                block.append(keras.layers.BatchNormalization(name=f"batch_norm_{i}"))
            block.append(keras.layers.Activation(activation, name=f"activation_{i}"))
            if self.dropout:
                block.append(keras.layers.Dropout(self.dropout, name=f"dropout_{i}"))
            self.blocks.append(block)

    def build(self, inputs_shape):
        shape = tuple(inputs_shape)
        for block in self.blocks:
            for layer in block:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)

    def call(self, inputs, training=None):
        x = inputs
        for block in self.blocks:
            for layer in block:
                x = layer(x, training=training)
        return x

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape[:-1]) + (self.units[-1],)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            activation=self.activation,
            dropout=self.dropout,
            batch_norm=self.batch_norm,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
