"""Soft prompts: learned vectors prepended to a sequence, with the padding mask extended to match."""

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.core.validation import check_positive_int


@km_export("keras_mdr.layers.SoftPrompt")
class SoftPrompt(keras.layers.Layer):
    """`[P ; x]`: prepends `num_prompts` learned vectors `P [p, d]` to each sequence `x [B, L, d]`.

    Returns the longer sequence `[B, p + L, d]` and its padding mask
    `[B, p + L]` (the prompt positions are real positions, followed by the
    input's mask, or all true when none is given). Feed both to the host (e.g.
    `TransformerBlock(...)(tokens, padding_mask=mask)`); a causal host still
    lets every position see the prompts, which come first. Where the host
    needs the original length (per-position outputs, a CLS token at
    position 0), `strip(outputs)` drops the first `p` positions.

    A soft prompt is not the identity of its host at init: the host's
    positions attend to the prompts, so outputs change as soon as prompts are
    added (prompt tuning works by this). What this layer guarantees instead:
    the input vectors are kept unchanged after the prompts, and the mask
    covers both. `initializer` may start the prompts from chosen vectors
    (e.g. `keras.initializers.Constant`), or assign `prompts` after build.

    Differs from the Adapter4Rec reference code: its soft embedding writes the
    prompts over the first `p` token embeddings (the title's first words are
    lost) and keeps the original attention mask. Here the prompts are
    prepended and the mask is extended.

    Args:
        num_prompts: p.
        initializer: initializer of `P [p, d]`.

    Call arguments:
        inputs: `[B, L, d]`.
        padding_mask: `[B, L]` bool or 0/1, or None (no padding).

    Returns:
        `(outputs [B, p + L, d], padding_mask [B, p + L] bool)`.

    Example:
    >>> prompt = SoftPrompt(num_prompts=2)
    >>> tokens, mask = prompt(np.ones((3, 5, 8), "float32"), np.ones((3, 5)))
    >>> tuple(tokens.shape), tuple(mask.shape), tuple(prompt.strip(tokens).shape)
    ((3, 7, 8), (3, 7), (3, 5, 8))

    Reference: Lester et al., "The Power of Scale for Parameter-Efficient
    Prompt Tuning", EMNLP 2021; Fu, Yuan et al., WSDM 2024.
    """

    def __init__(self, num_prompts, initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.num_prompts = check_positive_int("num_prompts", num_prompts)
        self.initializer = keras.initializers.get(initializer or keras.initializers.RandomNormal(stddev=0.02))

    def build(self, inputs_shape, padding_mask_shape=None):
        self.prompts = self.add_weight(
            name="prompts", shape=(self.num_prompts, inputs_shape[-1]), initializer=self.initializer
        )

    def call(self, inputs, padding_mask=None):
        batch = ops.shape(inputs)[0]
        prompts = ops.broadcast_to(ops.expand_dims(ops.cast(self.prompts, inputs.dtype), 0),
                                   (batch, self.num_prompts, inputs.shape[-1]))
        outputs = ops.concatenate([prompts, inputs], axis=1)
        if padding_mask is None:
            padding_mask = ops.ones(ops.shape(inputs)[:2], dtype="bool")
        prompt_mask = ops.ones((batch, self.num_prompts), dtype="bool")
        return outputs, ops.concatenate([prompt_mask, ops.cast(padding_mask, "bool")], axis=1)

    def strip(self, outputs):
        """The host's outputs without the prompt positions: `[B, p + L, ...] -> [B, L, ...]`."""
        return outputs[:, self.num_prompts :]

    def compute_output_shape(self, inputs_shape, padding_mask_shape=None):
        batch, length, width = inputs_shape
        total = None if length is None else length + self.num_prompts
        return (batch, total, width), (batch, total)

    def get_config(self):
        config = super().get_config()
        config.update(num_prompts=self.num_prompts, initializer=keras.initializers.serialize(self.initializer))
        return config
