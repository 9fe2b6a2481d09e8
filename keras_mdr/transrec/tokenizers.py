"""Item text to token ids, outside XLA: a preprocessing step of the `tf.data` pipeline and of the export.

Two tokenizers, one output format (`int32 [B, sequence_length]`, a start
token first, `0` pads, longer texts truncated):

- `"word"` (no extra dependency): lowercase, split on anything that is not a
  letter or digit, look the words up in a vocabulary computed from the
  catalogue. Ids: 0 pad, 1 start (`[CLS]`), 2 unknown word, 3... words.
- `"wordpiece"` (`pip install "keras-mdr[text]"`: keras-hub and
  tensorflow-text): keras-hub's `BertTokenizer` over a WordPiece vocabulary,
  computed from the catalogue with `compute_word_piece_vocabulary` or read
  from a keras-hub BERT preset; packed as `[CLS] pieces [SEP]`. Its reserved
  tokens are `[PAD]` (0), `[CLS]`, `[SEP]`, `[UNK]`, `[MASK]`.

`make_tokenizer(kind="auto")` takes WordPiece when keras-hub is importable and
the word tokenizer otherwise; the choice is stored in the model's config, so a
saved model always tokenizes the way it was trained.
"""

import collections
import importlib.util

import keras
import numpy as np
import tensorflow as tf

from keras_mdr.api_export import km_export

PAD_ID = 0
KINDS = ("word", "wordpiece")
WORD_SPECIAL_TOKENS = ("[PAD]", "[CLS]", "[UNK]")
WORDPIECE_RESERVED_TOKENS = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
_SPLIT = r"[^\p{L}\p{N}]+"
TEXT_EXTRA_HINT = 'pip install "keras-mdr[text]" (keras-hub and tensorflow-text)'


def keras_hub_available():
    return importlib.util.find_spec("keras_hub") is not None and importlib.util.find_spec("tensorflow_text") is not None


def _require_keras_hub(what):
    if not keras_hub_available():
        raise ImportError(f"{what} needs keras-hub and tensorflow-text: {TEXT_EXTRA_HINT}")
    import keras_hub

    return keras_hub


def _words(texts):
    """Lowercased words (runs of letters and digits): ragged `[B, None]` strings."""
    texts = tf.convert_to_tensor(texts, tf.string)
    return tf.strings.split(tf.strings.strip(tf.strings.regex_replace(tf.strings.lower(texts), _SPLIT, " ")))


def word_vocabulary(texts, max_size=20_000):
    """The words of `texts` (lowercased), most frequent first, ties alphabetical."""
    words = _words(np.asarray(texts, dtype=object).astype(str)).flat_values.numpy()
    counts = collections.Counter(w.decode() for w in words)
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_size]]


def wordpiece_vocabulary(texts, size=4_000):
    """A WordPiece vocabulary of at most `size` pieces computed from `texts` (lowercased), reserved tokens first."""
    keras_hub = _require_keras_hub("The wordpiece tokenizer")
    dataset = tf.data.Dataset.from_tensor_slices(np.asarray(texts, dtype=object).astype(str))
    return list(
        keras_hub.tokenizers.compute_word_piece_vocabulary(
            dataset.batch(1024), vocabulary_size=size, lowercase=True, reserved_tokens=WORDPIECE_RESERVED_TOKENS
        )
    )


@km_export("keras_mdr.transrec.TitleTokenizer")
class TitleTokenizer(keras.layers.Layer):
    """Texts `[B]` (string) to token ids `int32 [B, sequence_length]`.

    TensorFlow-only (string ops): use it in the `tf.data` pipeline or in front
    of the numeric core, never inside an XLA function.

    Args:
        vocabulary: the words (`"word"`, without the special tokens, which
            take ids 0 to 2) or the WordPiece pieces (`"wordpiece"`, reserved
            tokens included, `[PAD]` at 0).
        sequence_length: tokens per text, the start token included; longer
            texts are truncated.
        kind: `"word"` or `"wordpiece"`.

    Example:
    >>> tokenizer = TitleTokenizer(["toy", "story"], sequence_length=5)
    >>> tokenizer(tf.constant(["Toy Story (1995)"])).numpy().tolist()
    [[1, 3, 4, 2, 0]]
    """

    def __init__(self, vocabulary, sequence_length=24, kind="word", **kwargs):
        super().__init__(**kwargs)
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if not isinstance(sequence_length, int) or sequence_length < 2:
            raise ValueError(f"sequence_length must be an integer >= 2, got {sequence_length!r}")
        self.vocabulary = [str(v) for v in vocabulary]
        if not self.vocabulary:
            raise ValueError("vocabulary is empty")
        self.sequence_length = sequence_length
        self.kind = kind
        self.built = True  # the lookups are made here, from the vocabulary
        if kind == "word":
            self.lookup = keras.layers.StringLookup(
                vocabulary=self.vocabulary, num_oov_indices=1, mask_token=None, name="words"
            )
        else:
            keras_hub = _require_keras_hub("The wordpiece tokenizer")
            if self.vocabulary[PAD_ID] != "[PAD]":
                raise ValueError(f"a WordPiece vocabulary must have '[PAD]' at id {PAD_ID}, got {self.vocabulary[0]!r}")
            self.wordpiece = keras_hub.models.BertTokenizer(vocabulary=self.vocabulary, lowercase=True, name="wordpiece")
            self.packer = keras_hub.layers.StartEndPacker(
                sequence_length,
                start_value=self.wordpiece.cls_token_id,
                end_value=self.wordpiece.sep_token_id,
                pad_value=PAD_ID,
                name="packer",
            )

    @property
    def vocabulary_size(self):
        """Rows the token embedding needs."""
        return len(self.vocabulary) + (len(WORD_SPECIAL_TOKENS) if self.kind == "word" else 0)

    def call(self, texts):
        texts = tf.convert_to_tensor(texts, tf.string)
        if self.kind == "wordpiece":
            return tf.cast(self.packer(self.wordpiece(texts)), tf.int32)
        words = _words(texts)
        # StringLookup: unknown 0, words 1..V; shifted so that 0 pads, 1 starts, 2 is unknown.
        ids = tf.cast(self.lookup(words), tf.int32) + 2
        start = tf.RaggedTensor.from_tensor(
            tf.ones([tf.shape(texts)[0], 1], tf.int32), row_splits_dtype=ids.row_splits.dtype
        )
        tokens = tf.concat([start, ids], axis=1)
        return tokens.to_tensor(PAD_ID, shape=[None, self.sequence_length])

    def get_config(self):
        config = super().get_config()
        config.update(vocabulary=self.vocabulary, sequence_length=self.sequence_length, kind=self.kind)
        return config


def make_tokenizer(texts, kind="auto", sequence_length=24, vocabulary_size=4_000):
    """A `TitleTokenizer` whose vocabulary is computed from `texts` (the catalogue).

    Args:
        texts: the catalogue's item texts.
        kind: `"word"`, `"wordpiece"` or `"auto"` (WordPiece when keras-hub
            is installed, else words).
        sequence_length: tokens per text.
        vocabulary_size: the most words or pieces to keep.
    """
    if kind == "auto":
        kind = "wordpiece" if keras_hub_available() else "word"
    if kind == "word":
        return TitleTokenizer(word_vocabulary(texts, vocabulary_size), sequence_length, "word")
    if kind == "wordpiece":
        return TitleTokenizer(wordpiece_vocabulary(texts, vocabulary_size), sequence_length, "wordpiece")
    raise ValueError(f"tokenizer must be one of {KINDS + ('auto',)}, got {kind!r}")
