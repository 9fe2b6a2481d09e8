"""CESAA's conditional expert selection: shared experts plus K of N routed experts per row."""

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.experts import expert_dispatch, routing_losses
from keras_mdr.layers.experts.expert_bank import ExpertBank
from keras_mdr.layers.experts.noisy_top_k_gate import NoisyTopKGate
from keras_mdr.layers.core.validation import check_positive_int, check_units

DISPATCH_MODES = ("capacity", "grouped")


@km_export("keras_mdr.layers.ConditionalExperts")
class ConditionalExperts(keras.layers.Layer):
    """`h = mean_s Shared_s(x) + sum_{j in topK(x, d)} g_j Spec_j(x)`, only the chosen experts computed.

    S domain-shared experts run on every row; a `NoisyTopKGate` on
    `[x ; e_d]` picks K of the N selectable experts per row with weights `g`
    renormalised over the K (Conditional Expert Selection of CESAA). Only the
    chosen experts run for a row (`expert_dispatch`):

    - inference always uses the drop-free grouped dispatch, so a row's output
      is the same at batch size 1 and 4096;
    - training uses `dispatch`: `"capacity"` (default, as in CESAA/Switch: a
      fixed `C = ceil(capacity_factor * K * B / N)` rows per expert, no sort
      and a compute cost fixed by `capacity_factor`, but pairs beyond an
      expert's capacity are dropped), or `"grouped"` (the inference path:
      nothing dropped, training sees exactly the function served).

    A dropped (row, expert) pair contributes zero and the row's remaining
    weights are *not* renormalised: the row falls back to its shared experts
    (always on) plus its surviving choices at their original weights. Keeping
    `g` unchanged keeps the output continuous in the gate logits, keeps the
    gate's gradient honest (the surviving weight is the one served at
    inference, where nothing is dropped) and matches Switch/GShard.

    Adaptive Expert Aggregation, added with `add_loss` in training only:
    `-mutual_information_weight * I(D; J)` on the routing probabilities `pi`
    (`routing_losses.domain_expert_mutual_information`) and
    `load_balance_weight * N sum_j f_j P_j`
    (`routing_losses.load_balancing_loss`); a weight of 0 switches a loss off.
    The default MI weight 0.1 was chosen on the synthetic data
    (`benchmarks/results/cesaa_learning.md`): at 0.01 the routing hardly
    depends on the domain (`I(D; J)` = 0.04 nats of log 3 = 1.10), at 0.1
    each domain settles on its own experts (0.71 nats) at the same AUC. The
    load-balancing default 0.01 is Switch's.

    All experts are MLPs of the same `units` with `activation` after every
    layer (`ExpertBank` weights; the routed ones are evaluated sparsely). The
    experts have no dropout: the grouped and capacity paths would need a
    per-slot mask each and routing noise already regularises.

    Args:
        units: widths of every expert's layers; the output width is
            `units[-1]`.
        num_experts: N, the selectable experts.
        top_k: K, experts chosen per row (<= N).
        num_domains: D.
        num_shared_experts: S >= 1, always on (the fallback of a dropped
            pair).
        domain_embedding_dim: width of the gate's domain embedding.
        noisy_gating: trainable gate noise in training (`NoisyTopKGate`).
        capacity_factor: `cf > 0` of the capacity dispatch.
        dispatch: training dispatch, `"capacity"` or `"grouped"`.
        tile_size: rows per tile of the grouped dispatch.
        activation: activation of the experts' layers.
        mutual_information_weight: weight of `-I(D; J)`.
        load_balance_weight: weight of the load-balancing loss.
        seed: seed of the gate noise.

    Call arguments:
        inputs: `[B, F]`.
        domain_ids: `[B]` int in `[0, num_domains)`.
        training: gate noise, training dispatch and auxiliary losses.

    Returns:
        `[B, units[-1]]`.

    Example:
    >>> layer = ConditionalExperts([16], num_experts=8, top_k=2, num_domains=3)
    >>> layer(np.ones((5, 12)), np.array([0, 2, 1, 2, 0])).shape
    (5, 16)

    Reference: Dong et al., "Adaptive Conditional Expert Selection Network for
    Multi-domain Recommendation" (CESAA), arXiv:2411.06826, 2024.
    """

    def __init__(
        self,
        units,
        num_experts,
        top_k,
        num_domains,
        num_shared_experts=1,
        domain_embedding_dim=8,
        noisy_gating=True,
        capacity_factor=1.25,
        dispatch="capacity",
        tile_size=64,
        activation="relu",
        mutual_information_weight=0.1,
        load_balance_weight=0.01,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_units("units", units)
        self.num_experts = check_positive_int("num_experts", num_experts)
        self.top_k = check_positive_int("top_k", top_k)
        self.num_domains = check_positive_int("num_domains", num_domains)
        self.num_shared_experts = check_positive_int("num_shared_experts", num_shared_experts)
        self.domain_embedding_dim = domain_embedding_dim
        self.noisy_gating = bool(noisy_gating)
        if not float(capacity_factor) > 0:
            raise ValueError(f"capacity_factor must be > 0, got {capacity_factor!r}")
        self.capacity_factor = float(capacity_factor)
        if dispatch not in DISPATCH_MODES:
            raise ValueError(f"dispatch must be one of {DISPATCH_MODES}, got {dispatch!r}")
        self.dispatch = dispatch
        self.tile_size = check_positive_int("tile_size", tile_size)
        self.activation = activation
        for name, weight in (
            ("mutual_information_weight", mutual_information_weight),
            ("load_balance_weight", load_balance_weight),
        ):
            if not float(weight) >= 0:
                raise ValueError(f"{name} must be >= 0, got {weight!r}")
        self.mutual_information_weight = float(mutual_information_weight)
        self.load_balance_weight = float(load_balance_weight)
        self.seed = seed
        self.gate = NoisyTopKGate(
            num_experts, top_k, num_domains, domain_embedding_dim, noisy=noisy_gating, seed=seed, name="gate"
        )
        self.shared_experts = ExpertBank(num_shared_experts, self.units, activation, name="shared_experts")
        self.experts = ExpertBank(num_experts, self.units, activation, name="experts")

    def build(self, inputs_shape, domain_ids_shape=None):
        self.gate.build(inputs_shape, domain_ids_shape)
        self.shared_experts.build(inputs_shape)
        self.experts.build(inputs_shape)

    def route(self, inputs, domain_ids):
        """Inference routing: `(expert_ids [B, K], g [B, K])` (no noise)."""
        _, expert_ids, weights = self.gate(inputs, domain_ids, training=False)
        return expert_ids, weights

    def call(self, inputs, domain_ids, training=None):
        domain_ids = ops.cast(domain_ids, "int32")
        probabilities, expert_ids, weights = self.gate(inputs, domain_ids, training=training)
        if training:
            if self.mutual_information_weight:
                information = routing_losses.domain_expert_mutual_information(
                    probabilities, domain_ids, self.num_domains
                )
                self.add_loss(-self.mutual_information_weight * information)
            if self.load_balance_weight:
                balance = routing_losses.load_balancing_loss(probabilities, expert_ids, self.num_experts)
                self.add_loss(self.load_balance_weight * balance)

        weights = ops.cast(weights, self.compute_dtype)  # the gate routes in float32; experts mix in 16 bits
        shared = ops.mean(self.shared_experts(inputs), axis=1)
        experts = (self.experts.kernels, self.experts.biases, self.experts.activation)
        if training and self.dispatch == "capacity":
            routed = expert_dispatch.dispatch_with_capacity(
                inputs, expert_ids, weights, *experts, self.capacity_factor
            )
        else:
            routed = expert_dispatch.dispatch_grouped(inputs, expert_ids, weights, *experts, self.tile_size)
        return shared + routed

    def compute_output_shape(self, inputs_shape, domain_ids_shape=None):
        return tuple(inputs_shape[:-1]) + (self.units[-1],)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            num_experts=self.num_experts,
            top_k=self.top_k,
            num_domains=self.num_domains,
            num_shared_experts=self.num_shared_experts,
            domain_embedding_dim=self.domain_embedding_dim,
            noisy_gating=self.noisy_gating,
            capacity_factor=self.capacity_factor,
            dispatch=self.dispatch,
            tile_size=self.tile_size,
            activation=self.activation,
            mutual_information_weight=self.mutual_information_weight,
            load_balance_weight=self.load_balance_weight,
            seed=self.seed,
        )
        return config
