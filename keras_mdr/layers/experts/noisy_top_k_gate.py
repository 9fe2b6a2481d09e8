"""A domain-aware router that picks K of N experts per row, with trainable noise."""

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.core.validation import check_positive_int


@km_export("keras_mdr.layers.NoisyTopKGate")
class NoisyTopKGate(keras.layers.Layer):
    """Top-K routing on the instance and a learned domain embedding.

    With `z = [x ; e_d]` (the row's input concatenated with its domain's
    embedding):

        l = z W_g + b_g                                   (inference)
        l = z W_g + b_g + eps * softplus(z W_noise)       (training, eps ~ N(0, 1))
        pi = softmax(l)                                   over all N experts
        (expert_ids, l_K) = top_k(l, K)
        g = softmax(l_K) = pi[expert_ids] / sum(pi[expert_ids])

    The noise is Shazeer et al.'s noisy top-K gating (2017): its scale is
    learned per row and expert (`W_noise` starts at zero, so the initial
    standard deviation is `softplus(0) = 0.69`), it explores experts early in
    training and is off at inference, so routing is then deterministic and
    batch independent. `pi` is the full softmax of the same (noisy) logits the
    choice was made on, so auxiliary losses on `pi` see every expert's
    probability, including the unchosen ones.

    Args:
        num_experts: N.
        top_k: K, at most N.
        num_domains: D.
        domain_embedding_dim: width of `e_d`.
        noisy: add the trainable noise in training.
        seed: seed of the noise.

    Call arguments:
        inputs: `[B, F]`.
        domain_ids: `[B]` int in `[0, num_domains)`.
        training: adds the noise.

    Returns:
        `(pi [B, N], expert_ids [B, K] int32, g [B, K])`; `expert_ids` are
        sorted by decreasing logit and `g` sums to 1 over each row.

    Example:
    >>> gate = NoisyTopKGate(num_experts=8, top_k=2, num_domains=3)
    >>> pi, expert_ids, g = gate(np.ones((5, 12)), np.array([0, 2, 1, 2, 0]))
    >>> tuple(expert_ids.shape), tuple(g.shape)
    ((5, 2), (5, 2))

    Reference: Dong et al., "Adaptive Conditional Expert Selection Network
    for Multi-domain Recommendation" (CESAA), arXiv:2411.06826, 2024; Shazeer et al.,
    "Outrageously Large Neural Networks: The Sparsely-Gated
    Mixture-of-Experts Layer", ICLR 2017.
    """

    def __init__(
        self, num_experts, top_k, num_domains, domain_embedding_dim=8, noisy=True, seed=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.num_experts = check_positive_int("num_experts", num_experts)
        self.top_k = check_positive_int("top_k", top_k)
        if self.top_k > self.num_experts:
            raise ValueError(f"top_k must be <= num_experts ({num_experts}), got {top_k!r}")
        self.num_domains = check_positive_int("num_domains", num_domains)
        self.domain_embedding_dim = check_positive_int("domain_embedding_dim", domain_embedding_dim)
        self.noisy = bool(noisy)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if self.noisy else None

    def build(self, inputs_shape, domain_ids_shape=None):
        self.domain_embedding = self.add_weight(
            name="domain_embedding",
            shape=(self.num_domains, self.domain_embedding_dim),
            initializer="uniform",
        )
        width = inputs_shape[-1] + self.domain_embedding_dim
        self.kernel = self.add_weight(
            name="kernel", shape=(width, self.num_experts), initializer="glorot_uniform"
        )
        self.bias = self.add_weight(name="bias", shape=(self.num_experts,), initializer="zeros")
        self.noise_kernel = None
        if self.noisy:
            self.noise_kernel = self.add_weight(
                name="noise_kernel", shape=(width, self.num_experts), initializer="zeros"
            )

    def call(self, inputs, domain_ids, training=None):
        domain = ops.take(self.domain_embedding, ops.cast(domain_ids, "int32"), axis=0)
        z = ops.concatenate([inputs, ops.cast(domain, inputs.dtype)], axis=-1)
        # Routing in float32 under mixed precision too: 16-bit logits tie, and top-k would pick by rounding.
        logits = ops.cast(ops.matmul(z, self.kernel) + self.bias, "float32")
        if training and self.noisy:
            scale = ops.softplus(ops.cast(ops.matmul(z, self.noise_kernel), "float32"))
            logits = logits + scale * keras.random.normal(ops.shape(logits), seed=self.seed_generator)
        top_logits, expert_ids = ops.top_k(logits, self.top_k)
        return ops.softmax(logits, axis=-1), ops.cast(expert_ids, "int32"), ops.softmax(top_logits, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_experts=self.num_experts,
            top_k=self.top_k,
            num_domains=self.num_domains,
            domain_embedding_dim=self.domain_embedding_dim,
            noisy=self.noisy,
            seed=self.seed,
        )
        return config
