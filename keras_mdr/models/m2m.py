"""M2M: a field Transformer, experts, and meta attention and meta towers generated from the scenario."""

import keras

from keras_mdr.api_export import km_export
from keras_mdr.features.preprocessing import DOMAIN_ID
from keras_mdr.layers.core.validation import check_non_negative_int, check_positive_int, check_rate, check_units
from keras_mdr.layers.experts.expert_bank import ExpertBank
from keras_mdr.layers.meta.scenario_meta_towers import ScenarioMetaTowers
from keras_mdr.layers.routing.domain_task_towers import DomainTaskTowers
from keras_mdr.layers.sequence.transformer_block import TransformerBlock
from keras_mdr.models.multi_domain_model import (
    MultiDomainModel,
    core_inputs,
    embed_features,
    prepare_specs,
)
from keras_mdr.models.registry import register_model


@register_model("m2m")
@km_export("keras_mdr.models.M2M")
class M2M(MultiDomainModel):
    """Multi-scenario multi-task meta learning: meta units whose weights the scenario generates.

        fields   = Transformer(field embeddings)          the row's fields as tokens
        E_i      = Expert_i(flatten(fields))               i = 1..E
        L_t      = ScenarioMetaTowers(E, d)                meta attention + meta towers, per task
        logit_t  = w_t . L_t + b_t

    The backbone embeds every feature as one token (`output_mode="fields"`;
    numeric features as `x * v_f`) and runs Transformer blocks over the row's
    tokens (`TransformerBlock`: attention within a row, never across the
    batch), then E expert MLPs read the flattened tokens. The meta learning
    mechanism (`ScenarioMetaTowers`) builds the scenario representation from
    a learned domain embedding and the task representations from learned task
    embeddings; its meta units' kernels and biases are linear functions of
    the scenario representation (`W = reshape(S V + v)`), generated for the D
    domains once per batch and routed per row. A meta attention unit scores
    `[E_i ; T_t]` to mix the experts per task, and residual meta tower layers
    refine the mixture. A linear output per task gives the logits (the
    paper's Poisson heads are for counts; these are click-style logits).

    Scenario-Wise-Rec's M2M feeds the whole batch to `nn.Transformer` as one
    unbatched sequence, so its attention runs across the rows of the batch
    (a row's prediction depends on the others); it also generates the meta
    weights once per row, from the row's domain embedding, and passes them
    through a LeakyReLU. Here the Transformer attends over a row's fields,
    the meta weights are generated once per domain, linearly as in the
    paper.

    Args:
        features, domain, tasks: specs (see `MultiDomainModel`); all
            categorical features need one `embedding_dim` (one token width).
        num_experts: E.
        expert_units: widths of each expert (the last is the width h of the
            meta attention and towers).
        num_transformer_layers: Transformer blocks over the field tokens
            (0: none).
        num_heads: attention heads (must divide the embedding width).
        transformer_intermediate_dim: width of the blocks' feed-forward
            layer (`None`: 4 times the embedding width).
        scenario_units: widths of the scenario representation's MLP.
        attention_units: widths of the meta attention unit.
        num_tower_layers: residual meta tower layers.
        domain_embedding_dim: width of the domain embedding.
        task_embedding_dim: width of the task embeddings.
        activation: activation of the experts, meta units and MLPs.
        dropout: dropout rate in the Transformer and the experts.
        **kwargs: `MultiDomainModel` arguments (`loss_reduction`, ...).

    Example:
    >>> model = keras_mdr.build_model("m2m", features=features, domain="domain",
    ...     tasks=["click", "like"], data=train_df, num_experts=4)

    Reference: Zhang et al., "Leaving No One Behind: A Multi-Scenario
    Multi-Task Meta Learning Approach for Advertiser Modeling", WSDM 2022.
    """

    def __init__(
        self,
        features,
        domain,
        tasks,
        num_experts=4,
        expert_units=(64,),
        num_transformer_layers=1,
        num_heads=2,
        transformer_intermediate_dim=None,
        scenario_units=(16,),
        attention_units=(32,),
        num_tower_layers=2,
        domain_embedding_dim=16,
        task_embedding_dim=16,
        activation="relu",
        dropout=0.0,
        **kwargs,
    ):
        features, domain, tasks = prepare_specs(features, domain, tasks)
        num_experts = check_positive_int("num_experts", num_experts)
        expert_units = check_units("expert_units", expert_units)
        check_non_negative_int("num_transformer_layers", num_transformer_layers)
        dropout = check_rate("dropout", dropout)
        inputs = core_inputs(features)
        domain_ids = inputs[DOMAIN_ID]
        fields = embed_features(features, inputs, output_mode="fields")
        for i in range(num_transformer_layers):
            fields = TransformerBlock(
                num_heads, intermediate_dim=transformer_intermediate_dim, dropout=dropout,
                name=f"field_transformer_{i}",
            )(fields)
        x = keras.layers.Flatten(name="flatten_fields")(fields)
        experts = ExpertBank(num_experts, expert_units, activation=activation, dropout=dropout, name="experts")(x)
        towers = ScenarioMetaTowers(
            domain.num_domains,
            len(tasks),
            scenario_units=scenario_units,
            attention_units=attention_units,
            num_tower_layers=num_tower_layers,
            domain_embedding_dim=domain_embedding_dim,
            task_embedding_dim=task_embedding_dim,
            activation=activation,
            name="meta",
        )(experts, domain_ids)
        # A linear output per task (towers with no hidden layer, shared by the domains).
        logits = DomainTaskTowers([], 1, len(tasks), name="task_outputs")(towers)
        hyper_parameters = dict(
            num_experts=num_experts,
            expert_units=expert_units,
            num_transformer_layers=num_transformer_layers,
            num_heads=num_heads,
            transformer_intermediate_dim=transformer_intermediate_dim,
            scenario_units=list(scenario_units),
            attention_units=list(attention_units),
            num_tower_layers=num_tower_layers,
            domain_embedding_dim=domain_embedding_dim,
            task_embedding_dim=task_embedding_dim,
            activation=activation,
            dropout=dropout,
        )
        super().__init__(
            features, domain, tasks, inputs=inputs, logits=logits, hyper_parameters=hyper_parameters, **kwargs
        )
