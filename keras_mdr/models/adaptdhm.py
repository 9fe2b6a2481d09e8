"""AdaptDHM: rows routed to cluster-specific networks by learned centroids, not by their domain."""

import keras

from keras_mdr.api_export import km_export
from keras_mdr.features.preprocessing import DOMAIN_ID
from keras_mdr.layers.core.validation import check_non_negative_int, check_positive_int, check_units
from keras_mdr.layers.routing.cluster_router import ClusterRouter
from keras_mdr.layers.routing.star_dense import StarDense
from keras_mdr.models.multi_domain_model import (
    MultiDomainModel,
    core_inputs,
    embed_features,
    prepare_specs,
)
from keras_mdr.models.registry import register_model


@register_model("adaptdhm")
@km_export("keras_mdr.models.AdaptDHM")
class AdaptDHM(MultiDomainModel):
    """`k_i = argmax_k <x_i, c_k>`; `logits = FCN_{k_i}(x_i)` with `W_k = W_shared * W_cluster_k`.

    Adaptive Distribution Hierarchical Model: instead of one network per
    domain, K networks for K clusters of rows, found as training goes. The
    row representation `x` (the feature embeddings and, with
    `domain_embedding_dim`, an embedding of the domain as one more feature)
    is routed to the cluster of the nearest learned centroid
    (`ClusterRouter`: in training a few rounds of a momentum update of the
    centroids on the batch, then routing; at inference the saved centroids,
    fixed); the row then runs through its cluster's network only, a
    star-topology FCN whose layers multiply a shared weight with the
    cluster's own (`StarDense`, routed by cluster id: one network's FLOPs
    per row). The last layer gives the T logits.

    Scenario-Wise-Rec's AdaptDHM runs all K networks on every row and picks
    one, leaves its biases unused, does not save its centroids and mixes the
    unnormalised batch sum into them (see `ClusterRouter`); none of that
    here. Its networks' last layer has a sigmoid; here the logits are
    linear.

    Args:
        features, domain, tasks: specs (see `MultiDomainModel`).
        num_clusters: K.
        hidden_units: widths of the hidden layers of each cluster's network.
        domain_embedding_dim: width of the domain embedding joined to `x`
            (0: the domain is not an input).
        momentum: weight of the old centroid in each centroid update.
        routing_iterations: centroid update rounds per training batch.
        seed: seed of the initial centroids.
        **kwargs: `MultiDomainModel` arguments (`loss_reduction`, ...).

    Example:
    >>> model = keras_mdr.build_model("adaptdhm", features=features,
    ...     domain="domain", tasks=["click"], data=train_df, num_clusters=4)
    >>> km.training.cluster_assignment(model, test_df)   # share of each domain's rows per cluster

    Reference: Li et al., "AdaptDHM: Adaptive Distribution Hierarchical Model
    for Multi-Domain CTR Prediction", arXiv:2211.12105, 2022.
    """

    def __init__(
        self,
        features,
        domain,
        tasks,
        num_clusters=3,
        hidden_units=(64, 64),
        domain_embedding_dim=16,
        momentum=0.9,
        routing_iterations=3,
        seed=None,
        **kwargs,
    ):
        features, domain, tasks = prepare_specs(features, domain, tasks)
        num_clusters = check_positive_int("num_clusters", num_clusters)
        hidden_units = check_units("hidden_units", hidden_units, allow_empty=True)
        check_non_negative_int("domain_embedding_dim", domain_embedding_dim, zero_means="no domain input")
        inputs = core_inputs(features)
        x = embed_features(features, inputs)
        if domain_embedding_dim:
            domain_embedding = keras.layers.Embedding(
                domain.num_domains, domain_embedding_dim, name="domain_embedding"
            )(inputs[DOMAIN_ID])
            x = keras.layers.Concatenate(name="representation")([x, domain_embedding])
        clusters = ClusterRouter(num_clusters, momentum, routing_iterations, seed=seed, name="router")(x)
        h = x
        for i, units in enumerate(hidden_units):
            h = StarDense(units, num_clusters, activation="relu", name=f"cluster_fcn_{i}")(h, clusters)
        logits = StarDense(len(tasks), num_clusters, name="cluster_logits")(h, clusters)
        hyper_parameters = dict(
            num_clusters=num_clusters,
            hidden_units=hidden_units,
            domain_embedding_dim=domain_embedding_dim,
            momentum=float(momentum),
            routing_iterations=routing_iterations,
            seed=seed,
        )
        super().__init__(
            features, domain, tasks, inputs=inputs, logits=logits, hyper_parameters=hyper_parameters, **kwargs
        )
