"""Which learned cluster each domain's rows go to (AdaptDHM's `ClusterRouter`)."""

import numpy as np

from keras_mdr.features.preprocessing import DOMAIN_ID
from keras_mdr.layers.routing.cluster_router import ClusterRouter
from keras_mdr.training import domain_tables


def cluster_assignment(model, data, batch_size=None, layer_name=None):
    """The share of each domain's rows routed to each cluster, with the centroids used at inference.

    Args:
        model: a `MultiDomainModel` with a `ClusterRouter` layer (`adaptdhm`).
        data: raw data (see `MultiDomainModel.make_dataset`).
        batch_size: rows per batch.
        layer_name: which `ClusterRouter` layer, when there are several.

    Returns:
        A DataFrame indexed by domain name with columns `cluster_0 ...
        cluster_{K-1}` (shares; each row sums to 1, NaN for a domain absent
        from `data`) and `rows` (the domain's row count). Clusters that
        follow the domains show one cell near 1 per row.
    """
    layer = domain_tables.find_layer(model, ClusterRouter, layer_name)
    num_domains = model.domain.num_domains
    counts, rows = np.zeros((num_domains, layer.num_clusters)), np.zeros(num_domains)
    tensors = [layer.output, model.input[DOMAIN_ID]]
    for clusters, domains in domain_tables.probe_batches(model, data, tensors, batch_size):
        batch_counts, batch_rows = domain_tables.domain_shares(model, domains, clusters, layer.num_clusters)
        counts, rows = counts + batch_counts, rows + batch_rows
    with np.errstate(invalid="ignore", divide="ignore"):
        return domain_tables.domain_table(model, counts / rows[:, None], rows, "cluster_")
