"""Batch normalisation with statistics and affine parameters per domain."""

import functools

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.core.validation import check_positive_int


@km_export("keras_mdr.layers.DomainNormalization")
class DomainNormalization(keras.layers.Layer):
    """`y_i = gamma[d_i] * (x_i - mu[d_i]) / sqrt(var[d_i] + eps) + beta[d_i]`.

    In training, `mu` and `var` are each domain's own batch statistics,
    computed for all domains at once from the one-hot matrix `M [B, D]`
    (`n = M^T 1`, `mu = M^T x / n`, `var = M^T (x - mu[d])^2 / n`); each
    domain's moving statistics are updated only when the domain is in the
    batch, and are set to the batch statistics the first time it has two
    or more rows there (one row has no variance). At inference the moving
    statistics are used, so a row's output does not depend on the rest of
    the batch (batch size 1 works).

    With `shared_affine=True` the affine parameters are STAR's partitioned
    normalisation: `(gamma * gamma_d) * xhat + (beta + beta_d)`.

    Args:
        num_domains: D.
        momentum: moving-average momentum.
        epsilon: added to the variance.
        shared_affine: add domain-shared `gamma`, `beta` (STAR).
        gamma_initializer: initializer of the per-domain `gamma` (`"zeros"`
            makes a normalised residual branch start switched off).

    Call arguments:
        inputs: `[B, F]`.
        domain_ids: `[B]` int.
        training: use batch statistics and update the moving ones.

    Returns:
        `[B, F]`.
    """

    def __init__(
        self, num_domains, momentum=0.99, epsilon=1e-3, shared_affine=False, gamma_initializer="ones", **kwargs
    ):
        super().__init__(**kwargs)
        self.num_domains = check_positive_int("num_domains", num_domains)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        if epsilon <= 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon!r}")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.shared_affine = bool(shared_affine)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)

    def build(self, inputs_shape, domain_ids_shape=None):
        shape = (self.num_domains, inputs_shape[-1])
        # Statistics in float32 under mixed precision too (as keras.layers.BatchNormalization): a 16-bit moving
        # average loses its updates, and its variance its small values. So the weights are read unrounded.
        weight = functools.partial(self.add_weight, autocast=False)
        self.gamma = weight(name="gamma", shape=shape, initializer=self.gamma_initializer)
        self.beta = weight(name="beta", shape=shape, initializer="zeros")
        if self.shared_affine:
            self.shared_gamma = weight(name="shared_gamma", shape=shape[1:], initializer="ones")
            self.shared_beta = weight(name="shared_beta", shape=shape[1:], initializer="zeros")
        self.moving_mean = weight(name="moving_mean", shape=shape, initializer="zeros", trainable=False)
        self.moving_variance = weight(name="moving_variance", shape=shape, initializer="ones", trainable=False)
        self.seen = weight(name="seen", shape=(self.num_domains, 1), initializer="zeros", trainable=False)

    def domain_statistics(self, inputs, domain_ids):
        """Per-domain batch mean and (biased) variance `[D, F]`, and counts `[D]`."""
        onehot = ops.one_hot(domain_ids, self.num_domains, dtype=inputs.dtype)
        counts = ops.sum(onehot, axis=0)
        denominator = ops.expand_dims(ops.maximum(counts, 1.0), 1)
        mean = ops.matmul(ops.transpose(onehot), inputs) / denominator
        centered = inputs - ops.take(mean, domain_ids, axis=0)
        variance = ops.matmul(ops.transpose(onehot), ops.square(centered)) / denominator
        return mean, variance, counts

    def call(self, inputs, domain_ids, training=None):
        domain_ids = ops.cast(domain_ids, "int32")
        inputs = ops.cast(inputs, "float32")
        if training:
            mean, variance, counts = self.domain_statistics(inputs, domain_ids)
            present = ops.expand_dims(counts > 0, 1)
            # A domain's first batch with two or more rows sets its moving statistics outright: an
            # average that starts from (0, 1) needs hundreds of steps to forget them, and embeddings
            # have a variance far below 1, so early inference would shrink every input. One row has
            # variance 0, which would blow inference up by 1 / sqrt(eps): it only averages in.
            measured = ops.expand_dims(counts > 1, 1)
            first = ops.logical_and(measured, self.seen == 0)
            m = ops.where(first, 0.0, ops.where(present, self.momentum, 1.0))
            self.moving_mean.assign(m * self.moving_mean + (1 - m) * mean)
            self.moving_variance.assign(m * self.moving_variance + (1 - m) * variance)
            self.seen.assign(ops.maximum(self.seen, ops.cast(measured, self.seen.dtype)))
        else:
            mean, variance = self.moving_mean, self.moving_variance
        gamma, beta = self.gamma, self.beta
        if self.shared_affine:
            gamma = gamma * self.shared_gamma
            beta = beta + self.shared_beta
        scale = gamma * ops.rsqrt(variance + self.epsilon)
        shift = beta - mean * scale
        outputs = inputs * ops.take(scale, domain_ids, axis=0) + ops.take(shift, domain_ids, axis=0)
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, inputs_shape, domain_ids_shape=None):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_domains=self.num_domains,
            momentum=self.momentum,
            epsilon=self.epsilon,
            shared_affine=self.shared_affine,
            gamma_initializer=keras.initializers.serialize(self.gamma_initializer),
        )
        return config
