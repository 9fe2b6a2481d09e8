"""Shared-Bottom: one shared MLP, then a tower per (domain, task)."""

from keras_mdr.api_export import km_export
from keras_mdr.features.preprocessing import DOMAIN_ID
from keras_mdr.layers.routing.domain_task_towers import DomainTaskTowers
from keras_mdr.layers.core.mlp_block import MLPBlock
from keras_mdr.models.multi_domain_model import (
    MultiDomainModel,
    core_inputs,
    embed_features,
    prepare_specs,
)
from keras_mdr.models.registry import register_model


@register_model("shared_bottom")
@km_export("keras_mdr.models.SharedBottom")
class SharedBottom(MultiDomainModel):
    """`h = MLP(x)`; `logit_t = Tower_{d, t}(h)`.

    The classic multi-task baseline, made multi-domain by routing each row to
    its own domain's tower per task (`DomainTaskTowers`).

    Args:
        features, domain, tasks: specs (see `MultiDomainModel`).
        bottom_units: widths of the shared MLP.
        tower_units: hidden widths of each (domain, task) tower.
        dropout: dropout rate in the bottom and the towers.
        batch_norm: batch normalisation in the bottom.
        **kwargs: `MultiDomainModel` arguments (`loss_reduction`, ...).

    Example:
    >>> model = keras_mdr.build_model("shared_bottom", features=features,
    ...     domain="domain", tasks=["click"], data=train_df)
    """

    def __init__(
        self,
        features,
        domain,
        tasks,
        bottom_units=(256, 128),
        tower_units=(64,),
        dropout=0.0,
        batch_norm=False,
        **kwargs,
    ):
        features, domain, tasks = prepare_specs(features, domain, tasks)
        inputs = core_inputs(features)
        x = embed_features(features, inputs)
        h = MLPBlock(list(bottom_units), dropout=dropout, batch_norm=batch_norm, name="bottom")(x)
        logits = DomainTaskTowers(
            list(tower_units), domain.num_domains, len(tasks), dropout=dropout, name="towers"
        )(h, inputs[DOMAIN_ID])
        hyper_parameters = dict(
            bottom_units=list(bottom_units),
            tower_units=list(tower_units),
            dropout=dropout,
            batch_norm=batch_norm,
        )
        super().__init__(
            features, domain, tasks, inputs=inputs, logits=logits, hyper_parameters=hyper_parameters, **kwargs
        )
