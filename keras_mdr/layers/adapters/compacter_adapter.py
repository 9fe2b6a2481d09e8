"""Compacter: a bottleneck adapter whose projections are PHM layers with rules shared across layers."""

from keras_mdr.api_export import km_export
from keras_mdr.layers.adapters.bottleneck_adapter import BottleneckAdapter
from keras_mdr.layers.adapters.phm_dense import PHMDense, resolve_rule
from keras_mdr.layers.core.validation import check_positive_int


@km_export("keras_mdr.layers.CompacterAdapter")
class CompacterAdapter(BottleneckAdapter):
    """`y = x + H_u Drop(act(H_d x + b_d)) + b_u`, each `H = sum_i R_i ⊗ (L_i R'_i)` (a `PHMDense`).

    A `BottleneckAdapter` whose down- and up-projections are PHM layers: the
    rule matrices `R_i [n, n]` live in a `PHMRule` shared by every adapter
    given the same `rule` (Compacter shares them across all layers), the
    rank-`k` factors `L_i`, `R'_i` are per projection. Each `H` is built once
    per call, never per row. The up-projection's `R'` and bias start at zero,
    so `H_u = 0` and the adapter is the identity at init.

    Differs from the Adapter4Rec reference code: its hypercomplex adapter
    returns `H_u act(H_d x)` with no skip path, and the host puts it where the
    sub-layer output was, so the trained sub-layer's output is dropped; here
    the adapter keeps the skip (`x + ...`). Its dropout is also applied here.

    Args:
        bottleneck: m; must be divisible by `phm_dim`.
        phm_dim: n; the host width must be divisible by it.
        phm_rank: k, the rank of each block `W_i = L_i R'_i`.
        rule: a `PHMRule` (with `phm_dim` n) shared with other adapters, or
            None for an own one.
        activation, dropout, kernel_initializer: as `BottleneckAdapter`.

    Call arguments:
        inputs: `[..., d]`.
        training: enables dropout.

    Returns:
        `[..., d]`.

    Example:
    >>> rule = PHMRule(phm_dim=4)
    >>> block = TransformerBlock(num_heads=2)
    >>> _ = block(np.ones((1, 3, 16), "float32"))
    >>> adapted = add_houlsby_adapters(block, make_adapter=lambda: CompacterAdapter(8, phm_dim=4, rule=rule))

    Reference: Mahabadi et al., "Compacter: Efficient Low-Rank Hypercomplex
    Adapter Layers", NeurIPS 2021; Fu, Yuan et al., WSDM 2024.
    """

    def __init__(
        self,
        bottleneck,
        phm_dim=4,
        phm_rank=1,
        rule=None,
        activation="relu",
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(
            bottleneck, activation=activation, dropout=dropout, kernel_initializer=kernel_initializer, **kwargs
        )
        self.phm_dim = check_positive_int("phm_dim", phm_dim)
        self.phm_rank = check_positive_int("phm_rank", phm_rank)
        if self.bottleneck % self.phm_dim:
            raise ValueError(f"bottleneck must be divisible by phm_dim={self.phm_dim}, got {bottleneck!r}")
        self.rule = resolve_rule(rule, self.phm_dim)

    def projection(self, units, name, zero):
        return PHMDense(
            units,
            self.phm_dim,
            self.phm_rank,
            rule=self.rule,
            kernel_initializer=self.kernel_initializer,
            right_initializer="zeros" if zero else None,
            name=name,
        )

    def get_config(self):
        config = super().get_config()
        config.update(phm_dim=self.phm_dim, phm_rank=self.phm_rank, rule=self.rule)
        return config
