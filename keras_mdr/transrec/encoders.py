"""TransRec's encoders: an item encoder (id embedding or text Transformer) and the SASRec user encoder.

All three are Keras layers over `keras.ops` (XLA-compilable). The two
Transformer encoders are stacks of `keras_mdr.layers.TransformerBlock`, so the
adapters of `keras_mdr.layers` go into them (`adapted`), and each records its
blocks and adapters in its config, so an adapted model saves and loads as it
is.

`freeze_host=True` makes an encoder's own layers (embeddings, positions,
LayerNorm, projection) non-trainable; the blocks carry their own
`freeze_host` (see `TransformerBlock.with_adapters`).
"""

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.adapters.k_adapter import KAdapter
from keras_mdr.layers.adapters.soft_prompt import SoftPrompt
from keras_mdr.layers.core.validation import check_positive_int, check_rate
from keras_mdr.layers.sequence.transformer_block import TransformerBlock

POOLINGS = ("mean", "cls")
_KEEP = object()  # `adapted`: keep what the encoder has


@keras.saving.register_keras_serializable(package="keras_mdr")
def gelu_approximate(x):
    """GELU with the tanh approximation, as BERT (and keras-hub's BERT) computes it."""
    return keras.activations.gelu(x, approximate=True)


def _layer(value):
    """A layer, or the layer a saved config describes."""
    return keras.saving.deserialize_keras_object(value) if isinstance(value, dict) else value


def _blocks(blocks, num_blocks, make):
    if blocks is None:
        return [make(i) for i in range(num_blocks)]
    blocks = [_layer(b) for b in blocks]
    if len(blocks) != num_blocks or not all(isinstance(b, TransformerBlock) for b in blocks):
        raise ValueError(f"blocks must be {num_blocks} TransformerBlock layers, got {blocks!r}")
    return blocks


def _optional(value, cls, name):
    value = _layer(value)
    if value is not None and not isinstance(value, cls):
        raise ValueError(f"{name} must be a {cls.__name__} or None, got {value!r}")
    return value


class _TransformerStack(keras.layers.Layer):
    """What both Transformer encoders share: the block stack, a K-Adapter beside it, freezing, `adapted`."""

    def __init__(self, num_blocks, num_heads, dropout, blocks, k_adapter, freeze_host, trainable_norms, **kwargs):
        super().__init__(**kwargs)
        self.num_blocks = check_positive_int("num_blocks", num_blocks)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.dropout = check_rate("dropout", dropout)
        self.freeze_host = bool(freeze_host)
        self.trainable_norms = bool(trainable_norms)
        self.blocks = _blocks(blocks, self.num_blocks, self.make_block)
        self.k_adapter = _optional(k_adapter, KAdapter, "k_adapter")
        if self.k_adapter is not None and self.k_adapter.num_layers != self.num_blocks:
            raise ValueError(
                f"k_adapter must read num_blocks={self.num_blocks} hidden states, got num_layers={self.k_adapter.num_layers}"
            )

    def make_block(self, index):
        raise NotImplementedError

    def host_layers(self):
        """`{name: layer}` of the encoder's own layers (the blocks excluded)."""
        raise NotImplementedError

    def _freeze(self):
        if self.freeze_host:
            for name, layer in self.host_layers().items():
                layer.trainable = self.trainable_norms and name.endswith("_norm")

    def adapted(self, blocks=None, freeze_host=True, trainable_norms=False, **adapters):
        """A new encoder with this (built, trained) encoder's own weights, new blocks and adapters.

        This encoder is left untouched (build the blocks with
        `TransformerBlock.with_adapters`, which copies them).

        Args:
            blocks: `num_blocks` built `TransformerBlock`s, or None to keep
                this encoder's.
            freeze_host: freeze the encoder's own layers (embeddings,
                positions, LayerNorm, projection).
            trainable_norms: with `freeze_host`, keep its LayerNorm trainable.
            **adapters: `k_adapter=` (a `KAdapter` over the blocks' outputs)
                and, for a text encoder, `soft_prompt=` (a `SoftPrompt`);
                what is not given is kept.

        Returns:
            The new encoder, built.
        """
        config = self.get_config()
        config.update(adapters, freeze_host=freeze_host, trainable_norms=trainable_norms)
        if blocks is not None:
            config["blocks"] = list(blocks)
        encoder = type(self)(**config)
        encoder.build_from_config(self.get_build_config())
        for name, layer in encoder.host_layers().items():
            layer.set_weights(self.host_layers()[name].get_weights())
        return encoder

    def adapter_layers(self):
        """The adapters this encoder holds, in its blocks and beside them."""
        layers = [a for b in self.blocks for a in b.adapter_layers().values()]
        return layers + [a for a in (self.k_adapter, getattr(self, "soft_prompt", None)) if a is not None]

    def _run_blocks(self, x, padding_mask, training):
        states = []
        for block in self.blocks:
            x = block(x, padding_mask=padding_mask, training=training)
            states.append(x)
        if self.k_adapter is not None:
            x = self.k_adapter(states, padding_mask=padding_mask, training=training)
        return x

    def _build_blocks(self, hidden_shape):
        for block in self.blocks:
            if not block.built:
                block.build(hidden_shape)
        if self.k_adapter is not None and not self.k_adapter.built:
            self.k_adapter.build([hidden_shape] * self.num_blocks)

    def get_config(self):
        config = super().get_config()
        # Layer objects, not their configs: Keras then serialises a layer shared by several
        # adapters (Compacter's rule) once, and loading rebuilds one object.
        config.update(
            num_blocks=self.num_blocks,
            num_heads=self.num_heads,
            dropout=self.dropout,
            freeze_host=self.freeze_host,
            trainable_norms=self.trainable_norms,
            blocks=list(self.blocks),
            k_adapter=self.k_adapter,
        )
        return config


