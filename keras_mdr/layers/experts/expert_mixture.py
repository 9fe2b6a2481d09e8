"""The gated sum of expert outputs."""

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.core.mixing import mix


@km_export("keras_mdr.layers.ExpertMixture")
class ExpertMixture(keras.layers.Layer):
    """`z[b, g] = sum_e gates[b, g, e] * experts[b, (g,) e]`: one mixture per gate.

    The combination step of MMoE and PLE: each gate's softmax weights mix the
    expert outputs. The experts are either shared by all gates (`[B, E, H]`,
    MMoE) or chosen per gate (`[B, G, E, H]`, PLE's task gates, each over its
    own and the shared experts).

    Call arguments:
        gates: `[B, G, E]` mixing weights (e.g. from `ExpertGate`).
        experts: `[B, E, H]` or `[B, G, E, H]` expert outputs (e.g. from
            `ExpertBank`).

    Returns:
        `[B, G, H]`.

    Reference: Ma et al., "Modeling Task Relationships in Multi-task Learning
    with Multi-gate Mixture-of-Experts", KDD 2018.
    """

    def call(self, gates, experts):
        return mix(ops.cast(gates, experts.dtype), experts)

    def compute_output_shape(self, gates_shape, experts_shape):
        return (gates_shape[0], gates_shape[1], experts_shape[-1])
