"""Softmax gates over experts, optionally with one gate per domain."""

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.routing.domain_dense import DomainDense
from keras_mdr.layers.core.validation import check_positive_int


@km_export("keras_mdr.layers.ExpertGate")
class ExpertGate(keras.layers.Layer):
    """`g = softmax(x W_g)`: mixing weights over E experts for each of G gates.

    With `num_domains`, every domain has its own gate weights (routed by
    `DomainDense`, never computed for other domains).

    Args:
        num_experts: E.
        num_gates: G, e.g. one per task.
        num_domains: D for per-domain gates, or `None` for shared gates.

    Call arguments:
        inputs: `[B, in]`.
        domain_ids: `[B]` int, required when `num_domains` is set.

    Returns:
        `[B, G, E]`, each `[b, g, :]` summing to 1.
    """

    def __init__(self, num_experts, num_gates=1, num_domains=None, **kwargs):
        super().__init__(**kwargs)
        self.num_experts = check_positive_int("num_experts", num_experts)
        self.num_gates = check_positive_int("num_gates", num_gates)
        self.num_domains = None if num_domains is None else check_positive_int("num_domains", num_domains)
        units = self.num_gates * self.num_experts
        if self.num_domains is None:
            self.projection = keras.layers.Dense(units, name="projection")
        else:
            self.projection = DomainDense(units, self.num_domains, name="projection")

    def build(self, inputs_shape, domain_ids_shape=None):
        if self.num_domains is None:
            self.projection.build(inputs_shape)
        else:
            self.projection.build(inputs_shape, domain_ids_shape)

    def call(self, inputs, domain_ids=None):
        if self.num_domains is None:
            logits = self.projection(inputs)
        else:
            if domain_ids is None:
                raise ValueError("ExpertGate with num_domains needs domain_ids")
            logits = self.projection(inputs, domain_ids)
        logits = ops.reshape(logits, (-1, self.num_gates, self.num_experts))
        return ops.softmax(logits, axis=-1)

    def compute_output_shape(self, inputs_shape, domain_ids_shape=None):
        return (inputs_shape[0], self.num_gates, self.num_experts)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_experts=self.num_experts, num_gates=self.num_gates, num_domains=self.num_domains
        )
        return config
