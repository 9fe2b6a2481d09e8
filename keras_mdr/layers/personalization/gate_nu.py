"""PEPNet's Gate Neural Unit: a two-layer gate scaled to [0, gamma]."""

import keras

from keras_mdr.api_export import km_export
from keras_mdr.layers.core.validation import check_positive, check_positive_int


@km_export("keras_mdr.layers.GateNU")
class GateNU(keras.layers.Layer):
    """`delta = gamma * sigmoid(W2 relu(W1 x + b1) + b2)`, in `[0, gamma]`.

    The gate of PEPNet's EPNet and PPNet (after LHUC): multiplying a vector
    by `delta` rescales each of its elements by a personalised factor, and
    with `gamma = 2` a gate that starts near `sigmoid(0) = 0.5` leaves its
    target unchanged (`delta = 1`) and can amplify as well as damp.

    Args:
        units: width of `delta`.
        hidden_units: width of the ReLU layer (`None`: `units`, as in PEPNet).
        gamma: the scale (2 in PEPNet).
        kernel_initializer: initializer of both kernels.

    Call arguments:
        inputs: `[..., in]`.

    Returns:
        `[..., units]`, each value in `[0, gamma]`.

    Example:
    >>> GateNU(4)(np.ones((2, 6))).shape
    (2, 4)

    Reference: Chang et al., "PEPNet: Parameter and Embedding Personalized
    Network for Infusing with Personalized Prior Information", KDD 2023.
    """

    def __init__(self, units, hidden_units=None, gamma=2.0, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.hidden_units = None if hidden_units is None else check_positive_int("hidden_units", hidden_units)
        self.gamma = check_positive("gamma", gamma)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.hidden = keras.layers.Dense(
            self.hidden_units or self.units, activation="relu", kernel_initializer=self.kernel_initializer,
            name="hidden",
        )
        self.gate = keras.layers.Dense(
            self.units, activation="sigmoid", kernel_initializer=self.kernel_initializer, name="gate"
        )

    def build(self, inputs_shape):
        self.hidden.build(inputs_shape)
        self.gate.build(self.hidden.compute_output_shape(inputs_shape))

    def call(self, inputs):
        return self.gamma * self.gate(self.hidden(inputs))

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            hidden_units=self.hidden_units,
            gamma=self.gamma,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
