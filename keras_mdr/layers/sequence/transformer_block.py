"""A post-LN Transformer encoder block (SASRec's) with adapter sites and LoRA on its projections."""

import math

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.adapters.lora_dense import LoRADense
from keras_mdr.layers.core.validation import check_positive_int, check_rate

ADAPTER_SITES = ("attention_adapter", "ffn_adapter", "parallel_attention_adapter", "parallel_ffn_adapter")
LORA_TARGETS = ("query", "key", "value", "attention_output")
_KEEP = object()  # `with_adapters`: keep what the block has


def attention_mask(padding_mask, length, causal):
    """Which keys each query may attend to, or None when every key may be.

    Args:
        padding_mask: `[B, L]` (bool, or 0/1 numbers; true for real
            positions), or None.
        length: L.
        causal: forbid attending to later positions.

    Returns:
        bool `[B, L, L]` (`[1, L, L]` without a padding mask; query on axis
        1, key on axis 2), or None.
    """
    mask = None
    if padding_mask is not None:
        mask = ops.expand_dims(ops.cast(padding_mask, "bool"), 1)
    if causal:
        positions = ops.arange(length)
        lower = ops.expand_dims(positions, 1) >= ops.expand_dims(positions, 0)
        lower = ops.expand_dims(lower, 0)
        mask = lower if mask is None else ops.logical_and(mask, lower)
    return mask


def _large_negative(dtype):
    # Finite in the logits' dtype, so a softmax over an all-masked row has no inf - inf.
    return -3e4 if keras.backend.standardize_dtype(dtype) == "float16" else -1e9


def masked_softmax(logits, mask):
    """Softmax over the last axis among the keys `mask` allows (bool, broadcast to `logits`).

    A query with no allowed key attends to nothing: its weights are all 0,
    never a uniform row or NaN.
    """
    weights = ops.softmax(ops.where(mask, logits, _large_negative(logits.dtype)), axis=-1)
    return ops.where(mask, weights, ops.zeros_like(weights))


