"""Where bottleneck adapters go in a trained Transformer block: Houlsby and Pfeiffer placements."""

from keras_mdr.layers.adapters.bottleneck_adapter import BottleneckAdapter


def _adapter_maker(make_adapter, bottleneck, activation, dropout):
    if make_adapter is not None:
        return make_adapter
    return lambda: BottleneckAdapter(bottleneck, activation=activation, dropout=dropout)


def add_houlsby_adapters(
    block, bottleneck=16, activation="relu", dropout=0.0, make_adapter=None, freeze_host=True, trainable_norms=False
):
    """Houlsby placement: an adapter after the attention sub-layer and one after the feed-forward sub-layer.

    `h = LN_1(x + A_att(Drop(Attn(x))))`, `y = LN_2(h + A_ffn(Drop(FFN(h))))`.

    Args:
        block: a built (trained) `TransformerBlock`.
        bottleneck, activation, dropout: of the default `BottleneckAdapter`s.
        make_adapter: a zero-argument callable returning a fresh adapter
            layer (e.g. `lambda: CompacterAdapter(8, rule=shared_rule)`), used
            instead of `BottleneckAdapter`.
        freeze_host, trainable_norms: see `TransformerBlock.with_adapters`.

    Returns:
        A new `TransformerBlock` (see `TransformerBlock.with_adapters`) that
        computes what `block` does until the adapters train.

    Example:
    >>> block = TransformerBlock(num_heads=2)
    >>> _ = block(np.ones((1, 4, 8), "float32"))
    >>> adapted = add_houlsby_adapters(block, bottleneck=4)

    Reference: Houlsby et al., ICML 2019; Fu, Yuan et al., WSDM 2024.
    """
    make = _adapter_maker(make_adapter, bottleneck, activation, dropout)
    return block.with_adapters(
        attention_adapter=make(), ffn_adapter=make(), freeze_host=freeze_host, trainable_norms=trainable_norms
    )


def add_pfeiffer_adapters(
    block, bottleneck=16, activation="relu", dropout=0.0, make_adapter=None, freeze_host=True, trainable_norms=False
):
    """Pfeiffer placement: one adapter, after the feed-forward sub-layer only.

    `y = LN_2(h + A_ffn(Drop(FFN(h))))`; the attention sub-layer is unchanged.
    Arguments and result as `add_houlsby_adapters`.

    Example:
    >>> block = TransformerBlock(num_heads=2)
    >>> _ = block(np.ones((1, 4, 8), "float32"))
    >>> adapted = add_pfeiffer_adapters(block, bottleneck=4)

    Reference: Pfeiffer et al., "AdapterFusion: Non-Destructive Task
    Composition for Transfer Learning", EACL 2021; Fu, Yuan et al., WSDM 2024.
    """
    make = _adapter_maker(make_adapter, bottleneck, activation, dropout)
    return block.with_adapters(ffn_adapter=make(), freeze_host=freeze_host, trainable_norms=trainable_norms)
