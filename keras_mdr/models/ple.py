"""PLE: stacked levels of task-specific and shared experts (CGC), then towers."""

from keras_mdr.api_export import km_export
from keras_mdr.features.preprocessing import DOMAIN_ID
from keras_mdr.layers.experts.customized_gate_control import CustomizedGateControl
from keras_mdr.layers.routing.domain_task_towers import DomainTaskTowers
from keras_mdr.layers.core.validation import check_positive_int
from keras_mdr.models.multi_domain_model import (
    MultiDomainModel,
    core_inputs,
    embed_features,
    prepare_specs,
)
from keras_mdr.models.registry import register_model


@register_model("ple")
@km_export("keras_mdr.models.PLE")
class PLE(MultiDomainModel):
    """Progressive Layered Extraction, with gates and towers per (domain, task).

    Each level (`CustomizedGateControl`) has S experts per task and K shared
    experts; task `t`'s gate mixes its own and the shared experts, and every
    level but the last also has a shared gate over all experts. Level `l + 1`'s
    task-`t` experts read level `l`'s task-`t` output and its shared experts
    read the shared output. A tower per (domain, task) (`DomainTaskTowers`)
    reads the last level's task outputs. `num_levels=1` is CGC.

    Args:
        features, domain, tasks: specs (see `MultiDomainModel`).
        num_levels: extraction levels.
        num_specific_experts: S, experts per task in each level.
        num_shared_experts: K, shared experts in each level.
        expert_units: widths of each expert MLP.
        tower_units: hidden widths of each (domain, task) tower.
        dropout: dropout rate in the experts and the towers.
        domain_gates: gates per (domain, task) (and the shared gates per
            domain), each row computing only its own domain's; `False`: gates
            per task, shared by the domains (the original PLE).
        **kwargs: `MultiDomainModel` arguments (`loss_reduction`, ...).

    Example:
    >>> model = keras_mdr.build_model("ple", features=features,
    ...     domain="domain", tasks=["click", "like"], data=train_df)

    Reference: Tang et al., "Progressive Layered Extraction (PLE): A Novel
    Multi-Task Learning (MTL) Model for Personalized Recommendations",
    RecSys 2020.
    """

    def __init__(
        self,
        features,
        domain,
        tasks,
        num_levels=2,
        num_specific_experts=1,
        num_shared_experts=1,
        expert_units=(128, 64),
        tower_units=(64,),
        dropout=0.0,
        domain_gates=True,
        **kwargs,
    ):
        features, domain, tasks = prepare_specs(features, domain, tasks)
        num_levels = check_positive_int("num_levels", num_levels)
        inputs = core_inputs(features)
        domain_ids = inputs[DOMAIN_ID]
        h = embed_features(features, inputs)
        for level in range(num_levels):
            h = CustomizedGateControl(
                len(tasks),
                num_specific_experts,
                num_shared_experts,
                list(expert_units),
                num_domains=domain.num_domains if domain_gates else None,
                shared_output=level < num_levels - 1,
                dropout=dropout,
                name=f"level_{level}",
            )(h, domain_ids)
        logits = DomainTaskTowers(
            list(tower_units), domain.num_domains, len(tasks), dropout=dropout, name="towers"
        )(h, domain_ids)
        hyper_parameters = dict(
            num_levels=num_levels,
            num_specific_experts=num_specific_experts,
            num_shared_experts=num_shared_experts,
            expert_units=list(expert_units),
            tower_units=list(tower_units),
            dropout=dropout,
            domain_gates=bool(domain_gates),
        )
        super().__init__(
            features, domain, tasks, inputs=inputs, logits=logits, hyper_parameters=hyper_parameters, **kwargs
        )
