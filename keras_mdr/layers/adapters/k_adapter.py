"""K-Adapter: a small Transformer beside the host that reads its hidden states and adds back, masked as the host."""

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.core.validation import check_positive_int, check_rate
from keras_mdr.layers.sequence.transformer_block import TransformerBlock


@km_export("keras_mdr.layers.KAdapter")
class KAdapter(keras.layers.Layer):
    """`y = h_N + U s_N` with `s_i = T_i(D_i h_i + s_{i-1})`: a Transformer on the host's hidden states.

    The host's hidden states `h_1 .. h_N` (`[B, L, d]` each, e.g. the outputs
    of its N blocks; `N = num_layers`) feed one adapter layer each: `D_i`
    projects `h_i` down to `m = bottleneck` units, it is added to the state of
    the adapter layer below (`s_0 = 0`), and `T_i` (`blocks_per_layer`
    `TransformerBlock`s of width m) transforms it. The top state is projected
    back with `U [m, d]` and added to the host's last hidden state. `U` and its
    bias start at zero, so `y = h_N` at init: the host is unchanged.

    Every inner block uses the host's attention mask: the same padding mask
    (padded keys are never attended to) and the same causality (`causal`), so
    no position sees a later one when the host is causal.

    Differs from the Adapter4Rec reference code: its K-Adapter blocks build an
    all-ones attention mask, so they attend to future positions (leaking the
    next items into a causal SASRec) and to padding; and it fuses with a fresh
    `Linear([h ; s])`, which replaces the host's output with a random
    projection at init. Here the state is added to the host's output through a
    zero-initialised projection.

    Args:
        bottleneck: m, the adapter's width; divisible by `num_heads`.
        num_heads: heads of the inner blocks.
        num_layers: N, how many host hidden states it reads.
        blocks_per_layer: Transformer blocks per adapter layer.
        intermediate_dim: feed-forward width of the inner blocks (None:
            `4 m`).
        activation, dropout: of the inner blocks.
        causal: the host's causality.
        kernel_initializer: initializer of the down-projections `D_i`.

    Call arguments:
        hidden_states: a list of N `[B, L, d]` tensors, lowest layer first
            (or one tensor when N is 1).
        padding_mask: the host's `[B, L]` padding mask, or None.
        training: enables dropout.

    Returns:
        `[B, L, d]`.

    Example:
    >>> hosts = [TransformerBlock(2, causal=True) for _ in range(2)]
    >>> x, states = np.random.normal(size=(2, 5, 8)).astype("float32"), []
    >>> for host in hosts:
    ...     x = host(x)
    ...     states.append(x)
    >>> adapter = KAdapter(bottleneck=4, num_heads=2, num_layers=2, causal=True)
    >>> bool(np.allclose(adapter(states), x))    # the identity of the host at init
    True

    Reference: Wang et al., "K-Adapter: Infusing Knowledge into Pre-Trained
    Models with Adapters", Findings of ACL 2021; Fu, Yuan et al., WSDM 2024.
    """

    def __init__(
        self,
        bottleneck,
        num_heads,
        num_layers=1,
        blocks_per_layer=2,
        intermediate_dim=None,
        activation="relu",
        dropout=0.0,
        causal=False,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.bottleneck = check_positive_int("bottleneck", bottleneck)
        self.num_heads = check_positive_int("num_heads", num_heads)
        if self.bottleneck % self.num_heads:
            raise ValueError(f"bottleneck must be divisible by num_heads={num_heads}, got {bottleneck!r}")
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.blocks_per_layer = check_positive_int("blocks_per_layer", blocks_per_layer)
        self.intermediate_dim = intermediate_dim
        self.activation = keras.activations.get(activation)
        self.dropout = check_rate("dropout", dropout)
        self.causal = bool(causal)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _as_list(self, hidden_states):
        states = list(hidden_states) if isinstance(hidden_states, (list, tuple)) else [hidden_states]
        if len(states) != self.num_layers:
            raise ValueError(f"hidden_states must hold num_layers={self.num_layers} tensors, got {len(states)}")
        return states

    def build(self, hidden_states_shape, padding_mask_shape=None):
        multiple = isinstance(hidden_states_shape, (list, tuple)) and isinstance(hidden_states_shape[0], (list, tuple))
        shapes = self._as_list(hidden_states_shape if multiple else [hidden_states_shape])
        shape = tuple(shapes[-1])
        inner_shape = shape[:-1] + (self.bottleneck,)
        self.down = [
            keras.layers.Dense(self.bottleneck, kernel_initializer=self.kernel_initializer, name=f"down_{i}")
            for i in range(self.num_layers)
        ]
        # Flat, layer i's blocks at [i * blocks_per_layer, (i + 1) * blocks_per_layer).
        self.blocks = [
            TransformerBlock(
                self.num_heads,
                intermediate_dim=self.intermediate_dim,
                activation=self.activation,
                dropout=self.dropout,
                causal=self.causal,
                name=f"block_{i}_{j}",
            )
            for i in range(self.num_layers)
            for j in range(self.blocks_per_layer)
        ]
        self.up = keras.layers.Dense(shape[-1], kernel_initializer="zeros", name="up")
        for down, layer_shape in zip(self.down, shapes):
            down.build(tuple(layer_shape))
        for block in self.blocks:
            block.build(inner_shape)
        self.up.build(inner_shape)

    def _layer_blocks(self, i):
        return self.blocks[i * self.blocks_per_layer : (i + 1) * self.blocks_per_layer]

    def call(self, hidden_states, padding_mask=None, training=None):
        states = self._as_list(hidden_states)
        state = None
        for i, (hidden, down) in enumerate(zip(states, self.down)):
            state = down(hidden) if state is None else down(hidden) + state
            for block in self._layer_blocks(i):
                state = block(state, padding_mask=padding_mask, training=training)
        return states[-1] + self.up(state)

    def compute_output_shape(self, hidden_states_shape, padding_mask_shape=None):
        if isinstance(hidden_states_shape, (list, tuple)) and isinstance(hidden_states_shape[0], (list, tuple)):
            return tuple(hidden_states_shape[-1])
        return tuple(hidden_states_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            bottleneck=self.bottleneck,
            num_heads=self.num_heads,
            num_layers=self.num_layers,
            blocks_per_layer=self.blocks_per_layer,
            intermediate_dim=self.intermediate_dim,
            activation=keras.activations.serialize(self.activation),
            dropout=self.dropout,
            causal=self.causal,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
