"""SAR-Net: scenario-aware attention over behaviours, a scenario-specific transform, gated shared and own experts."""

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.features.preprocessing import DOMAIN_ID
from keras_mdr.layers.core.validation import check_positive_int, check_rate, check_units
from keras_mdr.layers.embedding.feature_embedding import concat_columns
from keras_mdr.layers.experts.scenario_expert_mixture import ScenarioExpertMixture
from keras_mdr.layers.routing.domain_dense import DomainDense
from keras_mdr.layers.routing.domain_task_towers import DomainTaskTowers
from keras_mdr.layers.sequence.scenario_behavior_attention import ScenarioBehaviorAttention
from keras_mdr.models.multi_domain_model import (
    MultiDomainModel,
    core_inputs,
    embed_features,
    prepare_specs,
)
from keras_mdr.models.registry import register_model


def _behavior_spec(features, behavior_feature, target_feature):
    if (behavior_feature is None) != (target_feature is None):
        raise ValueError(
            "SAR-Net's behaviour attention needs both behavior_feature and target_feature (or neither), "
            f"got behavior_feature={behavior_feature!r}, target_feature={target_feature!r}"
        )
    if behavior_feature is None:
        return None
    specs = {f.name: f for f in features}
    spec = specs.get(behavior_feature)
    if spec is None or spec.kind != "multi_categorical":
        raise ValueError(
            f"behavior_feature must name a SequenceFeature (the user's behaviour ids), got {behavior_feature!r}; "
            f"the sequence features are {[f.name for f in features if f.kind == 'multi_categorical']}"
        )
    if target_feature not in specs or specs[target_feature].kind != "categorical":
        raise ValueError(f"target_feature must name a categorical feature (the target item), got {target_feature!r}")
    return spec


@register_model("sarnet")
@km_export("keras_mdr.models.SARNet")
class SARNet(MultiDomainModel):
    """Scenario-Aware Ranking Network, with one tower per task.

        u       = [u_s ; u_i] = ScenarioBehaviorAttention(behaviours; scenario, target item)
        x'      = W_d [x ; u] + b_d                   scenario-specific linear transformation
        z_t     = sum_j g_{d,t,j} f_j(x')              S shared experts + the scenario's P own experts
        logit_t = Tower_t(z_t)

    With `behavior_feature` (a `SequenceFeature` of the user's behaviour
    ids, e.g. the items clicked before) and `target_feature` (the target
    item), two attentions pool the behaviours' embeddings: one queried by
    the scenario (a learned query per domain) and one by the target item's
    embedding (`ScenarioBehaviorAttention`), each within the row. The
    behaviours get their own embedding table and are not among the pooled
    features. The encoded row `x` (every other feature's embedding) and the
    two interests go through a linear transformation per scenario
    (`DomainDense`, routed), then scenario-shared experts and the row's
    scenario's own experts, mixed per task by a gate that depends on the
    scenario (`ScenarioExpertMixture`), and one tower per task.

    Without a behaviour sequence (`behavior_feature=None`, the default, as
    on data with no behaviour column) there is no attention and SAR-Net
    reduces to the scenario-specific linear transformation of the feature
    embeddings, the scenario-gated shared and scenario-specific experts and
    the task towers (the form of Scenario-Wise-Rec's SAR-Net, which has no
    attention at all and gates on the transformed embeddings instead of the
    scenario).

    The paper's debias experts reweight samples by a Fairness Coefficient
    (a measure of promotion interventions), which these data do not carry:
    the experts here are plain MLPs (pass per-row weights to `fit` as
    `sample_weight` to reweight).

    Args:
        features, domain, tasks: specs (see `MultiDomainModel`).
        behavior_feature: name of the behaviour `SequenceFeature`, or `None`.
        target_feature: name of the target item's categorical feature
            (with `behavior_feature`).
        attention_dim: width of the attentions' queries and keys.
        transform_units: output width of the scenario-specific
            transformation (`None`: its input width).
        num_shared_experts: S.
        num_specific_experts: P, experts per scenario.
        expert_units: widths of every expert.
        tower_units: hidden widths of each task's tower.
        dropout: dropout rate in the experts and the towers.
        **kwargs: `MultiDomainModel` arguments (`loss_reduction`, ...).

    Example:
    >>> model = keras_mdr.build_model("sarnet", features=features, domain="domain",
    ...     tasks=["click"], data=train_df, behavior_feature="history", target_feature="item_id")

    Reference: Shen et al., "SAR-Net: A Scenario-Aware Ranking Network for
    Personalized Fair Recommendation in Hundreds of Travel Scenarios",
    CIKM 2021.
    """

    def __init__(
        self,
        features,
        domain,
        tasks,
        behavior_feature=None,
        target_feature=None,
        attention_dim=16,
        transform_units=None,
        num_shared_experts=4,
        num_specific_experts=1,
        expert_units=(64,),
        tower_units=(32,),
        dropout=0.0,
        **kwargs,
    ):
        features, domain, tasks = prepare_specs(features, domain, tasks)
        behavior = _behavior_spec(features, behavior_feature, target_feature)
        if transform_units is not None:
            check_positive_int("transform_units", transform_units)
        expert_units = check_units("expert_units", expert_units)
        tower_units = check_units("tower_units", tower_units, allow_empty=True)
        dropout = check_rate("dropout", dropout)
        num_domains = domain.num_domains
        inputs = core_inputs(features)
        domain_ids = inputs[DOMAIN_ID]
        encoded = [f for f in features if behavior is None or f.name != behavior.name]
        x = embed_features(encoded, inputs)
        if behavior is not None:
            ids = inputs[behavior.name]
            behaviors = keras.layers.Embedding(
                behavior.num_rows, behavior.embedding_dim, name="behavior_embedding"
            )(ids)
            target = ops.take(x, concat_columns(encoded, [target_feature]), axis=1)
            interests = ScenarioBehaviorAttention(num_domains, attention_dim, name="behavior_attention")(
                behaviors, ops.greater(ids, 0), target, domain_ids
            )
            x = keras.layers.Concatenate(name="encoded")([x, interests])
        x = DomainDense(transform_units or x.shape[-1], num_domains, name="scenario_transform")(x, domain_ids)
        mixture = ScenarioExpertMixture(
            num_domains, len(tasks), num_shared_experts, num_specific_experts, expert_units,
            dropout=dropout, name="experts",
        )(x, domain_ids)
        logits = DomainTaskTowers(tower_units, 1, len(tasks), dropout=dropout, name="task_towers")(mixture)
        hyper_parameters = dict(
            behavior_feature=behavior_feature,
            target_feature=target_feature,
            attention_dim=attention_dim,
            transform_units=transform_units,
            num_shared_experts=num_shared_experts,
            num_specific_experts=num_specific_experts,
            expert_units=expert_units,
            tower_units=tower_units,
            dropout=dropout,
        )
        super().__init__(
            features, domain, tasks, inputs=inputs, logits=logits, hyper_parameters=hyper_parameters, **kwargs
        )
