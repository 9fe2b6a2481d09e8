"""PEPNet's PPNet: per-layer, per-task gates on the towers from personalised priors."""

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.core.validation import check_positive_int, check_units
from keras_mdr.layers.personalization.gate_nu import GateNU


@km_export("keras_mdr.layers.ParameterPersonalizationGates")
class ParameterPersonalizationGates(keras.layers.Layer):
    """`delta_l = GateNU_l([priors ; stop_gradient(H_0)])`, split into one gate per task.

    PPNet personalises the task towers' parameters per row: for each tower
    layer `l` a `GateNU` reads the personalised priors (user, item, author
    id embeddings) and the towers' input `H_0` behind a stop-gradient, and
    emits `T * width_l` factors, one `width_l` gate per task. A tower then
    computes `H_{l+1} = f((delta_{l,t} * H_l) W_l + b_l)`: the gate rescales
    the input of each of its layers (pass the gates to
    `DomainTaskTowers(..., gates=...)`).

    Args:
        widths: the input width of each tower layer, the logit layer's
            included: `[in] + tower_units`.
        num_tasks: T.
        hidden_units: hidden width of every gate (`None`: its output width).
        gamma: the gates' scale.

    Call arguments:
        priors: `[B, P]`, the personalised priors.
        tower_inputs: `[B, F]`, `H_0` (only read behind a stop-gradient).

    Returns:
        a list with one `[B, T, widths[l]]` gate per tower layer.

    Example:
    >>> gates = ParameterPersonalizationGates([8, 4], num_tasks=2)(np.ones((3, 5)), np.ones((3, 8)))
    >>> [tuple(g.shape) for g in gates]
    [(3, 2, 8), (3, 2, 4)]

    Reference: Chang et al., "PEPNet: Parameter and Embedding Personalized
    Network for Infusing with Personalized Prior Information", KDD 2023.
    """

    def __init__(self, widths, num_tasks, hidden_units=None, gamma=2.0, **kwargs):
        super().__init__(**kwargs)
        self.widths = check_units("widths", widths)
        self.num_tasks = check_positive_int("num_tasks", num_tasks)
        self.hidden_units = hidden_units
        self.gamma = gamma
        self.gates = [
            GateNU(self.num_tasks * width, hidden_units, gamma, name=f"gate_{i}")
            for i, width in enumerate(self.widths)
        ]

    def build(self, priors_shape, tower_inputs_shape):
        shape = (None, priors_shape[-1] + tower_inputs_shape[-1])
        for gate in self.gates:
            gate.build(shape)

    def call(self, priors, tower_inputs):
        x = ops.concatenate([priors, ops.stop_gradient(tower_inputs)], axis=-1)
        return [ops.reshape(gate(x), (-1, self.num_tasks, width)) for gate, width in zip(self.gates, self.widths)]

    def compute_output_shape(self, priors_shape, tower_inputs_shape):
        return [(priors_shape[0], self.num_tasks, width) for width in self.widths]

    def get_config(self):
        config = super().get_config()
        config.update(
            widths=self.widths, num_tasks=self.num_tasks, hidden_units=self.hidden_units, gamma=self.gamma
        )
        return config