@km_export("keras_mdr.layers.TransformerBlock")
class TransformerBlock(keras.layers.Layer):
    """A post-LN Transformer encoder block with adapter sites, as in SASRec's code.

    For `x [B, L, d]`, with optional adapters `A_*` (serial) and `P_*`
    (parallel, added once with `scale`):

        h = LN_1(x + A_att(Drop(Attn(x))) + scale * P_att(x))
        y = LN_2(h + A_ffn(Drop(FFN(h))) + scale * P_ffn(h))
        Attn(x) = concat_heads(softmax(Q K^T / sqrt(d / H) + mask) V) W_O
        FFN(h)  = act(h W_1 + b_1) W_2 + b_2

    `Q = x W_Q`, `K = x W_K`, `V = x W_V` and the output projection `W_O` are
    plain `keras.layers.Dense` sublayers (`query`, `key`, `value`,
    `attention_output`), so LoRA can wrap the trained ones (`lora_rank`). The
    attention mask combines the padding mask (padded keys are never attended
    to) and, with `causal=True`, the causal mask (no query sees a later
    position). A query with no key to attend to (an all-padding row) gets a
    zero attention output, never NaN. Padding positions still get an output;
    the host ignores or masks them.

    Adapters go into a trained block without retraining it:
    `block.with_adapters(...)` returns a new block with this block's trained
    weights, the adapters, and (by default) everything but the adapters
    frozen (see also `add_houlsby_adapters`, `add_pfeiffer_adapters`);
    `merge_lora()` returns the block with its LoRA updates folded into the
    kernels, for export. Every adapter starts as the identity, so the new
    block's outputs equal the trained block's until the adapters train.

    Args:
        num_heads: H; `d` must be divisible by it.
        intermediate_dim: width of the feed-forward block; None means `4 d`.
        activation: the feed-forward activation (`"relu"` as SASRec, or
            `"gelu"` as BERT).
        dropout: dropout rate on the attention weights and on each
            sub-layer's output.
        causal: mask attention to later positions.
        layer_norm_epsilon: epsilon of both LayerNorms.
        kernel_initializer: initializer of the host's kernels.
        attention_adapter, ffn_adapter: layers `[B, L, d] -> [B, L, d]` applied
            to the attention / feed-forward sub-layer output before the
            residual and LayerNorm (Houlsby's sites: a `BottleneckAdapter`,
            `CompacterAdapter`), or None.
        parallel_attention_adapter, parallel_ffn_adapter: branches
            `[B, L, d] -> [B, L, d]` on the sub-layer's input, added beside
            it (a `ParallelAdapter`), or None.
        parallel_scale: `scale` of the parallel branches.
        lora_rank: wrap the `lora_targets` projections in `LoRADense` of this
            rank; None for no LoRA.
        lora_alpha: LoRA's `alpha` (None: `alpha = r`).
        lora_targets: which of `query`, `key`, `value`, `attention_output` LoRA
            wraps (Adapter4Rec: query and value).
        freeze_host: make the host's own layers non-trainable (the LoRA
            factors and the adapters stay trainable).
        trainable_norms: with `freeze_host`, keep the two LayerNorms
            trainable.

    Call arguments:
        inputs: `[B, L, d]`.
        padding_mask: `[B, L]` bool or 0/1 (true for real positions), or
            None (no padding).
        training: enables dropout.

    Returns:
        `[B, L, d]`.

    Example:
    >>> block = TransformerBlock(num_heads=2, causal=True)
    >>> x = np.random.normal(size=(2, 5, 8)).astype("float32")
    >>> y = block(x, padding_mask=np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]))
    >>> adapted = block.with_adapters(ffn_adapter=BottleneckAdapter(4), lora_rank=2)
    >>> bool(np.allclose(adapted(x, np.ones((2, 5))), block(x, np.ones((2, 5))), atol=1e-6))
    True

    Reference: Kang and McAuley, "Self-Attentive Sequential Recommendation",
    ICDM 2018 (the post-LN block of Adapter4Rec's SASRec code); Vaswani et
    al., "Attention Is All You Need", NeurIPS 2017; Fu, Yuan et al., WSDM
    2024 (the adapter sites).
    """

    def __init__(
        self,
        num_heads,
        intermediate_dim=None,
        activation="relu",
        dropout=0.0,
        causal=False,
        layer_norm_epsilon=1e-6,
        kernel_initializer="glorot_uniform",
        attention_adapter=None,
        ffn_adapter=None,
        parallel_attention_adapter=None,
        parallel_ffn_adapter=None,
        parallel_scale=1.0,
        lora_rank=None,
        lora_alpha=None,
        lora_targets=("query", "value"),
        freeze_host=False,
        trainable_norms=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.intermediate_dim = (
            None if intermediate_dim is None else check_positive_int("intermediate_dim", intermediate_dim)
        )
        self.activation = keras.activations.get(activation)
        self.dropout = check_rate("dropout", dropout)
        self.causal = bool(causal)
        if not float(layer_norm_epsilon) > 0:
            raise ValueError(f"layer_norm_epsilon must be > 0, got {layer_norm_epsilon!r}")
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        for site, adapter in zip(
            ADAPTER_SITES, (attention_adapter, ffn_adapter, parallel_attention_adapter, parallel_ffn_adapter)
        ):
            if adapter is not None and not isinstance(adapter, keras.layers.Layer):
                raise ValueError(f"{site} must be a keras Layer or None, got {adapter!r}")
        self.attention_adapter = attention_adapter
        self.ffn_adapter = ffn_adapter
        self.parallel_attention_adapter = parallel_attention_adapter
        self.parallel_ffn_adapter = parallel_ffn_adapter
        self.parallel_scale = float(parallel_scale)
        self.lora_rank = None if lora_rank is None else check_positive_int("lora_rank", lora_rank)
        self.lora_alpha = None if lora_alpha is None else float(lora_alpha)
        self.lora_targets = tuple(lora_targets)
        unknown = sorted(set(self.lora_targets) - set(LORA_TARGETS))
        if unknown:
            raise ValueError(f"lora_targets must be among {LORA_TARGETS}, got {list(lora_targets)!r}")
        self.freeze_host = bool(freeze_host)
        self.trainable_norms = bool(trainable_norms)
        self.attention_dropout = keras.layers.Dropout(self.dropout, name="attention_dropout")
        self.attention_output_dropout = keras.layers.Dropout(self.dropout, name="attention_output_dropout")
        self.ffn_output_dropout = keras.layers.Dropout(self.dropout, name="ffn_output_dropout")

    def build(self, inputs_shape, padding_mask_shape=None):
        inputs_shape = tuple(inputs_shape)
        width = inputs_shape[-1]
        if width is None or width % self.num_heads:
            raise ValueError(
                f"the inputs' last dimension must be divisible by num_heads={self.num_heads}, "
                f"got shape {inputs_shape}"
            )
        intermediate = self.intermediate_dim or 4 * width

        def dense(units, name, activation=None):
            layer = keras.layers.Dense(
                units, activation=activation, kernel_initializer=self.kernel_initializer, name=name
            )
            if self.lora_rank is not None and name in self.lora_targets:
                return LoRADense(layer, self.lora_rank, self.lora_alpha, name=f"{name}_lora")
            return layer

        self.query = dense(width, "query")
        self.key = dense(width, "key")
        self.value = dense(width, "value")
        self.attention_output = dense(width, "attention_output")
        self.attention_norm = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, name="attention_norm")
        self.ffn_inner = keras.layers.Dense(
            intermediate, activation=self.activation, kernel_initializer=self.kernel_initializer, name="ffn_inner"
        )
        self.ffn_output = keras.layers.Dense(width, kernel_initializer=self.kernel_initializer, name="ffn_output")
        self.ffn_norm = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, name="ffn_norm")

        for layer in (self.query, self.key, self.value, self.attention_output, self.attention_norm, self.ffn_norm):
            layer.build(inputs_shape)
        self.ffn_inner.build(inputs_shape)
        self.ffn_output.build(inputs_shape[:-1] + (intermediate,))
        for site in ADAPTER_SITES:
            adapter = getattr(self, site)
            if adapter is not None and not adapter.built:
                adapter.build(inputs_shape)
        if self.freeze_host:
            for name, layer in self.host_layers().items():
                layer.trainable = self.trainable_norms and name.endswith("_norm")

    def host_layers(self):
        """The host's own layers by name (the `Dense` inside a `LoRADense`), without adapters or LoRA factors."""
        names = ("query", "key", "value", "attention_output", "attention_norm", "ffn_inner", "ffn_output", "ffn_norm")
        layers = {name: getattr(self, name) for name in names}
        return {name: layer.base if isinstance(layer, LoRADense) else layer for name, layer in layers.items()}

    def adapter_layers(self):
        """The adapters and `LoRADense` wrappers this block holds, by site or projection name."""
        layers = {site: getattr(self, site) for site in ADAPTER_SITES if getattr(self, site) is not None}
        if self.built:
            for name in LORA_TARGETS:
                if isinstance(getattr(self, name), LoRADense):
                    layers[name] = getattr(self, name)
        return layers

    def _split_heads(self, x):
        shape = ops.shape(x)
        return ops.reshape(x, (shape[0], shape[1], self.num_heads, x.shape[-1] // self.num_heads))

    def _attention(self, inputs, mask, training):
        q, k, v = (self._split_heads(layer(inputs)) for layer in (self.query, self.key, self.value))
        logits = ops.einsum("bqhc,bkhc->bhqk", q, k) / math.sqrt(q.shape[-1])
        weights = ops.softmax(logits, axis=-1) if mask is None else self._masked_softmax(logits, mask)
        weights = self.attention_dropout(weights, training=training)
        attended = ops.einsum("bhqk,bkhc->bqhc", weights, v)
        shape = ops.shape(inputs)
        return self.attention_output(ops.reshape(attended, (shape[0], shape[1], inputs.shape[-1])))

    @staticmethod
    def _masked_softmax(logits, mask):
        return masked_softmax(logits, ops.expand_dims(mask, 1))  # one mask for every head

    def _residual(self, x, sublayer_output, adapter, parallel, norm, training):
        if adapter is not None:
            sublayer_output = adapter(sublayer_output, training=training)
        total = x + sublayer_output
        if parallel is not None:
            total = total + self.parallel_scale * parallel(x, training=training)
        return norm(total)

    def call(self, inputs, padding_mask=None, training=None):
        mask = attention_mask(padding_mask, ops.shape(inputs)[1], self.causal)
        attended = self.attention_output_dropout(self._attention(inputs, mask, training), training=training)
        h = self._residual(
            inputs, attended, self.attention_adapter, self.parallel_attention_adapter, self.attention_norm, training
        )
        transformed = self.ffn_output_dropout(self.ffn_output(self.ffn_inner(h)), training=training)
        return self._residual(h, transformed, self.ffn_adapter, self.parallel_ffn_adapter, self.ffn_norm, training)

    def compute_output_shape(self, inputs_shape, padding_mask_shape=None):
        return inputs_shape

    def with_adapters(
        self,
        attention_adapter=_KEEP,
        ffn_adapter=_KEEP,
        parallel_attention_adapter=_KEEP,
        parallel_ffn_adapter=_KEEP,
        parallel_scale=_KEEP,
        lora_rank=_KEEP,
        lora_alpha=_KEEP,
        lora_targets=_KEEP,
        freeze_host=True,
        trainable_norms=False,
    ):
        """A new block with this (built, trained) block's weights plus the given adapters.

        Arguments not given keep what this block has (its adapters are
        carried over as the same layer objects, with their weights). The new
        block copies the host's weights (and the LoRA factors where the rank
        is unchanged); with `freeze_host` only the adapters and LoRA factors
        (and with `trainable_norms` the LayerNorms) train. This block is left
        untouched. Every new adapter starts as the identity, so the new block
        computes what this one does until the adapters train.

        The new block is trainable even if this one was frozen (`freeze_host`
        says what stays fixed). Setting `trainable` on it (or on a model that
        holds it) afterwards reaches every sublayer, as Keras does, and would
        unfreeze the host.

        To swap it into a functional model:
        `keras.models.clone_model(model, clone_function=lambda layer:
        layer.with_adapters(...) if isinstance(layer, TransformerBlock) else
        layer)` (the other layers are then shared with `model`).

        Returns:
            A built `TransformerBlock` with the same name.
        """
        given = dict(
            attention_adapter=attention_adapter,
            ffn_adapter=ffn_adapter,
            parallel_attention_adapter=parallel_attention_adapter,
            parallel_ffn_adapter=parallel_ffn_adapter,
            parallel_scale=parallel_scale,
            lora_rank=lora_rank,
            lora_alpha=lora_alpha,
            lora_targets=lora_targets,
        )
        overrides = {key: value for key, value in given.items() if value is not _KEEP}
        return self._rebuilt(dict(overrides, freeze_host=freeze_host, trainable_norms=trainable_norms, trainable=True))

    def merge_lora(self):
        """This block with each LoRA update folded into its kernel (`W0 + (alpha / r) A B`), for export.

        The result has plain `Dense` projections and gives the same outputs
        (up to float rounding); this block is left untouched.
        """
        return self._rebuilt(dict(lora_rank=None, lora_alpha=None))

    def _rebuilt(self, overrides):
        if not self.built:
            raise ValueError(f"{self.name}: call the block (or train it) before adding adapters or merging LoRA")
        config = dict(self.get_config(), **overrides)
        block = type(self)(**config)
        block.build_from_config(self.get_build_config())
        sources = self.host_layers()
        for name, layer in block.host_layers().items():
            weights = sources[name].get_weights()
            wrapper = getattr(self, name)
            if isinstance(wrapper, LoRADense) and not isinstance(getattr(block, name), LoRADense):
                weights[0] = ops.convert_to_numpy(wrapper.merged_kernel())
            layer.set_weights(weights)
        for name in LORA_TARGETS:
            source, target = getattr(self, name), getattr(block, name)
            if isinstance(source, LoRADense) and isinstance(target, LoRADense) and source.rank == target.rank:
                target.lora_a.assign(source.lora_a)
                target.lora_b.assign(source.lora_b)
        return block

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim,
            activation=keras.activations.serialize(self.activation),
            dropout=self.dropout,
            causal=self.causal,
            layer_norm_epsilon=self.layer_norm_epsilon,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            parallel_scale=self.parallel_scale,
            lora_rank=self.lora_rank,
            lora_alpha=self.lora_alpha,
            lora_targets=list(self.lora_targets),
            freeze_host=self.freeze_host,
            trainable_norms=self.trainable_norms,
        )
        # The adapter objects themselves, not their serialised dicts: Keras then serialises a layer that two
        # adapters share (a Compacter rule) once and `.keras` loading rebuilds one shared object.
        config.update({site: getattr(self, site) for site in ADAPTER_SITES})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for site in ADAPTER_SITES:
            if isinstance(config.get(site), dict):
                config[site] = keras.saving.deserialize_keras_object(config[site])
        return cls(**config)
