"""One tower per (domain, task), each row running only its domain's towers."""

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.routing.domain_mlp import DomainMLP
from keras_mdr.layers.core.validation import check_positive_int, check_units


@km_export("keras_mdr.layers.DomainTaskTowers")
class DomainTaskTowers(keras.layers.Layer):
    """Logits from a tower per (domain, task) pair.

    `logit[b, t] = Tower_{d_b, t}(inputs[b, t])`. The `B x T` (row, task)
    pairs go through one `DomainMLP` with `D * T` groups, so each pair pays
    for one tower, never for all D. With `num_domains=1` and no
    `domain_ids`, the towers are per task and shared by every domain.

    Args:
        units: hidden widths of each tower; a final 1-unit linear layer is
            added (no activation on the logit).
        num_domains: D.
        num_tasks: T.
        activation, dropout, tile_size: as for `DomainMLP`.

    Call arguments:
        inputs: `[B, T, F]` (a task-specific input per task) or `[B, F]`
            (the same input for every task).
        domain_ids: `[B]` int; may be omitted when `num_domains` is 1.
        gates: optional gates on each tower layer's input (PPNet): a list
            with one `[B, T, width_l]` tensor per layer (`len(units) + 1`
            of them, the logit layer's input included); see `DomainMLP`.

    Returns:
        logits `[B, T]`.
    """

    def __init__(
        self,
        units,
        num_domains,
        num_tasks,
        activation="relu",
        dropout=0.0,
        tile_size=64,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_units("units", units, allow_empty=True)
        self.num_domains = check_positive_int("num_domains", num_domains)
        self.num_tasks = check_positive_int("num_tasks", num_tasks)
        self.activation = activation
        self.dropout = dropout
        self.tile_size = tile_size
        self.towers = DomainMLP(
            self.units + [1],
            num_groups=self.num_domains * self.num_tasks,
            activation=activation,
            dropout=dropout,
            tile_size=tile_size,
            name="towers",
        )

    def build(self, inputs_shape, domain_ids_shape=None):
        self.towers.build((None, inputs_shape[-1]))

    def call(self, inputs, domain_ids=None, training=None, gates=None):
        if len(inputs.shape) == 2:
            inputs = ops.repeat(ops.expand_dims(inputs, 1), self.num_tasks, axis=1)
        width = inputs.shape[-1]
        tasks = ops.arange(self.num_tasks, dtype="int32")
        if domain_ids is None:
            if self.num_domains != 1:
                raise ValueError(f"{self.name}: domain_ids are needed with num_domains={self.num_domains}")
            groups = ops.zeros_like(inputs[:, :, 0], dtype="int32") + tasks
        else:
            # Row b * T + t is (row b, task t); its tower is group d_b * T + t.
            groups = ops.expand_dims(ops.cast(domain_ids, "int32"), 1) * self.num_tasks + tasks
        if gates is not None:
            gates = [ops.reshape(gate, (-1, gate.shape[-1])) for gate in gates]
        logits = self.towers(
            ops.reshape(inputs, (-1, width)), ops.reshape(groups, (-1,)), training=training, gates=gates
        )
        return ops.reshape(logits, (-1, self.num_tasks))

    def compute_output_shape(self, inputs_shape, domain_ids_shape=None, gates_shape=None):
        return (inputs_shape[0], self.num_tasks)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            num_domains=self.num_domains,
            num_tasks=self.num_tasks,
            activation=self.activation,
            dropout=self.dropout,
            tile_size=self.tile_size,
        )
        return config
