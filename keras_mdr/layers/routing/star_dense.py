"""STAR's star-topology dense layer: shared weights times per-domain weights."""

import keras

from keras_mdr.api_export import km_export
from keras_mdr.layers.routing.domain_dense import DomainDense


@km_export("keras_mdr.layers.StarDense")
class StarDense(DomainDense):
    """`y_i = act(x_i (W_shared * W[d_i]) + b_shared + b[d_i])` (`*` elementwise).

    The star topology of STAR: every domain's effective weight is the
    elementwise product of a domain-shared matrix and its own matrix. The D
    effective matrices `[D, in, units]` are built once per call (D small
    products) and rows are then routed through the grouped matmul of
    `DomainDense`, so each row costs one dense layer: no per-row weight
    matrix. With the domain kernels initialised to ones (the paper's choice),
    every domain starts from the shared layer.

    Args:
        units: output width.
        num_domains: D.
        activation: activation name or callable (`None` for a logit layer).
        use_bias: add `b_shared + b[d]`.
        tile_size: rows per tile of the grouped matmul.
        kernel_initializer: initializer of the domain kernels `W [D, in,
            units]`.
        shared_kernel_initializer: initializer of `W_shared [in, units]`.
        bias_initializer: initializer of the domain biases `b [D, units]`.
        shared_bias_initializer: initializer of `b_shared [units]`.

    Call arguments:
        inputs: `[N, in]` float.
        group_ids: `[N]` int domain ids in `[0, num_domains)`.

    Returns:
        `[N, units]`.

    Example:
    >>> layer = StarDense(4, num_domains=3)
    >>> layer(np.ones((5, 8)), np.array([0, 2, 1, 2, 0])).shape
    (5, 4)

    Reference: Sheng et al., "One Model to Serve All: Star Topology Adaptive
    Recommender for Multi-Domain CTR Prediction", CIKM 2021.
    """

    def __init__(
        self,
        units,
        num_domains,
        activation=None,
        use_bias=True,
        tile_size=64,
        kernel_initializer="ones",
        shared_kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        shared_bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(
            units,
            num_domains,
            activation=activation,
            use_bias=use_bias,
            tile_size=tile_size,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            **kwargs,
        )
        self.shared_kernel_initializer = keras.initializers.get(shared_kernel_initializer)
        self.shared_bias_initializer = keras.initializers.get(shared_bias_initializer)

    def build(self, inputs_shape, group_ids_shape=None):
        super().build(inputs_shape, group_ids_shape)
        self.shared_kernel = self.add_weight(
            name="shared_kernel",
            shape=(inputs_shape[-1], self.units),
            initializer=self.shared_kernel_initializer,
        )
        self.shared_bias = None
        if self.use_bias:
            self.shared_bias = self.add_weight(
                name="shared_bias", shape=(self.units,), initializer=self.shared_bias_initializer
            )

    def group_kernels(self):
        """The D effective kernels `W_shared * W[d]` and biases `b_shared + b[d]`."""
        kernels = self.kernel * self.shared_kernel
        biases = None if self.bias is None else self.bias + self.shared_bias
        return kernels, biases

    def get_config(self):
        config = super().get_config()
        config["num_domains"] = config.pop("num_groups")
        config.update(
            shared_kernel_initializer=keras.initializers.serialize(self.shared_kernel_initializer),
            shared_bias_initializer=keras.initializers.serialize(self.shared_bias_initializer),
        )
        return config
