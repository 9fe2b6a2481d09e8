"""Building a TransRec for a catalogue: `build_transrec(data, item_encoder="text")`."""

from keras_mdr.data.sequences import SequenceData
from keras_mdr.transrec.encoders import IdItemEncoder, SASRecEncoder, TextItemEncoder
from keras_mdr.transrec.model import TransRec
from keras_mdr.transrec.tokenizers import PAD_ID, TitleTokenizer, _require_keras_hub, make_tokenizer

ITEM_ENCODERS = ("id", "text")


def text_encoder_from_preset(preset, output_dim=64, sequence_length=24, pooling="cls", dropout=None):
    """A `TextItemEncoder` and its `TitleTokenizer` with the weights of a keras-hub BERT preset on disk.

    The preset's `BertBackbone` maps one to one onto `TextItemEncoder` (the
    same post-LN blocks, GELU, LayerNorm epsilon and head split); segment
    embeddings are folded into the positions (items have one segment). The
    projection to `output_dim` is new. Nothing is downloaded: `preset` must
    be a local directory written by keras-hub's `save_to_preset`.

    Args:
        preset: path of the preset directory (backbone and tokenizer).
        output_dim: d, the item vector's width.
        sequence_length: tokens per item text (at most the preset's).
        pooling: `"cls"` (BERT's) or `"mean"`.
        dropout: the encoder's dropout (None: the preset's).

    Returns:
        `(encoder, tokenizer)`, the encoder built and holding the preset's
        weights.
    """
    keras_hub = _require_keras_hub("Loading a keras-hub preset")
    backbone = keras_hub.models.BertBackbone.from_preset(preset, load_weights=True)
    source = keras_hub.models.BertTokenizer.from_preset(preset)
    if source.pad_token_id != PAD_ID:
        raise ValueError(f"the preset's [PAD] token has id {source.pad_token_id}; TransRec pads with {PAD_ID}")
    if sequence_length > backbone.max_sequence_length:
        raise ValueError(
            f"sequence_length={sequence_length} exceeds the preset's max_sequence_length={backbone.max_sequence_length}"
        )
    tokenizer = TitleTokenizer(source.get_vocabulary(), sequence_length, kind="wordpiece")
    encoder = TextItemEncoder(
        vocabulary_size=backbone.vocabulary_size,
        sequence_length=sequence_length,
        output_dim=output_dim,
        hidden_dim=backbone.hidden_dim,
        num_blocks=backbone.num_layers,
        num_heads=backbone.num_heads,
        intermediate_dim=backbone.intermediate_dim,
        dropout=backbone.dropout if dropout is None else dropout,
        pooling=pooling,
        layer_norm_epsilon=1e-12,
    )
    encoder.build((None, sequence_length))
    positions = backbone.position_embedding.position_embeddings.numpy()[:sequence_length]
    segment = backbone.segment_embedding.embeddings.numpy()[0]
    encoder.token_embedding.set_weights([backbone.token_embedding.embeddings.numpy()])
    encoder.position_embedding.set_weights([positions + segment])
    encoder.embedding_norm.set_weights(backbone.embeddings_layer_norm.get_weights())
    width = backbone.hidden_dim
    for block, layer in zip(encoder.blocks, backbone.transformer_layers):
        attention = layer._self_attention_layer
        for name in ("query", "key", "value"):
            dense = getattr(attention, f"_{name}_dense")
            kernel, bias = dense.get_weights()
            getattr(block, name).set_weights([kernel.reshape(width, width), bias.reshape(width)])
        kernel, bias = attention._output_dense.get_weights()
        block.attention_output.set_weights([kernel.reshape(width, width), bias])
        block.attention_norm.set_weights(layer._self_attention_layer_norm.get_weights())
        block.ffn_inner.set_weights(layer._feedforward_intermediate_dense.get_weights())
        block.ffn_output.set_weights(layer._feedforward_output_dense.get_weights())
        block.ffn_norm.set_weights(layer._feedforward_layer_norm.get_weights())
    return encoder, tokenizer


def build_transrec(
    data,
    item_encoder="text",
    *,
    dim=64,
    max_length=20,
    num_blocks=2,
    num_heads=2,
    dropout=0.1,
    tokenizer="auto",
    vocabulary_size=4_000,
    sequence_length=24,
    text_hidden_dim=64,
    text_blocks=2,
    text_heads=2,
    pooling="mean",
    preset=None,
    loss="bce",
    num_negatives=1,
    windows="last",
):
    """A TransRec for `data`'s catalogue, built and ready to train.

    Args:
        data: a `SequenceData` (its catalogue, and its texts for `"text"`).
        item_encoder: `"text"` (a Transformer over the item's text; needs
            texts) or `"id"` (an embedding per item).
        dim: d, the width of item and user vectors.
        max_length: the longest history the user encoder reads (20, as
            Adapter4Rec).
        num_blocks, num_heads, dropout: of the SASRec user encoder.
        tokenizer: `"auto"`, `"word"` or `"wordpiece"` (see
            `keras_mdr.transrec.tokenizers`), its vocabulary computed from
            `data`'s texts.
        vocabulary_size: the most words or pieces the tokenizer keeps.
        sequence_length: tokens per item text.
        text_hidden_dim, text_blocks, text_heads: of the text encoder.
        pooling: the text encoder's pooling (`"mean"` or `"cls"`).
        preset: path of a keras-hub BERT preset on disk: its tokenizer and
            weights replace the four arguments above
            (`text_encoder_from_preset`).
        loss, num_negatives, windows: see `TransRec`.

    Returns:
        A built `TransRec`.
    """
    if not isinstance(data, SequenceData):
        raise TypeError(f"build_transrec needs a SequenceData, got {type(data).__name__}")
    if item_encoder not in ITEM_ENCODERS:
        raise ValueError(f"item_encoder must be one of {ITEM_ENCODERS}, got {item_encoder!r}")
    title_tokenizer = None
    if item_encoder == "id":
        encoder = IdItemEncoder(data.num_items, dim)
    elif not data.has_text:
        raise ValueError(f"item_encoder='text' needs item texts, but {data.name} has ids only")
    elif preset is not None:
        encoder, title_tokenizer = text_encoder_from_preset(preset, dim, sequence_length, dropout=dropout)
    else:
        title_tokenizer = make_tokenizer(data.item_texts, tokenizer, sequence_length, vocabulary_size)
        encoder = TextItemEncoder(
            title_tokenizer.vocabulary_size,
            sequence_length,
            output_dim=dim,
            hidden_dim=text_hidden_dim,
            num_blocks=text_blocks,
            num_heads=text_heads,
            dropout=dropout,
            pooling=pooling,
        )
    user_encoder = SASRecEncoder(max_length, num_blocks, num_heads, dropout)
    model = TransRec(
        encoder,
        user_encoder,
        data.item_ids,
        data.item_texts if item_encoder == "text" else None,
        title_tokenizer,
        loss=loss,
        num_negatives=num_negatives,
        windows=windows,
    )
    return model.build_core()


def rebuilt_with_catalogue(model, data, item_encoder, user_encoder, method, tokenizer=None):
    """A `TransRec` over `data`'s catalogue with the given encoders (the model's loss settings)."""
    return TransRec(
        item_encoder,
        user_encoder,
        data.item_ids,
        data.item_texts if model.is_text else None,
        model.tokenizer if tokenizer is None else tokenizer,
        loss=model.loss_name,
        num_negatives=model.num_negatives,
        method=method,
        windows=model.windows,
    ).build_core()
