"""A dense layer with one weight matrix per domain, computed only for its rows."""

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.routing import grouped_dispatch
from keras_mdr.layers.core.validation import check_positive_int


@km_export("keras_mdr.layers.DomainDense")
class DomainDense(keras.layers.Layer):
    """`y_i = act(x_i W[g_i] + b[g_i])`: a dense layer whose weights depend on the row's group.

    Rows are routed through a grouped matmul (see `grouped_dispatch`), so each
    row costs one group's FLOPs: no per-row weight matrix and no run-all-and-
    mask. Groups are usually domains, or (domain, task) pairs.

    Args:
        units: output width.
        num_groups: number of groups (domains) G.
        activation: activation name or callable.
        use_bias: add a per-group bias.
        tile_size: rows per tile of the grouped matmul.
        kernel_initializer, bias_initializer: initializers for `W [G, in,
            units]` and `b [G, units]`.

    Call arguments:
        inputs: `[N, in]` float.
        group_ids: `[N]` int, values in `[0, num_groups)`.

    Returns:
        `[N, units]`.

    Example:
    >>> layer = DomainDense(4, num_groups=3)
    >>> layer(np.ones((5, 8)), np.array([0, 2, 1, 2, 0])).shape
    (5, 4)
    """

    def __init__(
        self,
        units,
        num_groups,
        activation=None,
        use_bias=True,
        tile_size=64,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.num_groups = check_positive_int("num_groups", num_groups)
        self.tile_size = check_positive_int("tile_size", tile_size)
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, inputs_shape, group_ids_shape=None):
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.num_groups, inputs_shape[-1], self.units),
            initializer=self.kernel_initializer,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.num_groups, self.units), initializer=self.bias_initializer
            )

    def group_kernels(self):
        """The `[G, in, units]` kernels and `[G, units]` biases to route with."""
        return self.kernel, self.bias

    def call(self, inputs, group_ids):
        plan = grouped_dispatch.plan_groups(group_ids, self.num_groups, self.tile_size)
        kernels, biases = self.group_kernels()
        tiles = grouped_dispatch.to_tiles(inputs, plan)
        tiles = grouped_dispatch.grouped_matmul(tiles, kernels, plan, biases)
        return self.activation(grouped_dispatch.from_tiles(tiles, plan))

    def compute_output_shape(self, inputs_shape, group_ids_shape=None):
        return tuple(inputs_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            num_groups=self.num_groups,
            activation=keras.activations.serialize(self.activation),
            use_bias=self.use_bias,
            tile_size=self.tile_size,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config
