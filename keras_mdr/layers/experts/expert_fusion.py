"""M3oE's two-level fusion of shared, domain and task experts."""

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.core.validation import check_positive_int

STRUCTURE_WEIGHT_NAMES = (
    "structure_domain_balance",
    "structure_task_balance",
    "structure_domain_scale",
    "structure_task_scale",
)


def _balance(own, experts, weight):
    """`w own + (1 - w) / (N - 1) * (sum(experts) - own)`; `own` alone when N = 1.

    With one expert in the view there is nothing to balance against, so the
    mean of the others is taken to be `own` itself (no division by zero, and
    the balance weight gets a zero gradient rather than none).
    """
    count = experts.shape[1]
    if count == 1:
        others = own
    else:
        others = (ops.sum(experts, axis=1, keepdims=own.ndim == 3) - own) / (count - 1)
    return weight * own + (1.0 - weight) * others


@km_export("keras_mdr.layers.ExpertFusion")
class ExpertFusion(keras.layers.Layer):
    """`f_{d,t} = G_{d,t} S + beta_d Dm~_d + beta_t Tk~_t`: M3oE's expert fusion.

    Level one balances each view against itself:
    `Dm~_d = w_d Dm_d + (1 - w_d) / (D - 1) sum_{d' != d} Dm_{d'}`, and the same
    over tasks with `w_t`. Level two adds the gated shared experts and the two
    balanced views, scaled by `beta_d` and `beta_t`. The four structure
    weights `w_d, w_t, beta_d, beta_t` are `sigmoid` of the scalar weights
    named `structure_domain_balance`, `structure_task_balance`,
    `structure_domain_scale` and `structure_task_scale` (`structure_weights`),
    kept apart from the network so that a bi-level trainer can step them on
    validation batches. With D = 1 (or T = 1) the view's balanced expert is its
    own expert.

    With `balance_domains = P`, the other domains a domain balances against
    are those among the first P (`keras_mdr.transfer.add_domain` sets it to
    the source domains, so a new domain's expert leaves the source domains'
    views unchanged, and a new domain balances against all P):
    `Dm~_d = w_d Dm_d + (1 - w_d) mean_{d' < P, d' != d} Dm_{d'}`.

    Args:
        structure_initializer: initializer of the four structure logits
            (`"zeros"`: every structure weight starts at 0.5).
        balance_domains: P, or `None` for every domain.

    Call arguments:
        shared_experts: `S [B, E, U]`, the shared experts' outputs.
        gates: `G [B, T, E]`, each row's (domain, task) gates over `S`.
        domain_experts: `Dm [B, D, U]`, every domain expert on every row (the
            balance needs all of them).
        task_experts: `Tk [B, T, U]`.
        domain_ids: `[B]` int, each row's domain `d`.

    Returns:
        `f [B, T, U]`: row b's fused input to its tower for each task.

    Example:
    >>> fusion = ExpertFusion()
    >>> f = fusion(np.ones((5, 4, 8)), np.full((5, 2, 4), 0.25), np.ones((5, 3, 8)),
    ...            np.ones((5, 2, 8)), np.array([0, 2, 1, 2, 0]))
    >>> tuple(f.shape)
    (5, 2, 8)

    Reference: Zhang et al., "M3oE: Multi-Domain Multi-Task Mixture-of Experts
    Recommendation Framework", SIGIR 2024.
    """

    def __init__(self, structure_initializer="zeros", balance_domains=None, **kwargs):
        super().__init__(**kwargs)
        self.structure_initializer = keras.initializers.get(structure_initializer)
        self.balance_domains = None if balance_domains is None else check_positive_int(
            "balance_domains", balance_domains
        )

    def build(self, shared_experts_shape, gates_shape, domain_experts_shape, task_experts_shape, domain_ids_shape):
        for name in STRUCTURE_WEIGHT_NAMES:
            setattr(self, name, self.add_weight(name=name, shape=(), initializer=self.structure_initializer))

    @property
    def structure_weights(self):
        """The four structure logits `[w_d, w_t, beta_d, beta_t]` (before the sigmoid)."""
        return [getattr(self, name) for name in STRUCTURE_WEIGHT_NAMES]

    def structure_values(self):
        """`{name: sigmoid(logit)}` of the four structure weights, as floats."""
        return {
            name: float(ops.convert_to_numpy(ops.sigmoid(w)))
            for name, w in zip(STRUCTURE_WEIGHT_NAMES, self.structure_weights)
        }

    def call(self, shared_experts, gates, domain_experts, task_experts, domain_ids):
        w_d, w_t, beta_d, beta_t = [ops.sigmoid(w) for w in self.structure_weights]
        domain_ids = ops.cast(domain_ids, "int32")
        own_domain = ops.take_along_axis(domain_experts, ops.reshape(domain_ids, (-1, 1, 1)), axis=1)[:, 0]
        if self.balance_domains is None or self.balance_domains >= domain_experts.shape[1]:
            domain_view = _balance(own_domain, domain_experts, w_d)
        else:
            domain_view = self._pooled_balance(own_domain, domain_experts, domain_ids, w_d)
        task_view = _balance(task_experts, task_experts, w_t)
        # Not `mix`: at these shapes its gradients were slower than einsum's (benchmarks/row_mixing.py).
        shared = ops.einsum("bte,beu->btu", gates, shared_experts)
        return shared + beta_d * ops.expand_dims(domain_view, 1) + beta_t * task_view

    def _pooled_balance(self, own, domain_experts, domain_ids, weight):
        """`_balance` against the first `balance_domains` domains' experts (less the row's own, if among them)."""
        pool = self.balance_domains
        in_pool = ops.expand_dims(ops.cast(domain_ids < pool, own.dtype), 1)
        others = ops.sum(domain_experts[:, :pool], axis=1) - own * in_pool
        count = pool - in_pool
        # A source domain alone in a pool of one has no other domain: its own expert stands in (as in `_balance`).
        others = ops.where(count > 0, others / ops.maximum(count, 1.0), own)
        return weight * own + (1.0 - weight) * others

    def compute_output_shape(
        self, shared_experts_shape, gates_shape, domain_experts_shape, task_experts_shape, domain_ids_shape
    ):
        return tuple(task_experts_shape)

    def get_config(self):
        config = super().get_config()
        config["structure_initializer"] = keras.initializers.serialize(self.structure_initializer)
        config["balance_domains"] = self.balance_domains
        return config
