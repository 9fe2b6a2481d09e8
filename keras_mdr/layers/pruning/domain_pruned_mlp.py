"""AdaSparse's backbone: an MLP whose neurons are weighted, and pruned, by the domain."""

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.core.mlp_block import MLPBlock
from keras_mdr.layers.core.validation import check_positive, check_positive_int, check_rate, check_units

PRUNER_INPUTS = ("domain", "domain_and_neurons")


@km_export("keras_mdr.layers.DomainPrunedMLP")
class DomainPrunedMLP(keras.layers.Layer):
    """An MLP whose every neuron is scaled, or pruned, by a domain-aware pruner (AdaSparse, Fusion form).

        pi_l   = beta * sigmoid(alpha v_l) * 1[beta * sigmoid(alpha v_l) >= epsilon]
        v_l    = e_d P_l                       (pruner_input="domain")
               = e_d P_l + n_l Q_l             (pruner_input="domain_and_neurons")
        h_0    = [e_d ; pi_0 * x]
        h_l    = pi_l * f(h_{l-1} W_l + b_l),  l = 1..L

    `e_d` is a learned embedding of the row's domain (`[D, e]`), `n_l` the
    neurons the pruner weighs (`x`, then each hidden layer's output). The
    Fusion weighting factors scale a neuron by up to `beta` and prune it (0)
    below `epsilon`; the pruned share is the layer's sparsity. The
    relaxation carries gradients: below the threshold a factor is exactly 0,
    above it is the smooth `beta * sigmoid(alpha v)`, and `alpha` (a saved,
    non-trainable weight) grows by `alpha_step` each training step, the
    sparsity schedule that drives `sigmoid(alpha v)` to 0 or 1, so the
    factors to 0 or `beta`.

    With `pruner_input="domain"` the factors are a function of the domain:
    each layer's D masks are computed once per call from the D domain
    embeddings and each row takes its own domain's (`domain_masks()` returns
    them). With `"domain_and_neurons"` the pruner also reads the neurons
    themselves, as the authors describe AdaSparse's pruner and as
    Scenario-Wise-Rec's code does, and the masks differ per row.
    (Scenario-Wise-Rec's code multiplies the pruned neurons by
    `sign(pi - epsilon) = -1` instead of 0; here they are 0.)

    With `sparsity_range=(low, high)` a flexible sparsity regulariser keeps
    each layer's soft sparsity `s_l = mean(1 - sigmoid(alpha v_l))` (over the
    rows and neurons of the batch; it tends to the share of pruned neurons
    as `alpha` grows) inside the range: `sparsity_weight * sum_l
    (relu(low - s_l) + relu(s_l - high))` is added to the loss in training.

    Args:
        units: widths of the hidden layers.
        num_domains: D.
        domain_embedding_dim: width of `e_d`.
        pruner_input: `"domain"` or `"domain_and_neurons"`.
        beta: the largest weighting factor.
        epsilon: factors below it prune their neuron.
        alpha: the initial `alpha`.
        alpha_step: the growth of `alpha` per training step.
        sparsity_range: `(low, high)` target sparsity of every layer, or
            `None` for no regulariser.
        sparsity_weight: weight of the regulariser.
        activation: activation of the hidden layers.
        dropout: dropout rate after each hidden activation.

    Call arguments:
        inputs: `[B, F]` (the feature embeddings `x`).
        domain_ids: `[B]` int.
        training: advances the schedule, adds the regulariser, enables
            dropout.

    Returns:
        `[B, units[-1]]`.

    Example:
    >>> layer = DomainPrunedMLP([8, 4], num_domains=3, domain_embedding_dim=2)
    >>> layer(np.ones((5, 6)), np.array([0, 2, 1, 2, 0])).shape
    (5, 4)

    Reference: Yang et al., "AdaSparse: Learning Adaptively Sparse Structures
    for Multi-Domain Click-Through Rate Prediction", CIKM 2022.
    """

    def __init__(
        self,
        units,
        num_domains,
        domain_embedding_dim=16,
        pruner_input="domain",
        beta=2.0,
        epsilon=0.01,
        alpha=1.0,
        alpha_step=1e-4,
        sparsity_range=None,
        sparsity_weight=1.0,
        activation="relu",
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_units("units", units)
        self.num_domains = check_positive_int("num_domains", num_domains)
        self.domain_embedding_dim = check_positive_int("domain_embedding_dim", domain_embedding_dim)
        if pruner_input not in PRUNER_INPUTS:
            raise ValueError(f"pruner_input must be one of {PRUNER_INPUTS}, got {pruner_input!r}")
        self.pruner_input = pruner_input
        self.beta = check_positive("beta", beta)
        if not 0.0 <= float(epsilon) < self.beta:
            raise ValueError(f"epsilon must be in [0, beta={self.beta}), got {epsilon!r}")
        self.epsilon = float(epsilon)
        self.alpha = check_positive("alpha", alpha)
        if not float(alpha_step) >= 0.0:
            raise ValueError(f"alpha_step must be >= 0, got {alpha_step!r}")
        self.alpha_step = float(alpha_step)
        if sparsity_range is not None:
            low, high = (float(v) for v in sparsity_range)
            if not 0.0 <= low <= high <= 1.0:
                raise ValueError(
                    f"sparsity_range must be (low, high) with 0 <= low <= high <= 1, got {sparsity_range!r}"
                )
            sparsity_range = [low, high]
        self.sparsity_range = sparsity_range
        if not float(sparsity_weight) >= 0.0:
            raise ValueError(f"sparsity_weight must be >= 0, got {sparsity_weight!r}")
        self.sparsity_weight = float(sparsity_weight)
        self.activation = activation
        self.dropout = check_rate("dropout", dropout)
        self.hidden = [
            MLPBlock([width], activation=activation, dropout=self.dropout, name=f"hidden_{i}")
            for i, width in enumerate(self.units)
        ]

    @property
    def widths(self):
        """The widths of the pruned neurons: the input, then each hidden layer."""
        return [self._input_width] + self.units

    def build(self, inputs_shape, domain_ids_shape=None):
        self._input_width = inputs_shape[-1]
        e = self.domain_embedding_dim
        self.domain_embeddings = self.add_weight(
            name="domain_embeddings", shape=(self.num_domains, e), initializer="uniform"
        )
        self.domain_pruners, self.neuron_pruners = [], []
        for i, width in enumerate(self.widths):
            self.domain_pruners.append(
                self.add_weight(name=f"domain_pruner_{i}", shape=(e, width), initializer="glorot_uniform")
            )
            if self.pruner_input == "domain_and_neurons":
                self.neuron_pruners.append(
                    self.add_weight(name=f"neuron_pruner_{i}", shape=(width, width), initializer="glorot_uniform")
                )
        width = e + self._input_width
        for block in self.hidden:
            block.build((None, width))
            width = block.units[-1]
        self.alpha_value = self.add_weight(
            name="alpha", shape=(), initializer=keras.initializers.Constant(self.alpha), trainable=False
        )

    def _factors(self, v):
        """`(pi, soft)`: the Fusion factors and `sigmoid(alpha v)`."""
        soft = ops.sigmoid(ops.cast(self.alpha_value, v.dtype) * v)
        scaled = self.beta * soft
        return ops.where(scaled >= self.epsilon, scaled, ops.zeros_like(scaled)), soft

    def domain_masks(self):
        """Each layer's factors per domain, `[D, width_l]` (`pruner_input="domain"` only)."""
        if self.pruner_input != "domain":
            raise ValueError(f"{self.name}: the factors depend on the row with pruner_input={self.pruner_input!r}")
        return [self._factors(ops.matmul(self.domain_embeddings, p))[0] for p in self.domain_pruners]

    def _prune(self, i, neurons, domain_ids, soft_sparsities):
        # The domain's part of v for the D domains at once, then taken per row.
        v = ops.take(ops.matmul(self.domain_embeddings, self.domain_pruners[i]), domain_ids, axis=0)
        if self.neuron_pruners:
            v = v + ops.matmul(neurons, self.neuron_pruners[i])
        pi, soft = self._factors(v)
        soft_sparsities.append(ops.mean(1.0 - soft))
        return pi * neurons, pi

    def forward(self, inputs, domain_ids, training=None):
        """`(outputs, factors)`: the layer's output and each layer's factors `[B, width_l]`."""
        domain_ids = ops.cast(domain_ids, "int32")
        soft_sparsities, factors = [], []
        x, pi = self._prune(0, inputs, domain_ids, soft_sparsities)
        factors.append(pi)
        h = ops.concatenate([ops.take(self.domain_embeddings, domain_ids, axis=0), x], axis=-1)
        for i, block in enumerate(self.hidden, start=1):
            h, pi = self._prune(i, block(h, training=training), domain_ids, soft_sparsities)
            factors.append(pi)
        if training:
            self.alpha_value.assign_add(self.alpha_step)
            if self.sparsity_range is not None and self.sparsity_weight:
                low, high = self.sparsity_range
                s = ops.stack(soft_sparsities)
                self.add_loss(self.sparsity_weight * ops.sum(ops.relu(low - s) + ops.relu(s - high)))
        return h, factors

    def call(self, inputs, domain_ids, training=None):
        return self.forward(inputs, domain_ids, training=training)[0]

    def compute_output_shape(self, inputs_shape, domain_ids_shape=None):
        return tuple(inputs_shape[:-1]) + (self.units[-1],)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            num_domains=self.num_domains,
            domain_embedding_dim=self.domain_embedding_dim,
            pruner_input=self.pruner_input,
            beta=self.beta,
            epsilon=self.epsilon,
            alpha=self.alpha,
            alpha_step=self.alpha_step,
            sparsity_range=self.sparsity_range,
            sparsity_weight=self.sparsity_weight,
            activation=self.activation,
            dropout=self.dropout,
        )
        return config
