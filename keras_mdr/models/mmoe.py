"""MMoE: shared experts mixed by a softmax gate per (domain, task)."""

from keras_mdr.api_export import km_export
from keras_mdr.features.preprocessing import DOMAIN_ID
from keras_mdr.layers.routing.domain_task_towers import DomainTaskTowers
from keras_mdr.layers.experts.expert_bank import ExpertBank
from keras_mdr.layers.experts.expert_gate import ExpertGate
from keras_mdr.layers.experts.expert_mixture import ExpertMixture
from keras_mdr.models.multi_domain_model import (
    MultiDomainModel,
    core_inputs,
    embed_features,
    prepare_specs,
)
from keras_mdr.models.registry import register_model


@register_model("mmoe")
@km_export("keras_mdr.models.MMoE")
class MMoE(MultiDomainModel):
    """`z_t = sum_e g_{d,t}(x)_e f_e(x)`, `g_{d,t} = softmax(W_{d,t} x)`; `logit_t = Tower_{d,t}(z_t)`.

    Multi-gate Mixture-of-Experts made multi-domain: E experts shared by all
    domains and tasks, a gate per (domain, task) (each row computes only its
    own domain's gates, routed by `ExpertGate`), and a tower per
    (domain, task) (`DomainTaskTowers`).

    Args:
        features, domain, tasks: specs (see `MultiDomainModel`).
        num_experts: E.
        expert_units: widths of each expert MLP.
        tower_units: hidden widths of each (domain, task) tower.
        dropout: dropout rate in the experts and the towers.
        domain_gates: a gate per (domain, task); `False`: a gate per task,
            shared by the domains (the original MMoE).
        **kwargs: `MultiDomainModel` arguments (`loss_reduction`, ...).

    Example:
    >>> model = keras_mdr.build_model("mmoe", features=features,
    ...     domain="domain", tasks=["click", "like"], data=train_df)

    Reference: Ma et al., "Modeling Task Relationships in Multi-task Learning
    with Multi-gate Mixture-of-Experts", KDD 2018.
    """

    def __init__(
        self,
        features,
        domain,
        tasks,
        num_experts=4,
        expert_units=(128, 64),
        tower_units=(64,),
        dropout=0.0,
        domain_gates=True,
        **kwargs,
    ):
        features, domain, tasks = prepare_specs(features, domain, tasks)
        inputs = core_inputs(features)
        domain_ids = inputs[DOMAIN_ID]
        x = embed_features(features, inputs)
        experts = ExpertBank(num_experts, list(expert_units), dropout=dropout, name="experts")(x)
        num_gate_domains = domain.num_domains if domain_gates else None
        gates = ExpertGate(num_experts, num_gates=len(tasks), num_domains=num_gate_domains, name="gates")
        gates = gates(x, domain_ids) if domain_gates else gates(x)
        mixture = ExpertMixture(name="mixture")(gates, experts)
        logits = DomainTaskTowers(
            list(tower_units), domain.num_domains, len(tasks), dropout=dropout, name="towers"
        )(mixture, domain_ids)
        hyper_parameters = dict(
            num_experts=num_experts,
            expert_units=list(expert_units),
            tower_units=list(tower_units),
            dropout=dropout,
            domain_gates=bool(domain_gates),
        )
        super().__init__(
            features, domain, tasks, inputs=inputs, logits=logits, hyper_parameters=hyper_parameters, **kwargs
        )