@km_export("keras_mdr.transrec.SASRecEncoder")
class SASRecEncoder(_TransformerStack):
    """The user encoder: a causal post-LN Transformer over the history's item vectors (SASRec).

    For item vectors `e [B, T, d]` (left-padded: the most recent item last)
    and learned positions `p [max_length, d]`:

        h_0 = Drop(LN(e_t + p_{max_length - T + t}))
        h_l = Block_l(h_{l-1}, padding and causal masks)

    and `h_L[:, t]` is the user after the first `t + 1` items, which scores
    the next item by a dot product. Positions count from the end, so the most
    recent item always has the last position, whatever `T <= max_length`.

    Args:
        max_length: the longest history (positions); a longer input is an
            error (truncate in preprocessing, `SequenceData` does).
        num_blocks: L.
        num_heads: attention heads per block.
        dropout: dropout of the input and inside the blocks.
        layer_norm_epsilon: of every LayerNorm (SASRec's code: 1e-6).
        blocks: restored blocks (from a config), or None for new ones.
        k_adapter: a causal `KAdapter` over the blocks' outputs, or None.
        freeze_host: make the positions and the input LayerNorm
            non-trainable.
        trainable_norms: with `freeze_host`, keep the LayerNorm trainable.

    Call arguments:
        item_vectors: `[B, T, d]`.
        padding_mask: `[B, T]` bool, true for real items.
        training: enables dropout.

    Returns:
        `[B, T, d]`.

    Example:
    >>> encoder = SASRecEncoder(max_length=5)
    >>> users = encoder(np.ones((2, 5, 8), "float32"), np.array([[0, 0, 1, 1, 1]] * 2, bool))

    Reference: Kang and McAuley, "Self-Attentive Sequential Recommendation",
    ICDM 2018; the post-LN layout of Adapter4Rec's code (Fu, Yuan et al.,
    WSDM 2024).
    """

    def __init__(
        self,
        max_length=20,
        num_blocks=2,
        num_heads=2,
        dropout=0.1,
        layer_norm_epsilon=1e-6,
        blocks=None,
        k_adapter=None,
        freeze_host=False,
        trainable_norms=False,
        **kwargs,
    ):
        self.max_length = check_positive_int("max_length", max_length)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        super().__init__(num_blocks, num_heads, dropout, blocks, k_adapter, freeze_host, trainable_norms, **kwargs)
        if self.k_adapter is not None and not self.k_adapter.causal:
            raise ValueError("the user encoder is causal: its k_adapter needs causal=True")
        self.input_dropout = keras.layers.Dropout(self.dropout, name="input_dropout")

    def make_block(self, index):
        return TransformerBlock(
            self.num_heads,
            dropout=self.dropout,
            causal=True,
            layer_norm_epsilon=self.layer_norm_epsilon,
            kernel_initializer="glorot_normal",
            name=f"block_{index}",
        )

    def build(self, item_vectors_shape, padding_mask_shape=None):
        width = item_vectors_shape[-1]
        self.positions = keras.layers.Embedding(
            self.max_length, width, embeddings_initializer="glorot_normal", name="positions"
        )
        self.positions.build((self.max_length,))
        self.input_norm = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, name="input_norm")
        self.input_norm.build(item_vectors_shape)
        self._build_blocks(tuple(item_vectors_shape))
        self._freeze()

    def host_layers(self):
        return {"positions": self.positions, "input_norm": self.input_norm}

    def call(self, item_vectors, padding_mask, training=None):
        length = item_vectors.shape[1]
        if length is not None and length > self.max_length:
            raise ValueError(
                f"history length {length} is longer than max_length={self.max_length}; keep the most "
                f"recent {self.max_length} items (SequenceData and the export's preprocessing do)"
            )
        positions = self.positions(ops.arange(self.max_length - ops.shape(item_vectors)[1], self.max_length))
        x = self.input_norm(item_vectors + positions)
        x = self.input_dropout(x, training=training)
        return self._run_blocks(x, padding_mask, training)

    def compute_output_shape(self, item_vectors_shape, padding_mask_shape=None):
        return item_vectors_shape

    def get_config(self):
        config = super().get_config()
        config.update(max_length=self.max_length, layer_norm_epsilon=self.layer_norm_epsilon)
        return config


