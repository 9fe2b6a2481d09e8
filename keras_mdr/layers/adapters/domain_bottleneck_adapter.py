"""A bottleneck adapter per domain, each row through its own domain's."""

import math

from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.adapters.bottleneck_adapter import BottleneckAdapter
from keras_mdr.layers.core.validation import check_positive_int
from keras_mdr.layers.routing.domain_dense import DomainDense


@km_export("keras_mdr.layers.DomainBottleneckAdapter")
class DomainBottleneckAdapter(BottleneckAdapter):
    """`y = x + W_u[d] Drop(act(W_d[d] x + b_d[d])) + b_u[d]`: a `BottleneckAdapter` per domain.

    Both projections are `DomainDense` layers, so each row goes through its
    own domain's adapter only (one grouped matmul per projection: no
    run-every-adapter-and-mask). The up-projection starts at zero for every
    domain, so the layer is the identity until it trains, and a domain whose
    up-projection stays zero gets its input back exactly (`x + 0`):
    `keras_mdr.transfer.add_domain` keeps the source domains' rows of both
    projections frozen, so only a new domain's adapter acts.

    Args:
        bottleneck: m, the hidden width.
        num_domains: D.
        activation, dropout, kernel_initializer: as for `BottleneckAdapter`.
        tile_size: rows per tile of the grouped matmuls.

    Call arguments:
        inputs: `[B, ..., d]`.
        domain_ids: `[B]` int; every vector of row b goes through domain
            `domain_ids[b]`'s adapter.
        training: enables dropout.

    Returns:
        `[B, ..., d]`.

    Example:
    >>> adapter = DomainBottleneckAdapter(bottleneck=4, num_domains=3)
    >>> x = np.random.normal(size=(5, 16)).astype("float32")
    >>> bool(np.allclose(adapter(x, np.array([0, 2, 1, 2, 0])), x))    # the identity at init
    True

    Reference: Houlsby et al., "Parameter-Efficient Transfer Learning for
    NLP", ICML 2019; Fu, Yuan et al., "Exploring Adapter-based Transfer
    Learning for Recommender Systems", WSDM 2024.
    """

    def __init__(self, bottleneck, num_domains, tile_size=64, **kwargs):
        super().__init__(bottleneck, **kwargs)
        self.num_domains = check_positive_int("num_domains", num_domains)
        self.tile_size = check_positive_int("tile_size", tile_size)

    def projection(self, units, name, zero):
        initializer = "zeros" if zero else self.kernel_initializer
        return DomainDense(units, self.num_domains, tile_size=self.tile_size, kernel_initializer=initializer, name=name)

    def build(self, inputs_shape, domain_ids_shape=None):
        super().build((None, inputs_shape[-1]))

    def call(self, inputs, domain_ids, training=None):
        width = inputs.shape[-1]
        vectors = inputs.shape[1:-1]
        rows = ops.reshape(inputs, (-1, width))
        domain_ids = ops.cast(domain_ids, "int32")
        if vectors:
            # Row b's vectors are rows b * V .. b * V + V - 1 of the flattened input.
            domain_ids = ops.repeat(domain_ids, math.prod(vectors))
        hidden = self.dropout_layer(self.activation(self.down(rows, domain_ids)), training=training)
        return inputs + ops.reshape(self.up(hidden, domain_ids), ops.shape(inputs))

    def compute_output_shape(self, inputs_shape, domain_ids_shape=None):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(num_domains=self.num_domains, tile_size=self.tile_size)
        return config
