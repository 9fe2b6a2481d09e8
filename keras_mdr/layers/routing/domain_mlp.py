"""An MLP with one set of weights per group, routed once for all its layers."""

import keras

from keras_mdr.api_export import km_export
from keras_mdr.layers.routing import grouped_dispatch
from keras_mdr.layers.core.validation import check_positive_int, check_rate, check_units


@km_export("keras_mdr.layers.DomainMLP")
class DomainMLP(keras.layers.Layer):
    """A per-group MLP (a tower per domain) evaluated by grouped matmuls.

    The rows are sorted into group tiles once; every layer then runs as one
    batched matmul on the tiles (see `grouped_dispatch`) and the rows are read
    back once at the end. Each row pays for exactly one group's tower.

    Args:
        units: widths of the layers, e.g. `[64, 32, 1]`.
        num_groups: number of towers G.
        activation: activation of every layer but the last.
        output_activation: activation of the last layer (`None`: linear).
        dropout: dropout rate after each hidden activation.
        tile_size: rows per tile.
        kernel_initializer: initializer of the `[G, in, out]` kernels.

    Call arguments:
        inputs: `[N, in]` float.
        group_ids: `[N]` int in `[0, num_groups)`.
        training: enables dropout.
        gates: optional multiplicative gates on each layer's input: a list
            with one `[N, width_l]` tensor per layer, `width_l` being layer
            `l`'s input width (PPNet's parameter personalisation,
            `h_l <- gate_l * h_l`).

    Returns:
        `[N, units[-1]]`.
    """

    def __init__(
        self,
        units,
        num_groups,
        activation="relu",
        output_activation=None,
        dropout=0.0,
        tile_size=64,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_units("units", units)
        self.num_groups = check_positive_int("num_groups", num_groups)
        self.activation = keras.activations.get(activation)
        self.output_activation = keras.activations.get(output_activation)
        self.dropout = check_rate("dropout", dropout)
        self.tile_size = check_positive_int("tile_size", tile_size)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.dropout_layer = keras.layers.Dropout(self.dropout) if self.dropout else None

    def build(self, inputs_shape, group_ids_shape=None):
        self.kernels, self.biases = [], []
        width = inputs_shape[-1]
        for i, units in enumerate(self.units):
            self.kernels.append(
                self.add_weight(
                    name=f"kernel_{i}",
                    shape=(self.num_groups, width, units),
                    initializer=self.kernel_initializer,
                )
            )
            self.biases.append(
                self.add_weight(name=f"bias_{i}", shape=(self.num_groups, units), initializer="zeros")
            )
            width = units

    def call(self, inputs, group_ids, training=None, gates=None):
        if gates is not None and len(gates) != len(self.units):
            raise ValueError(f"gates must hold one entry per layer ({len(self.units)}), got {len(gates)}")
        plan = grouped_dispatch.plan_groups(group_ids, self.num_groups, self.tile_size)
        tiles = grouped_dispatch.to_tiles(inputs, plan)
        last = len(self.units) - 1
        for i, (kernel, bias) in enumerate(zip(self.kernels, self.biases)):
            if gates is not None:
                tiles = tiles * grouped_dispatch.to_tiles(gates[i], plan)
            tiles = grouped_dispatch.grouped_matmul(tiles, kernel, plan, bias)
            if i < last:
                tiles = self.activation(tiles)
                if self.dropout_layer is not None:
                    tiles = self.dropout_layer(tiles, training=training)
        return self.output_activation(grouped_dispatch.from_tiles(tiles, plan))

    def compute_output_shape(self, inputs_shape, group_ids_shape=None, gates_shape=None):
        return tuple(inputs_shape[:-1]) + (self.units[-1],)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            num_groups=self.num_groups,
            activation=keras.activations.serialize(self.activation),
            output_activation=keras.activations.serialize(self.output_activation),
            dropout=self.dropout,
            tile_size=self.tile_size,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
