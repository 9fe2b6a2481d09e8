"""Houlsby's bottleneck adapter: a small residual MLP that starts as the identity."""

import keras

from keras_mdr.api_export import km_export
from keras_mdr.layers.core.validation import check_positive_int, check_rate


@km_export("keras_mdr.layers.BottleneckAdapter")
class BottleneckAdapter(keras.layers.Layer):
    """`y = x + W_u Drop(act(W_d x + b_d)) + b_u`: a residual bottleneck, the identity at init.

    The branch `Delta(x) = W_u Drop(act(W_d x + b_d)) + b_u` projects the
    `[..., d]` input down to `m` units and back; `W_u` and `b_u` start at zero,
    so the adapter is exactly the identity until it trains (while `W_d`
    starts random, so the gradient of `W_u` is not zero). Placed serially after
    a sub-layer of a Transformer (Houlsby: after attention and after the
    feed-forward block; Pfeiffer: after the feed-forward block only), see
    `TransformerBlock.with_adapters` and `add_houlsby_adapters`.

    Differs from the Adapter4Rec reference code: its adapter creates a dropout
    layer and never applies it; here dropout acts on the bottleneck
    activations in training. Its up-projection starts random (std 0.01), so
    inserting it moves the host's outputs; here it starts at zero.

    Args:
        bottleneck: m, the hidden width.
        activation: the bottleneck's activation.
        dropout: dropout rate on the bottleneck activations.
        kernel_initializer: initializer of the down-projection `W_d [d, m]`.

    Call arguments:
        inputs: `[..., d]`.
        training: enables dropout.

    Returns:
        `[..., d]`.

    Example:
    >>> adapter = BottleneckAdapter(bottleneck=4)
    >>> x = np.random.normal(size=(2, 5, 16)).astype("float32")
    >>> bool(np.allclose(adapter(x), x))     # the identity at init
    True

    Reference: Houlsby et al., "Parameter-Efficient Transfer Learning for
    NLP", ICML 2019; Fu, Yuan et al., "Exploring Adapter-based Transfer
    Learning for Recommender Systems", WSDM 2024.
    """

    def __init__(self, bottleneck, activation="relu", dropout=0.0, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.bottleneck = check_positive_int("bottleneck", bottleneck)
        self.activation = keras.activations.get(activation)
        self.dropout = check_rate("dropout", dropout)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.dropout_layer = keras.layers.Dropout(self.dropout, name="dropout")

    def projection(self, units, name, zero):
        """The layer projecting to `units`; `zero=True` for the up-projection, which starts at zero."""
        initializer = "zeros" if zero else self.kernel_initializer
        return keras.layers.Dense(units, kernel_initializer=initializer, name=name)

    def build(self, inputs_shape):
        inputs_shape = tuple(inputs_shape)
        self.down = self.projection(self.bottleneck, "down", zero=False)
        self.down.build(inputs_shape)
        self.up = self.projection(inputs_shape[-1], "up", zero=True)
        self.up.build(inputs_shape[:-1] + (self.bottleneck,))

    def delta(self, inputs, training=None):
        """The branch `Delta(x) = W_u Drop(act(W_d x + b_d)) + b_u`, `[..., d]`."""
        hidden = self.dropout_layer(self.activation(self.down(inputs)), training=training)
        return self.up(hidden)

    def call(self, inputs, training=None):
        return inputs + self.delta(inputs, training=training)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            bottleneck=self.bottleneck,
            activation=keras.activations.serialize(self.activation),
            dropout=self.dropout,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
