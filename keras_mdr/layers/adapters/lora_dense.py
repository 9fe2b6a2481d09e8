"""LoRA: a trained dense layer kept frozen, plus a trainable low-rank update that merges away."""

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.core.validation import check_positive_int, check_rate
from keras_mdr.layers.routing import grouped_dispatch


def low_rank_delta(x, a, b, scale, group_ids=None, tile_size=64):
    """`scale * (x A) B`, evaluated right to left, without forming `A B`.

    With `group_ids`, each row uses its own group's factors (a per-domain
    LoRA on a shared layer): rows are routed through a grouped matmul (see
    `grouped_dispatch`), so a row pays for its own group's factors only.

    Args:
        x: `[..., in]`; `[N, in]` when routed.
        a: `[in, r]`, or `[G, in, r]` when routed.
        b: `[r, out]`, or `[G, r, out]` when routed.
        scale: a float, `alpha / r`.
        group_ids: `[N]` int in `[0, G)`, or None.
        tile_size: rows per tile of the grouped matmul.

    Returns:
        `[..., out]`.
    """
    if group_ids is None:
        return scale * ops.matmul(ops.matmul(x, a), b)
    plan = grouped_dispatch.plan_groups(group_ids, a.shape[0], tile_size)
    tiles = grouped_dispatch.to_tiles(x, plan)
    tiles = grouped_dispatch.grouped_matmul(grouped_dispatch.grouped_matmul(tiles, a, plan), b, plan)
    return scale * grouped_dispatch.from_tiles(tiles, plan)


@km_export("keras_mdr.layers.LoRADense")
class LoRADense(keras.layers.Layer):
    """`y = act(x W0 + b + (alpha / r) (x A) B)` around a trained `keras.layers.Dense`.

    The wrapped layer (`base`) is kept as it is, the same object with the
    same kernel variable, and frozen (`base.trainable = False`); only
    `A [in, r]` (random at init) and `B [r, out]` (zero at init) train, so the
    wrapped layer's outputs are unchanged until training. `merge()` folds the
    update into the kernel, `W0 + (alpha / r) A B`, and returns a plain
    `Dense`, so an exported model pays nothing for LoRA.

    Differs from the Adapter4Rec reference code: it replaces the trained
    query and value projections with fresh `lora.Linear` layers, so the
    pre-trained `W_Q`, `W_V` are thrown away and re-initialised at random.
    Here the trained layer is wrapped, never re-created.

    Note: setting `trainable = True` on this layer (or on a model that holds
    it) unfreezes `base` too, as Keras propagates `trainable` to sublayers.

    Args:
        base: a built or unbuilt `keras.layers.Dense` (not quantized, without
            Keras' own LoRA enabled).
        rank: r.
        alpha: the update's scale is `alpha / r`; None means `alpha = r`.
        dropout: dropout rate on the input of the low-rank path.
        a_initializer: initializer of `A`.

    Call arguments:
        inputs: `[..., in]`.
        training: enables dropout.

    Returns:
        `[..., out]`.

    Example:
    >>> dense = keras.layers.Dense(8)
    >>> x = np.ones((2, 16), "float32")
    >>> trained = dense(x)
    >>> lora = LoRADense(dense, rank=2)
    >>> bool(np.allclose(lora(x), trained)), lora.base is dense
    (True, True)
    >>> merged = lora.merge()                # a plain Dense with W0 + (alpha / r) A B

    Reference: Hu et al., "LoRA: Low-Rank Adaptation of Large Language
    Models", ICLR 2022; Fu, Yuan et al., WSDM 2024.
    """

    def __init__(self, base, rank, alpha=None, dropout=0.0, a_initializer="he_uniform", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(base, keras.layers.Dense):
            raise ValueError(f"base must be a keras.layers.Dense, got {type(base).__name__}: {base!r}")
        if base.lora_rank or base.lora_enabled or base.quantization_mode:
            raise ValueError(
                f"base must be a plain Dense; {base.name!r} has Keras' own LoRA or is quantized "
                f"(lora_rank={base.lora_rank}, quantization_mode={base.quantization_mode!r})"
            )
        self.rank = check_positive_int("rank", rank)
        if alpha is not None and not float(alpha) > 0:
            raise ValueError(f"alpha must be > 0, got {alpha!r}")
        self.alpha = float(rank if alpha is None else alpha)
        self.dropout = check_rate("dropout", dropout)
        self.a_initializer = keras.initializers.get(a_initializer)
        self.base = base
        self.base.trainable = False
        self.dropout_layer = keras.layers.Dropout(self.dropout, name="dropout")

    @property
    def scale(self):
        """`alpha / r`."""
        return self.alpha / self.rank

    def build(self, inputs_shape):
        if not self.base.built:
            self.base.build(inputs_shape)
        in_dim, out_dim = self.base.kernel.shape
        if inputs_shape[-1] is not None and inputs_shape[-1] != in_dim:
            raise ValueError(
                f"inputs must have {in_dim} features (the kernel of {self.base.name!r}), got shape {inputs_shape}"
            )
        self.lora_a = self.add_weight(name="lora_a", shape=(in_dim, self.rank), initializer=self.a_initializer)
        self.lora_b = self.add_weight(name="lora_b", shape=(self.rank, out_dim), initializer="zeros")

    def call(self, inputs, training=None):
        y = ops.matmul(inputs, self.base.kernel)
        if self.base.use_bias:
            y = y + self.base.bias
        update_input = self.dropout_layer(inputs, training=training)
        y = y + low_rank_delta(update_input, self.lora_a, self.lora_b, self.scale)
        return self.base.activation(y)

    def merged_kernel(self):
        """`W0 + (alpha / r) A B`, `[in, out]`."""
        return self.base.kernel + self.scale * ops.matmul(self.lora_a, self.lora_b)

    def merge(self):
        """A new, built plain `Dense` (the base's config) whose kernel is `W0 + (alpha / r) A B`.

        Its predictions equal this layer's (in inference, up to float
        rounding); the base layer and its kernel are left untouched.
        """
        merged = keras.layers.Dense.from_config(self.base.get_config())
        merged.build((None, self.base.kernel.shape[0]))
        merged.kernel.assign(self.merged_kernel())
        if self.base.use_bias:
            merged.bias.assign(self.base.bias)
        return merged

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape[:-1]) + (self.base.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            base=keras.saving.serialize_keras_object(self.base),
            rank=self.rank,
            alpha=self.alpha,
            dropout=self.dropout,
            a_initializer=keras.initializers.serialize(self.a_initializer),
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["base"] = keras.saving.deserialize_keras_object(config["base"])
        return cls(**config)
