"""SAR-Net's experts: scenario-shared ones and each scenario's own, mixed by a gate per (scenario, task)."""

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.core.mixing import mix
from keras_mdr.layers.core.validation import check_positive_int, check_rate, check_units
from keras_mdr.layers.experts.expert_bank import ExpertBank
from keras_mdr.layers.routing.domain_mlp import DomainMLP


@km_export("keras_mdr.layers.ScenarioExpertMixture")
class ScenarioExpertMixture(keras.layers.Layer):
    """`z_t = sum_j g_{d,t,j} f_j(x)` over S shared experts and the domain's P own experts.

        g_{d,t} = softmax(l_{d,t})              a learned gate per (domain, task), over S + P experts

    The shared experts run on every row (`ExpertBank`); each row runs only
    its own domain's P experts (a `DomainMLP` with `D * P` groups, group
    `d * P + p`), never the other domains'. The gate depends on the domain
    alone, so it is one small `[D, T, S + P]` table, looked up per row.

    Args:
        num_domains: D.
        num_tasks: T.
        num_shared_experts: S.
        num_specific_experts: P, experts per domain.
        units: widths of every expert's layers.
        activation: activation after every expert layer.
        dropout: dropout rate in the experts.

    Call arguments:
        inputs: `[B, F]`.
        domain_ids: `[B]` int.
        training: enables dropout.

    Returns:
        `[B, T, units[-1]]`.

    Example:
    >>> layer = ScenarioExpertMixture(3, 2, num_shared_experts=2, num_specific_experts=1, units=[4])
    >>> layer(np.ones((5, 6)), np.array([0, 2, 1, 2, 0])).shape
    (5, 2, 4)

    Reference: Shen et al., "SAR-Net: A Scenario-Aware Ranking Network for
    Personalized Fair Recommendation in Hundreds of Travel Scenarios",
    CIKM 2021.
    """

    def __init__(
        self,
        num_domains,
        num_tasks,
        num_shared_experts=4,
        num_specific_experts=1,
        units=(64,),
        activation="relu",
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_domains = check_positive_int("num_domains", num_domains)
        self.num_tasks = check_positive_int("num_tasks", num_tasks)
        self.num_shared_experts = check_positive_int("num_shared_experts", num_shared_experts)
        self.num_specific_experts = check_positive_int("num_specific_experts", num_specific_experts)
        self.units = check_units("units", units)
        self.activation = activation
        self.dropout = check_rate("dropout", dropout)
        self.shared_experts = ExpertBank(
            self.num_shared_experts, self.units, activation=activation, dropout=self.dropout, name="shared_experts"
        )
        self.specific_experts = DomainMLP(
            self.units, self.num_domains * self.num_specific_experts, activation=activation,
            output_activation=activation, dropout=self.dropout, name="specific_experts",
        )

    def build(self, inputs_shape, domain_ids_shape=None):
        self.shared_experts.build(inputs_shape)
        self.specific_experts.build(inputs_shape)
        num_experts = self.num_shared_experts + self.num_specific_experts
        self.gate_logits = self.add_weight(
            name="gate_logits", shape=(self.num_domains, self.num_tasks, num_experts), initializer="zeros"
        )

    def call(self, inputs, domain_ids, training=None):
        domain_ids = ops.cast(domain_ids, "int32")
        p = self.num_specific_experts
        shared = self.shared_experts(inputs, training=training)  # [B, S, h]
        # Row b * P + j is (row b, its domain's expert j): group d_b * P + j.
        groups = ops.reshape(ops.expand_dims(domain_ids, 1) * p + ops.arange(p, dtype="int32"), (-1,))
        specific = self.specific_experts(ops.repeat(inputs, p, axis=0), groups, training=training)
        specific = ops.reshape(specific, (-1, p, specific.shape[-1]))  # [B, P, h]
        experts = ops.concatenate([shared, specific], axis=1)
        gates = ops.take(ops.softmax(self.gate_logits, axis=-1), domain_ids, axis=0)  # [B, T, S + P]
        return mix(gates, experts)

    def compute_output_shape(self, inputs_shape, domain_ids_shape=None):
        return (inputs_shape[0], self.num_tasks, self.units[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            num_domains=self.num_domains,
            num_tasks=self.num_tasks,
            num_shared_experts=self.num_shared_experts,
            num_specific_experts=self.num_specific_experts,
            units=self.units,
            activation=self.activation,
            dropout=self.dropout,
        )
        return config
