"""HAMUR: a recommendation backbone with hyper adapter cells after chosen hidden layers."""

import keras

from keras_mdr.api_export import km_export
from keras_mdr.features.preprocessing import DOMAIN_ID
from keras_mdr.layers.routing.domain_dense import DomainDense
from keras_mdr.layers.routing.domain_mlp import DomainMLP
from keras_mdr.layers.routing.domain_task_towers import DomainTaskTowers
from keras_mdr.layers.feature_interaction.factorization_machine import FactorizationMachine
from keras_mdr.layers.adapters.hyper_adapter import HyperAdapter
from keras_mdr.layers.adapters.hyper_network import HyperNetwork
from keras_mdr.layers.core.mlp_block import MLPBlock
from keras_mdr.layers.core.validation import check_positive_int, check_rate, check_units
from keras_mdr.layers.feature_interaction.vector_cross import VectorCross
from keras_mdr.models.multi_domain_model import (
    MultiDomainModel,
    core_inputs,
    embed_features,
    prepare_specs,
)
from keras_mdr.models.registry import register_model

BACKBONES = ("mlp", "wide_deep", "dcn", "deepfm")
CROSSES = ("v2", "v1")


def adapter_positions(adapter_after, num_layers):
    """Sorted non-negative hidden-layer indices from `adapter_after` (negative ones count from the end)."""
    positions = []
    for i in adapter_after:
        if not isinstance(i, int) or isinstance(i, bool) or not -num_layers <= i < num_layers:
            raise ValueError(
                f"adapter_after must hold indices into the {num_layers} hidden layers "
                f"(-{num_layers} to {num_layers - 1}), got {list(adapter_after)!r}"
            )
        positions.append(i % num_layers)
    if len(set(positions)) != len(positions):
        raise ValueError(f"adapter_after names a hidden layer twice: {list(adapter_after)!r}")
    return sorted(positions)


def cross_layer_class(cross):
    """The cross layer of a DCN backbone: keras-rs' `FeatureCross` (v2) or `VectorCross` (v1)."""
    if cross == "v1":
        return VectorCross
    try:
        from keras_rs.layers import FeatureCross
    except ImportError as error:
        raise ImportError(
            "HAMUR(backbone='dcn', cross='v2') uses keras-rs' FeatureCross. Run: pip install keras-rs "
            "(or pass cross='v1' for DCN-v1's cross, which needs nothing more)"
        ) from error
    return FeatureCross


