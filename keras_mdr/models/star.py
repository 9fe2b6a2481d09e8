"""STAR: partitioned normalisation, a star-topology FCN and a domain auxiliary net."""

import keras

from keras_mdr.api_export import km_export
from keras_mdr.features.preprocessing import DOMAIN_ID
from keras_mdr.layers.routing.domain_normalization import DomainNormalization
from keras_mdr.layers.core.mlp_block import MLPBlock
from keras_mdr.layers.routing.star_dense import StarDense
from keras_mdr.layers.core.validation import check_positive_int, check_rate, check_units
from keras_mdr.models.multi_domain_model import (
    MultiDomainModel,
    core_inputs,
    embed_features,
    prepare_specs,
)
from keras_mdr.models.registry import register_model


@register_model("star")
@km_export("keras_mdr.models.STAR")
class STAR(MultiDomainModel):
    """Star Topology Adaptive Recommender, with one logit per task.

        x'       = PN_d(x) = (gamma * gamma_d) * xhat_d + (beta + beta_d)
        h_{l+1}  = relu(h_l (W_l * W_{l,d}) + b_l + b_{l,d})       (star layers)
        logit    = h_L (W_o * W_{o,d}) + b_o + b_{o,d}  +  Aux(e_d)   [T logits]

    Partitioned normalisation (`DomainNormalization(shared_affine=True)`)
    uses each domain's batch statistics in training and its moving statistics
    at inference. Each star layer (`StarDense`) builds the D effective
    matrices once per step and routes every row through its own domain's.
    The auxiliary network maps a learned embedding `e_d` of the domain
    indicator through a small MLP to T logits, added to the main ones. There
    is no activation on the output logits (the reference code's ReLU there
    would make every probability >= 0.5).

    Args:
        features, domain, tasks: specs (see `MultiDomainModel`).
        star_units: widths of the hidden star layers; a final star layer
            gives the T logits.
        aux_units: hidden widths of the auxiliary network (may be empty).
        domain_embedding_dim: width of the domain embedding `e_d`.
        dropout: dropout rate after each hidden star layer.
        partitioned_norm: normalise the embeddings per domain first.
        **kwargs: `MultiDomainModel` arguments (`loss_reduction`, ...).

    Example:
    >>> model = keras_mdr.build_model("star", features=features,
    ...     domain="domain", tasks=["click", "like"], data=train_df)

    Reference: Sheng et al., "One Model to Serve All: Star Topology Adaptive
    Recommender for Multi-Domain CTR Prediction", CIKM 2021.
    """

    def __init__(
        self,
        features,
        domain,
        tasks,
        star_units=(128, 64),
        aux_units=(32,),
        domain_embedding_dim=8,
        dropout=0.0,
        partitioned_norm=True,
        **kwargs,
    ):
        features, domain, tasks = prepare_specs(features, domain, tasks)
        star_units = check_units("star_units", star_units, allow_empty=True)
        aux_units = check_units("aux_units", aux_units, allow_empty=True)
        domain_embedding_dim = check_positive_int("domain_embedding_dim", domain_embedding_dim)
        dropout = check_rate("dropout", dropout)
        num_domains = domain.num_domains
        inputs = core_inputs(features)
        domain_ids = inputs[DOMAIN_ID]

        h = embed_features(features, inputs)
        if partitioned_norm:
            h = DomainNormalization(num_domains, shared_affine=True, name="partitioned_norm")(h, domain_ids)
        for i, units in enumerate(star_units):
            h = StarDense(units, num_domains, activation="relu", name=f"star_{i}")(h, domain_ids)
            if dropout:
                h = keras.layers.Dropout(dropout, name=f"dropout_{i}")(h)
        main_logits = StarDense(len(tasks), num_domains, name="star_logits")(h, domain_ids)

        a = keras.layers.Embedding(num_domains, domain_embedding_dim, name="domain_embedding")(domain_ids)
        if aux_units:
            a = MLPBlock(aux_units, name="aux_mlp")(a)
        aux_logits = keras.layers.Dense(len(tasks), name="aux_logits")(a)
        logits = keras.layers.Add(name="logits")([main_logits, aux_logits])
        hyper_parameters = dict(
            star_units=star_units,
            aux_units=aux_units,
            domain_embedding_dim=domain_embedding_dim,
            dropout=dropout,
            partitioned_norm=bool(partitioned_norm),
        )
        super().__init__(
            features, domain, tasks, inputs=inputs, logits=logits, hyper_parameters=hyper_parameters, **kwargs
        )