@km_export("keras_mdr.transrec.IdItemEncoder")
class IdItemEncoder(keras.layers.Layer):
    """The `"id"` item encoder: one learned vector per catalogue item.

    Args:
        num_items: N; indices run over `1..N`, 0 is padding.
        output_dim: d.
        freeze_host: make the table non-trainable.

    Call arguments:
        items: int `[...]` in `[0, N]`.

    Returns:
        `[..., d]`.

    Example:
    >>> IdItemEncoder(num_items=10, output_dim=8)(np.array([[0, 3, 7]])).shape
    (1, 3, 8)
    """

    def __init__(self, num_items, output_dim=64, freeze_host=False, trainable_norms=False, **kwargs):
        super().__init__(**kwargs)
        self.num_items = check_positive_int("num_items", num_items)
        self.output_dim = check_positive_int("output_dim", output_dim)
        self.freeze_host = bool(freeze_host)
        self.trainable_norms = bool(trainable_norms)
        self.table = keras.layers.Embedding(num_items + 1, output_dim, embeddings_initializer="glorot_normal", name="table")
        self.table.trainable = not self.freeze_host

    def build(self, items_shape):
        self.table.build(items_shape)

    def call(self, items):
        return self.table(items)

    def compute_output_shape(self, items_shape):
        return tuple(items_shape) + (self.output_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_items=self.num_items,
            output_dim=self.output_dim,
            freeze_host=self.freeze_host,
            trainable_norms=self.trainable_norms,
        )
        return config


