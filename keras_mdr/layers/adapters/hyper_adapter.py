"""HAMUR's hyper adapter cell: a residual bottleneck whose weights depend on the row."""

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.core.mixing import mix
from keras_mdr.layers.routing.domain_normalization import DomainNormalization
from keras_mdr.layers.core.validation import check_positive_int


@km_export("keras_mdr.layers.HyperAdapter")
class HyperAdapter(keras.layers.Layer):
    """A residual adapter with per-row low-rank weights `U H(x) V` and per-domain bias and norm.

    For a hidden vector `z [m]` of a row in domain `d` with hyper-network
    output `H [k, k]` (see `HyperNetwork`):

        a  = act(((z U1) H) V1 + b1[d])          U1 [m, k], V1 [k, h], b1 [D, h]
        u  = ((a U2) H) V2 + b2[d]               U2 [h, k], V2 [k, m], b2 [D, m]
        z' = z + DomainNorm_d(u)

    The per-row weight `U1 H V1 [m, h]` is never built: the products are
    evaluated right to left through the `k`-wide core, which costs
    `2 k (m + h) + 2 k^2` multiply-adds per row instead of the `m k (k + h)`
    that materialising the weights would (and no `B x m x h` buffer).

    `DomainNorm` (a `DomainNormalization`) uses each domain's own batch
    statistics in training and its moving statistics at inference, so a
    row's output never depends on the rest of the batch (batch size 1 works).

    The cell is standalone: attach it after any hidden layer of any model,
    feeding it the same `H` for every cell of a row.

    Args:
        rank: k, the width of the hyper-network's core `H`.
        bottleneck: h, the adapter's hidden width.
        num_domains: D.
        activation: the bottleneck's activation.
        reference_init: `True` initialises U1, V1, U2, V2 to ones and the
            norm's scale to one, as the HAMUR reference code does. `False`
            (default) uses fan-in variance scaling for U and V and starts the
            norm's per-domain scale at zero, so the cell starts as the
            identity (`z' = z`) and the backbone's signal is undisturbed
            until the adapter has learned something.

    Call arguments:
        inputs: `[B, m]` hidden vectors z.
        hyper: `[B, k, k]`, the hyper-network's output for the same rows.
        domain_ids: `[B]` int.
        training: per-domain batch statistics (and moving-statistic
            updates) instead of the moving statistics.

    Returns:
        `[B, m]`, z'.

    Example:
    >>> cell = HyperAdapter(rank=4, bottleneck=8, num_domains=3)
    >>> cell(np.ones((2, 16)), np.ones((2, 4, 4)), np.array([0, 2])).shape
    (2, 16)

    Reference: Li et al., "HAMUR: Hyper Adapter for Multi-Domain
    Recommendation", CIKM 2023.
    """

    def __init__(self, rank, bottleneck, num_domains, activation="relu", reference_init=False, **kwargs):
        super().__init__(**kwargs)
        self.rank = check_positive_int("rank", rank)
        self.bottleneck = check_positive_int("bottleneck", bottleneck)
        self.num_domains = check_positive_int("num_domains", num_domains)
        self.activation = keras.activations.get(activation)
        self.reference_init = bool(reference_init)
        self.norm = DomainNormalization(
            self.num_domains, gamma_initializer="ones" if self.reference_init else "zeros", name="norm"
        )

    def build(self, inputs_shape, hyper_shape=None, domain_ids_shape=None):
        width, k, h = inputs_shape[-1], self.rank, self.bottleneck
        if hyper_shape is not None and tuple(hyper_shape[-2:]) != (k, k):
            raise ValueError(f"hyper must have shape [B, {k}, {k}] (rank={k}), got {tuple(hyper_shape)}")
        # Fan-in variance scaling (LeCun normal): each factor of `x U H V` keeps its input's scale.
        init = "ones" if self.reference_init else "lecun_normal"

        def factor(name, shape):
            return self.add_weight(name=name, shape=shape, initializer=init)

        self.u1, self.v1 = factor("u1", (width, k)), factor("v1", (k, h))
        self.u2, self.v2 = factor("u2", (h, k)), factor("v2", (k, width))
        self.b1 = self.add_weight(name="b1", shape=(self.num_domains, h), initializer="zeros")
        self.b2 = self.add_weight(name="b2", shape=(self.num_domains, width), initializer="zeros")
        self.norm.build((None, width))

    @staticmethod
    def low_rank_product(x, hyper, left, right):
        """`x_b (left H_b right)` for every row b, evaluated as `((x_b left) H_b) right`.

        Args:
            x: `[B, i]`.
            hyper: `[B, k, k]`.
            left: `[i, k]`.
            right: `[k, j]`.

        Returns:
            `[B, j]`.
        """
        core = mix(ops.expand_dims(ops.matmul(x, left), 1), hyper)[:, 0]
        return ops.matmul(core, right)

    def call(self, inputs, hyper, domain_ids, training=None):
        domain_ids = ops.cast(domain_ids, "int32")
        hyper = ops.cast(hyper, self.compute_dtype)
        a = self.activation(
            self.low_rank_product(inputs, hyper, self.u1, self.v1) + ops.take(self.b1, domain_ids, axis=0)
        )
        u = self.low_rank_product(a, hyper, self.u2, self.v2) + ops.take(self.b2, domain_ids, axis=0)
        return inputs + self.norm(u, domain_ids, training=training)

    def compute_output_shape(self, inputs_shape, hyper_shape=None, domain_ids_shape=None):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            rank=self.rank,
            bottleneck=self.bottleneck,
            num_domains=self.num_domains,
            activation=keras.activations.serialize(self.activation),
            reference_init=self.reference_init,
        )
        return config
