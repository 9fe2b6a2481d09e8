"""AdaptDHM's distribution adaptation: each row to the nearest of K learned cluster centroids."""

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.core.validation import check_positive_int

_EPSILON = 1e-12


def _normalize(x):
    return x / ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), _EPSILON))


@km_export("keras_mdr.layers.ClusterRouter")
class ClusterRouter(keras.layers.Layer):
    """Routes each row to one of K clusters by learned, unit-norm centroids `c_k`.

        r_ik      = softmax_k(<x_i, c_k>)                     (routing coefficients)
        cluster_i = argmax_k r_ik = argmax_k <x_i, c_k>

    In training, before routing, `routing_iterations` rounds of the
    centroid update run on the batch (a dynamic routing):

        s_k = sum_i r_ik x_i
        c_k <- normalize(momentum * c_k + (1 - momentum) * normalize(s_k))

    each round with the coefficients of the centroids it starts from. The
    rows are read behind a stop-gradient (the centroids learn by this
    update, not by the loss), a cluster without weight in the batch keeps
    its centroid, and the rows are then routed by the updated centroids. At
    inference the centroids are fixed, so a row's cluster depends on the row
    alone. The centroids are a non-trainable weight: saved with the model.

    AdaptDHM's reference code mixes the raw sum `s_k` into the centroid
    (`normalize(momentum * c_k + (1 - momentum) * s_k)`): with thousands of
    rows `s_k` outweighs any momentum, so here `s_k` is normalised first and
    `momentum` is the weight the old centroid keeps, whatever the batch size.

    Args:
        num_clusters: K.
        momentum: the weight of the old centroid in each update.
        routing_iterations: update rounds per training batch.
        seed: seed of the random unit-norm initial centroids.

    Call arguments:
        inputs: `[B, F]` row representations.
        training: update the centroids first.

    Returns:
        `[B]` int32 cluster ids.

    Example:
    >>> router = ClusterRouter(num_clusters=3, seed=1)
    >>> router(np.random.normal(size=(5, 8))).shape
    (5,)

    Reference: Li et al., "AdaptDHM: Adaptive Distribution Hierarchical Model
    for Multi-Domain CTR Prediction", arXiv:2211.12105, 2022.
    """

    def __init__(self, num_clusters, momentum=0.9, routing_iterations=3, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.num_clusters = check_positive_int("num_clusters", num_clusters)
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.routing_iterations = check_positive_int("routing_iterations", routing_iterations)
        self.seed = seed

    def build(self, inputs_shape):
        initial = keras.initializers.RandomNormal(seed=self.seed)((self.num_clusters, inputs_shape[-1]))
        self.centroids = self.add_weight(
            name="centroids",
            shape=(self.num_clusters, inputs_shape[-1]),
            initializer=lambda shape, dtype=None: _normalize(ops.cast(initial, dtype or "float32")),
            trainable=False,
            autocast=False,  # the moving average runs in float32 (see `call`)
        )

    def coefficients(self, inputs, centroids=None):
        """`r [B, K]`: the softmax over clusters of `<x_i, c_k>`."""
        centroids = self.centroids if centroids is None else centroids
        return ops.softmax(ops.matmul(inputs, ops.transpose(ops.cast(centroids, inputs.dtype))), axis=-1)

    def call(self, inputs, training=None):
        # float32 under mixed precision too: a 16-bit moving average loses its updates, and rounding moves
        # rows between clusters.
        x = ops.cast(ops.stop_gradient(inputs), "float32")
        centroids = self.centroids
        if training:
            for _ in range(self.routing_iterations):
                s = ops.matmul(ops.transpose(self.coefficients(x, centroids)), x)  # [K, F]
                has_weight = ops.sum(ops.square(s), axis=-1, keepdims=True) > _EPSILON
                updated = _normalize(self.momentum * centroids + (1.0 - self.momentum) * _normalize(s))
                centroids = ops.where(has_weight, updated, centroids)
            self.centroids.assign(centroids)
        return ops.cast(ops.argmax(ops.matmul(x, ops.transpose(centroids)), axis=-1), "int32")

    def compute_output_spec(self, inputs, training=None):
        return keras.KerasTensor((inputs.shape[0],), dtype="int32")

    def get_config(self):
        config = super().get_config()
        config.update(
            num_clusters=self.num_clusters,
            momentum=self.momentum,
            routing_iterations=self.routing_iterations,
            seed=self.seed,
        )
        return config
