"""CESAA: conditional expert selection with adaptive aggregation, then a tower per (domain, task)."""

from keras_mdr.api_export import km_export
from keras_mdr.features.preprocessing import DOMAIN_ID
from keras_mdr.layers.experts.conditional_experts import ConditionalExperts
from keras_mdr.layers.routing.domain_task_towers import DomainTaskTowers
from keras_mdr.models.multi_domain_model import (
    MultiDomainModel,
    core_inputs,
    embed_features,
    prepare_specs,
)
from keras_mdr.models.registry import register_model


@register_model("cesaa")
@km_export("keras_mdr.models.CESAA")
class CESAA(MultiDomainModel):
    """`h = mean_s Shared_s(x) + sum_{j in topK} g_j Spec_j(x)`; `logit_t = Tower_{d, t}(h)`.

    The instance embedding `x` goes through a `ConditionalExperts` layer: S
    domain-shared experts always on, and K of N selectable experts chosen per
    row by a noisy top-K gate on `[x ; e_d]` (a learned domain embedding), of
    which only the chosen ones are computed. Adaptive Expert Aggregation adds
    `-mutual_information_weight * I(D; J)` (domain vs. expert choice) and an
    optional Switch load-balancing loss in training. One shared expert layer
    feeds every task; each (domain, task) has its own tower
    (`DomainTaskTowers`). See `keras_mdr.training.expert_utilization` for the
    per-domain routing table.

    No public reference code exists; the choices made here (noise, the pair
    order and no renormalisation after a capacity drop, drop-free inference,
    `pi` as the full softmax, the loss defaults) are documented in
    `ConditionalExperts`, `NoisyTopKGate`, `expert_dispatch` and
    `routing_losses`.

    Args:
        features, domain, tasks: specs (see `MultiDomainModel`).
        num_experts: N, the selectable experts.
        top_k: K, experts chosen per row.
        num_shared_experts: S, always-on experts.
        expert_units: widths of every expert's layers.
        domain_embedding_dim: width of the gate's domain embedding.
        noisy_gating: trainable gate noise in training.
        capacity_factor: capacity factor of the training dispatch.
        dispatch: training dispatch, `"capacity"` or `"grouped"` (drop-free);
            inference is always drop-free.
        expert_tile_size: rows per tile of the grouped dispatch.
        mutual_information_weight: weight of `-I(D; J)` (0: off).
        load_balance_weight: weight of the load-balancing loss (0: off).
        tower_units: hidden widths of each (domain, task) tower.
        dropout: dropout rate in the towers.
        seed: seed of the gate noise.
        **kwargs: `MultiDomainModel` arguments (`loss_reduction`, ...).

    Example:
    >>> model = keras_mdr.build_model("cesaa", features=features,
    ...     domain="domain", tasks=["click"], data=train_df, num_experts=16)

    Reference: Dong et al., "Adaptive Conditional Expert Selection Network for
    Multi-domain Recommendation", arXiv:2411.06826, 2024.
    """

    def __init__(
        self,
        features,
        domain,
        tasks,
        num_experts=8,
        top_k=2,
        num_shared_experts=1,
        expert_units=(128, 64),
        domain_embedding_dim=8,
        noisy_gating=True,
        capacity_factor=1.25,
        dispatch="capacity",
        expert_tile_size=64,
        mutual_information_weight=0.1,
        load_balance_weight=0.01,
        tower_units=(64,),
        dropout=0.0,
        seed=None,
        **kwargs,
    ):
        features, domain, tasks = prepare_specs(features, domain, tasks)
        inputs = core_inputs(features)
        x = embed_features(features, inputs)
        h = ConditionalExperts(
            list(expert_units),
            num_experts=num_experts,
            top_k=top_k,
            num_domains=domain.num_domains,
            num_shared_experts=num_shared_experts,
            domain_embedding_dim=domain_embedding_dim,
            noisy_gating=noisy_gating,
            capacity_factor=capacity_factor,
            dispatch=dispatch,
            tile_size=expert_tile_size,
            mutual_information_weight=mutual_information_weight,
            load_balance_weight=load_balance_weight,
            seed=seed,
            name="conditional_experts",
        )(x, inputs[DOMAIN_ID])
        logits = DomainTaskTowers(
            list(tower_units), domain.num_domains, len(tasks), dropout=dropout, name="towers"
        )(h, inputs[DOMAIN_ID])
        hyper_parameters = dict(
            num_experts=num_experts,
            top_k=top_k,
            num_shared_experts=num_shared_experts,
            expert_units=list(expert_units),
            domain_embedding_dim=domain_embedding_dim,
            noisy_gating=noisy_gating,
            capacity_factor=capacity_factor,
            dispatch=dispatch,
            expert_tile_size=expert_tile_size,
            mutual_information_weight=mutual_information_weight,
            load_balance_weight=load_balance_weight,
            tower_units=list(tower_units),
            dropout=dropout,
            seed=seed,
        )
        super().__init__(
            features, domain, tasks, inputs=inputs, logits=logits, hyper_parameters=hyper_parameters, **kwargs
        )