@km_export("keras_mdr.transrec.TextItemEncoder")
class TextItemEncoder(_TransformerStack):
    """The `"text"` item encoder: a small BERT-like Transformer over the item's tokens, pooled, then `Dense + GELU`.

    For tokens `w [M, L]` (0 pads; `[CLS]` first):

        h_0 = Drop(LN(E[w_j] + P_j))
        h_l = Block_l(h_{l-1}, padding mask)          (post-LN, GELU)
        v   = GELU(W pool(h_L) + b)                   pool: mean over tokens, or [CLS]

    The item vector `v [M, d]` is what the user encoder reads and what a
    user is scored against. The layout is BERT's, so a keras-hub BERT preset
    loads into it (`transrec.text_encoder_from_preset`).

    Args:
        vocabulary_size: token embedding rows.
        sequence_length: L, the longest token sequence (positions).
        output_dim: d, the item vector's width.
        hidden_dim: the Transformer's width.
        num_blocks, num_heads: of the Transformer.
        intermediate_dim: feed-forward width (None: `4 * hidden_dim`).
        dropout: dropout of the embeddings and inside the blocks.
        pooling: `"mean"` (over real tokens) or `"cls"` (the first token).
        layer_norm_epsilon: of every LayerNorm (BERT: 1e-12).
        blocks: restored blocks (from a config), or None for new ones.
        k_adapter: a `KAdapter` over the blocks' outputs, or None.
        soft_prompt: a `SoftPrompt` whose vectors go in front of the
            embedded tokens (after their LayerNorm), or None; pooling reads
            the token positions only.
        freeze_host: make the embeddings, their LayerNorm and the projection
            non-trainable.
        trainable_norms: with `freeze_host`, keep the LayerNorm trainable.

    Call arguments:
        tokens: int `[..., L']`, `L' <= L`.
        training: enables dropout.

    Returns:
        `[..., d]`.

    Example:
    >>> encoder = TextItemEncoder(vocabulary_size=50, sequence_length=6, output_dim=8, hidden_dim=8)
    >>> encoder(np.array([[1, 5, 9, 0, 0, 0]])).shape
    (1, 8)

    Reference: Devlin et al., "BERT", NAACL 2019; Fu, Yuan et al., WSDM 2024
    (the TransRec item tower: `GELU(Dense(BERT(title)))`).
    """

    def __init__(
        self,
        vocabulary_size,
        sequence_length=24,
        output_dim=64,
        hidden_dim=64,
        num_blocks=2,
        num_heads=2,
        intermediate_dim=None,
        dropout=0.1,
        pooling="mean",
        layer_norm_epsilon=1e-12,
        blocks=None,
        k_adapter=None,
        soft_prompt=None,
        freeze_host=False,
        trainable_norms=False,
        **kwargs,
    ):
        self.vocabulary_size = check_positive_int("vocabulary_size", vocabulary_size)
        self.sequence_length = check_positive_int("sequence_length", sequence_length)
        self.output_dim = check_positive_int("output_dim", output_dim)
        self.hidden_dim = check_positive_int("hidden_dim", hidden_dim)
        self.intermediate_dim = None if intermediate_dim is None else check_positive_int("intermediate_dim", intermediate_dim)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        super().__init__(num_blocks, num_heads, dropout, blocks, k_adapter, freeze_host, trainable_norms, **kwargs)
        self.soft_prompt = _optional(soft_prompt, SoftPrompt, "soft_prompt")
        self.embedding_dropout = keras.layers.Dropout(self.dropout, name="embedding_dropout")

    def make_block(self, index):
        return TransformerBlock(
            self.num_heads,
            intermediate_dim=self.intermediate_dim,
            activation=gelu_approximate,
            dropout=self.dropout,
            layer_norm_epsilon=self.layer_norm_epsilon,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name=f"block_{index}",
        )

    def build(self, tokens_shape):
        initializer = keras.initializers.TruncatedNormal(stddev=0.02)
        self.token_embedding = keras.layers.Embedding(
            self.vocabulary_size, self.hidden_dim, embeddings_initializer=initializer, name="token_embedding"
        )
        self.token_embedding.build((None,))
        self.position_embedding = keras.layers.Embedding(
            self.sequence_length, self.hidden_dim, embeddings_initializer=initializer, name="position_embedding"
        )
        self.position_embedding.build((None,))
        self.embedding_norm = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, name="embedding_norm")
        hidden_shape = (None, self.sequence_length, self.hidden_dim)
        self.embedding_norm.build(hidden_shape)
        if self.soft_prompt is not None:
            if not self.soft_prompt.built:
                self.soft_prompt.build(hidden_shape)
            hidden_shape = (None, self.sequence_length + self.soft_prompt.num_prompts, self.hidden_dim)
        self._build_blocks(hidden_shape)
        self.projection = keras.layers.Dense(self.output_dim, activation=gelu_approximate, name="projection")
        self.projection.build((None, self.hidden_dim))
        self._freeze()

    def host_layers(self):
        return {
            "token_embedding": self.token_embedding,
            "position_embedding": self.position_embedding,
            "embedding_norm": self.embedding_norm,
            "projection": self.projection,
        }

    def token_states(self, tokens, training=None):
        """The Transformer's output `[M, L, hidden_dim]` for tokens `[M, L]`, before pooling."""
        tokens = ops.cast(tokens, "int32")
        length = tokens.shape[-1]
        if length is not None and length > self.sequence_length:
            raise ValueError(f"token sequences of length {length} exceed sequence_length={self.sequence_length}")
        x = self.token_embedding(tokens) + self.position_embedding(ops.arange(ops.shape(tokens)[1]))
        x = self.embedding_dropout(self.embedding_norm(x), training=training)
        mask = ops.not_equal(tokens, 0)
        if self.soft_prompt is None:
            return self._run_blocks(x, mask, training)
        x, mask = self.soft_prompt(x, padding_mask=mask)
        return self.soft_prompt.strip(self._run_blocks(x, mask, training))

    def call(self, tokens, training=None):
        leading = ops.shape(tokens)[:-1]
        flat = ops.reshape(tokens, (-1, ops.shape(tokens)[-1]))
        mask = ops.not_equal(flat, 0)
        x = self.token_states(flat, training)
        if self.pooling == "cls":
            pooled = x[:, 0]
        else:
            weights = ops.expand_dims(ops.cast(mask, x.dtype), -1)
            pooled = ops.sum(x * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)
        vectors = self.projection(pooled)
        return ops.reshape(vectors, tuple(leading) + (self.output_dim,))

    def compute_output_shape(self, tokens_shape):
        return tuple(tokens_shape[:-1]) + (self.output_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size,
            sequence_length=self.sequence_length,
            output_dim=self.output_dim,
            hidden_dim=self.hidden_dim,
            intermediate_dim=self.intermediate_dim,
            pooling=self.pooling,
            layer_norm_epsilon=self.layer_norm_epsilon,
            soft_prompt=self.soft_prompt,
        )
        return config
