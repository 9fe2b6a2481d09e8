"""Parameterised hypercomplex multiplication (PHM): a dense kernel built as a sum of Kronecker products."""

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.core.validation import check_positive_int


def phm_kernel(rules, left, right):
    """`H = sum_i R_i ⊗ (L_i R'_i)`, built once (never per row).

    Args:
        rules: `[n, n, n]`, the rule matrices `R_i [n, n]`.
        left: `[n, in / n, k]`.
        right: `[n, k, out / n]`.

    Returns:
        `[in, out]`, with `H[p a + x, q b + y] = sum_i R_i[p, q] W_i[x, y]`,
        `W_i = L_i R'_i [a, b]`.
    """
    n, a, b = rules.shape[0], left.shape[1], right.shape[2]
    blocks = ops.einsum("iak,ikb->iab", left, right)
    return ops.reshape(ops.einsum("ipq,ixy->pxqy", rules, blocks), (n * a, n * b))


@km_export("keras_mdr.layers.PHMRule")
class PHMRule(keras.layers.Layer):
    """The owner of Compacter's shared rule matrices `R_i [n, n]`, `i = 1..n`.

    Pass one instance to every `CompacterAdapter` (or `PHMDense`) that shares
    the rules: they read its weight, so the rules are one variable. The
    sharing survives `.keras` save and load: the layers that hold the rule
    (`PHMDense`, `CompacterAdapter`, and `TransformerBlock` for its adapters)
    return the layer object itself from `get_config`, so Keras' object-sharing
    scope serialises it once and loading rebuilds one object. A custom layer
    that keeps such adapters in its own config must do the same (return the
    objects, not `serialize_keras_object` dicts, which Keras copies before
    it sees the second user).

    Args:
        phm_dim: n.
        initializer: initializer of `R [n, n, n]`.

    Example:
    >>> rule = PHMRule(phm_dim=2)
    >>> first, second = CompacterAdapter(4, phm_dim=2, rule=rule), CompacterAdapter(8, phm_dim=2, rule=rule)

    Reference: Zhang et al., "Beyond Fully-Connected Layers with Quaternions:
    Parameterization of Hypercomplex Multiplications with 1/n Parameters",
    ICLR 2021; Mahabadi et al., "Compacter: Efficient Low-Rank Hypercomplex
    Adapter Layers", NeurIPS 2021.
    """

    def __init__(self, phm_dim, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.phm_dim = check_positive_int("phm_dim", phm_dim)
        self.initializer = keras.initializers.get(initializer)

    def build(self, inputs_shape=None):
        n = self.phm_dim
        self.rules = self.add_weight(name="rules", shape=(n, n, n), initializer=self.initializer)

    def get_config(self):
        config = super().get_config()
        config.update(phm_dim=self.phm_dim, initializer=keras.initializers.serialize(self.initializer))
        return config


def resolve_rule(rule, phm_dim):
    """The `PHMRule` a PHM layer uses: `rule` (a layer, or its config from a saved model), or a new one."""
    if isinstance(rule, dict):
        rule = keras.saving.deserialize_keras_object(rule)
    if rule is None:
        return PHMRule(phm_dim, name="rule")
    if not isinstance(rule, PHMRule) or rule.phm_dim != phm_dim:
        received = f"a PHMRule with phm_dim={rule.phm_dim}" if isinstance(rule, PHMRule) else repr(rule)
        raise ValueError(f"rule must be a PHMRule with phm_dim={phm_dim}, got {received}")
    return rule


@km_export("keras_mdr.layers.PHMDense")
class PHMDense(keras.layers.Layer):
    """`y = x H + b` with `H = sum_i R_i ⊗ (L_i R'_i)`: a dense layer with about `1/n` of the parameters.

    `R_i [n, n]` come from a `PHMRule` (shared across layers, or this layer's
    own), `L_i [in/n, k]` and `R'_i [k, out/n]` are this layer's (rank `k`:
    Compacter's low-rank factorisation of the blocks `W_i`). `H [in, out]` is
    built once per call, then one matmul: never a per-row weight.

    Args:
        units: out; must be divisible by n.
        phm_dim: n; the input width must be divisible by it.
        phm_rank: k.
        rule: a `PHMRule` with `phm_dim` n to share, or None for an own one.
        use_bias: add `b [out]`.
        kernel_initializer: initializer of `L` and `R'`.
        right_initializer: initializer of `R'` instead (`"zeros"` makes `H`
            start at zero).

    Call arguments:
        inputs: `[..., in]`.

    Returns:
        `[..., out]`.

    Example:
    >>> PHMDense(8, phm_dim=2)(np.ones((3, 4), "float32")).shape
    TensorShape([3, 8])

    Reference: Zhang et al., ICLR 2021; Mahabadi et al., NeurIPS 2021.
    """

    def __init__(
        self,
        units,
        phm_dim,
        phm_rank=1,
        rule=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        right_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.phm_dim = check_positive_int("phm_dim", phm_dim)
        self.phm_rank = check_positive_int("phm_rank", phm_rank)
        if self.units % self.phm_dim:
            raise ValueError(f"units must be divisible by phm_dim={self.phm_dim}, got {units!r}")
        self.rule = resolve_rule(rule, self.phm_dim)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.right_initializer = keras.initializers.get(right_initializer or kernel_initializer)

    def build(self, inputs_shape):
        n, k, width = self.phm_dim, self.phm_rank, inputs_shape[-1]
        if width is None or width % n:
            raise ValueError(f"the inputs' last dimension must be divisible by phm_dim={n}, got {tuple(inputs_shape)}")
        if not self.rule.built:
            self.rule.build()
        self.left = self.add_weight(name="left", shape=(n, width // n, k), initializer=self.kernel_initializer)
        self.right = self.add_weight(name="right", shape=(n, k, self.units // n), initializer=self.right_initializer)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def kernel(self):
        """`H [in, out]`."""
        return phm_kernel(self.rule.rules, self.left, self.right)

    def call(self, inputs):
        y = ops.matmul(inputs, self.kernel())
        return y if self.bias is None else y + self.bias

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            phm_dim=self.phm_dim,
            phm_rank=self.phm_rank,
            rule=self.rule,
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            right_initializer=keras.initializers.serialize(self.right_initializer),
        )
        return config