@register_model("hamur")
@km_export("keras_mdr.models.HAMUR")
class HAMUR(MultiDomainModel):
    """A backbone with `HyperAdapter` cells after chosen hidden layers.

    A domain-shared `HyperNetwork` maps each row's embedding `x` to
    `H(x) [k, k]`, once per forward pass; every adapter cell uses it for its
    per-row low-rank weights `U H(x) V` (never materialised) and has its own
    per-domain biases and `DomainNormalization`. Logits come from a tower
    per (domain, task) (`DomainTaskTowers`).

    Backbones (`x` is the concatenated embedding, `deep` the hidden MLP with
    the adapters inside):
    - `"mlp"`: the hidden MLP is itself per domain, routed (`DomainMLP`
      segments between the adapters); `logit = Tower_{d,t}(deep(x))`.
    - `"wide_deep"`: `logit = Tower_{d,t}(deep(x)) + w_{d,t} . x1`, with
      `x1` 1-d embeddings of every feature (the wide, linear part).
    - `"dcn"`: `logit = Tower_{d,t}([cross(x); deep(x)])` with `cross_layers`
      cross layers: DCN-v2 `x0 * (W x_l + b) + x_l` (`cross="v2"`,
      keras-rs' `FeatureCross`) or DCN-v1 `x0 (x_l . w) + b + x_l`
      (`cross="v1"`, `VectorCross`).
    - `"deepfm"`: `logit = Tower_{d,t}(deep(x)) + w_{d,t} . x1 + FM(v)`, the
      first- and second-order FM terms; the deep part and the FM share the
      field embeddings `v` (all categorical features need one
      `embedding_dim`).

    Args:
        features, domain, tasks: specs (see `MultiDomainModel`).
        backbone: one of `"mlp"`, `"wide_deep"`, `"dcn"`, `"deepfm"`.
        hidden_units: widths of the hidden MLP.
        adapter_after: indices into `hidden_units` after which an adapter
            cell sits (negative: from the end); `[]` gives the bare backbone.
        rank: k, the size of the hyper-network's `k x k` output.
        bottleneck: h, the adapter cells' hidden width.
        hyper_units: hidden widths of the hyper-network.
        adapter_activation: activation of the cells' bottleneck.
        reference_init: the reference code's all-ones U, V initialisation
            (see `HyperAdapter`).
        tower_units: hidden widths of each (domain, task) tower.
        activation: activation of the hidden MLP and the towers.
        dropout: dropout rate after each hidden layer and in the towers.
        cross: `"v2"` or `"v1"`, the DCN cross layer (`backbone="dcn"`).
        cross_layers: number of cross layers (`backbone="dcn"`).
        **kwargs: `MultiDomainModel` arguments (`loss_reduction`, ...).

    Example:
    >>> model = keras_mdr.build_model("hamur", features=features, domain="domain",
    ...     tasks=["click"], data=train_df, backbone="dcn", adapter_after=[0, 1])

    Reference: Li et al., "HAMUR: Hyper Adapter for Multi-Domain
    Recommendation", CIKM 2023.
    """

    def __init__(
        self,
        features,
        domain,
        tasks,
        backbone="mlp",
        hidden_units=(256, 128),
        adapter_after=(-1,),
        rank=32,
        bottleneck=32,
        hyper_units=(64,),
        adapter_activation="relu",
        reference_init=False,
        tower_units=(64,),
        activation="relu",
        dropout=0.0,
        cross="v2",
        cross_layers=3,
        **kwargs,
    ):
        features, domain, tasks = prepare_specs(features, domain, tasks)
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
        if cross not in CROSSES:
            raise ValueError(f"cross must be one of {CROSSES}, got {cross!r}")
        hidden_units = check_units("hidden_units", hidden_units)
        positions = adapter_positions(list(adapter_after), len(hidden_units))
        check_rate("dropout", dropout)
        check_positive_int("cross_layers", cross_layers)
        num_domains, num_tasks = domain.num_domains, len(tasks)

        inputs = core_inputs(features)
        domain_ids = inputs[DOMAIN_ID]
        if backbone == "deepfm":
            fields = embed_features(features, inputs, output_mode="fields")
            x = keras.layers.Flatten(name="flatten_fields")(fields)
        else:
            x = embed_features(features, inputs)
        hyper = None
        if positions:
            hyper = HyperNetwork(rank, hyper_units, name="hyper_network")(x)

        # The hidden MLP in segments that end where an adapter sits.
        h, start = x, 0
        for end in positions + [len(hidden_units) - 1]:
            if end < start:
                continue
            units = hidden_units[start : end + 1]
            if backbone == "mlp":
                h = DomainMLP(
                    units, num_domains, activation=activation, output_activation=activation,
                    dropout=dropout, name=f"hidden_{start}",
                )(h, domain_ids)
                if dropout:
                    h = keras.layers.Dropout(dropout, name=f"hidden_{start}_dropout")(h)
            else:
                h = MLPBlock(units, activation=activation, dropout=dropout, name=f"hidden_{start}")(h)
            if end in positions:
                h = HyperAdapter(
                    rank, bottleneck, num_domains, activation=adapter_activation,
                    reference_init=reference_init, name=f"adapter_{end}",
                )(h, hyper, domain_ids)
            start = end + 1

        if backbone == "dcn":
            cross_cls = cross_layer_class(cross)
            crossed = x
            for i in range(cross_layers):
                crossed = cross_cls(name=f"cross_{i}")(x, crossed)
            h = keras.layers.Concatenate(name="cross_and_deep")([crossed, h])
        logits = DomainTaskTowers(
            list(tower_units), num_domains, num_tasks, activation=activation, dropout=dropout, name="towers"
        )(h, domain_ids)
        if backbone in ("wide_deep", "deepfm"):
            x1 = embed_features(features, inputs, embedding_dim=1, name="linear_embedding")
            linear = DomainDense(num_tasks, num_domains, use_bias=False, name="linear")(x1, domain_ids)
            logits = keras.layers.Add(name="add_linear")([logits, linear])
        if backbone == "deepfm":
            logits = keras.layers.Add(name="add_fm")([logits, FactorizationMachine(name="fm")(fields)])
        hyper_parameters = dict(
            backbone=backbone,
            hidden_units=hidden_units,
            adapter_after=list(adapter_after),
            rank=rank,
            bottleneck=bottleneck,
            hyper_units=list(hyper_units),
            adapter_activation=adapter_activation,
            reference_init=reference_init,
            tower_units=list(tower_units),
            activation=activation,
            dropout=dropout,
            cross=cross,
            cross_layers=cross_layers,
        )
        super().__init__(
            features, domain, tasks, inputs=inputs, logits=logits, hyper_parameters=hyper_parameters, **kwargs
        )
