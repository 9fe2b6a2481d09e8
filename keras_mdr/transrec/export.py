"""Serving a TransRec: top-k recommendations for raw histories, and item vectors for an external index.

`export_transrec(model, base_dir)` writes `base_dir/<version>/`, a SavedModel
with two signatures (raw values in, preprocessing in the graph):

- `serving_default`: `history` (`string [B, H]`, raw item ids, oldest first;
  `""` pads, ids not in the catalogue are skipped) -> `item_ids`
  (`string [B, k]`) and `scores` (`float32 [B, k]`), the top-k catalogue
  items by `<user, item>`, the items of the history excluded. A history
  longer than the model's `max_length` is read through its most recent
  `max_length` items (every item of it is still excluded from the
  results). A row with no catalogue item fails the request
  (INVALID_ARGUMENT).
- `item_vectors`: a text model takes `item_text` (`string [B]`; an empty
  text fails the request), an id model `item_id` (`string [B]`; an unknown
  id gets the zero vector); both return `item_vector` (`float32 [B, d]`),
  the vectors the model scores users against, for an ANN index.

The catalogue is encoded once at export into a constant table, so a request
costs one user encoding and one `[B, d] x [d, N]` matmul. A `"word"`
tokenizer needs TensorFlow only; a `"wordpiece"` one uses tensorflow-text
ops (`import tensorflow_text` before loading in Python; stock TF Serving
includes them).

`recommend(model, histories)` runs the same functions in Python.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_mdr.export.saved_model import write_version
from keras_mdr.transrec.evaluation import item_table, mask_seen, user_vectors
from keras_mdr.transrec.preprocessing import left_align

TOP_K_SIGNATURE = "serving_default"
ITEM_SIGNATURE = "item_vectors"
HISTORY = "history"
ITEM_TEXT = "item_text"
ITEM_ID = "item_id"
VERIFY_TOLERANCE = 1e-4


class ServingFunctions(keras.layers.Layer):
    """The TF functions behind the signatures (TensorFlow-only; holds the catalogue table).

    Args:
        model: a trained `TransRec`.
        k: how many items `top_k` returns.
        jit_compile: compile the numeric part (user encoder, scoring) with XLA.
    """

    def __init__(self, model, k=10, jit_compile=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(k, int) or not 1 <= k <= model.num_items:
            raise ValueError(f"k must be an integer in 1..{model.num_items} (the catalogue), got {k!r}")
        self.model, self.k = model, k
        self.item_index = keras.layers.StringLookup(
            vocabulary=list(model.item_ids), num_oov_indices=1, mask_token=None, name="item_index"
        )
        self.item_id_of_index = tf.constant(np.concatenate([[""], model.item_ids]).astype(object).astype(bytes))
        self.table = self.add_weight(
            shape=(model.num_items + 1, model.item_encoder.output_dim), initializer="zeros", trainable=False, name="table"
        )
        self.table.assign(item_table(model))
        self._scores = tf.function(self._masked_scores, jit_compile=jit_compile)
        self.built = True

    def _masked_scores(self, window, seen):
        return mask_seen(tf.matmul(user_vectors(self.model, self.table, window), self.table, transpose_b=True), seen)

    def top_k(self, history):
        indices = tf.cast(self.item_index(history), tf.int32)
        known = tf.reduce_sum(tf.cast(indices > 0, tf.int32), axis=1)
        check = tf.debugging.assert_greater(
            known, 0, message=f"{HISTORY}: every row needs at least one item id of the catalogue"
        )
        with tf.control_dependencies([check]):
            window = left_align(indices, self.model.max_length)
        top = tf.math.top_k(self._scores(window, indices), self.k)
        return {"item_ids": tf.gather(self.item_id_of_index, top.indices), "scores": top.values}

    def item_vectors(self, values):
        if not self.model.is_text:
            return {"item_vector": tf.gather(self.table, tf.cast(self.item_index(values), tf.int32))}
        lengths = tf.strings.length(tf.strings.strip(values))
        check = tf.debugging.assert_greater(lengths, 0, message=f"{ITEM_TEXT}: every item needs a non-empty text")
        with tf.control_dependencies([check]):
            tokens = self.model.tokenizer(values)
        return {"item_vector": self.model.encode_items(tokens, training=False)}


def recommend(model, histories, k=10):
    """Top-k recommendations for raw histories, as the exported `serving_default` computes them.

    Args:
        model: a `TransRec`.
        histories: a list of lists of raw item ids (oldest first), or a
            `string [B, H]` array padded with `""`.
        k: how many items.

    Returns:
        `(item_ids str [B, k], scores float32 [B, k])`.

    Raises:
        ValueError: a history with no item of the catalogue.
    """
    if not isinstance(histories, np.ndarray):
        histories = [list(map(str, h)) for h in histories]
        width = max([len(h) for h in histories] + [1])
        histories = np.array([h + [""] * (width - len(h)) for h in histories], dtype=object)
    histories = histories.astype(str)
    known = np.isin(histories, model.item_ids).sum(axis=1)
    if len(histories) == 0 or (known == 0).any():
        rows = np.flatnonzero(known == 0).tolist()
        raise ValueError(f"histories {rows} have no item id of the catalogue; they cannot be scored")
    functions = model.cached_function(("serving", k), lambda: ServingFunctions(model, k))
    outputs = functions.top_k(tf.constant(histories))
    return outputs["item_ids"].numpy().astype(str), outputs["scores"].numpy()


def _write(model, path, k, jit_compile, histories):
    functions = ServingFunctions(model, k, jit_compile, name="serving_functions")
    # One call builds every lookup layer (ExportArchive tracks built layers only).
    functions.top_k(tf.constant(histories))
    functions.item_vectors(tf.constant(model.item_texts[:1] if model.is_text else model.item_ids[:1]))
    archive = keras.export.ExportArchive()
    archive.track(model)
    # Lookup tables are tracked through the layers that own them.
    lookups = [functions.item_index] + ([] if model.tokenizer is None else list(model.tokenizer._flatten_layers()))
    for layer in [functions] + lookups:
        archive.track(layer)
    archive.add_endpoint(
        TOP_K_SIGNATURE, functions.top_k, input_signature=[tf.TensorSpec([None, None], tf.string, name=HISTORY)]
    )
    item_input = ITEM_TEXT if model.is_text else ITEM_ID
    archive.add_endpoint(
        ITEM_SIGNATURE, functions.item_vectors, input_signature=[tf.TensorSpec([None], tf.string, name=item_input)]
    )
    archive.write_out(path, verbose=False)
    return functions


def _verify(model, functions, path, histories):
    loaded = tf.saved_model.load(path)
    expected = functions.top_k(tf.constant(histories))
    served = loaded.signatures[TOP_K_SIGNATURE](**{HISTORY: tf.constant(histories)})
    error = float(np.max(np.abs(served["scores"].numpy() - expected["scores"].numpy())))
    if not error <= VERIFY_TOLERANCE:
        raise RuntimeError(f"Export check: the SavedModel's scores differ from the Keras model's by {error:.3g}")
    sample = model.item_texts[:8] if model.is_text else model.item_ids[:8]
    served = loaded.signatures[ITEM_SIGNATURE](**{ITEM_TEXT if model.is_text else ITEM_ID: tf.constant(sample)})
    error = float(np.max(np.abs(served["item_vector"].numpy() - item_table(model)[1:9])))
    if not error <= VERIFY_TOLERANCE:
        raise RuntimeError(f"Export check: the SavedModel's item vectors differ by {error:.3g}")


def export_transrec(model, base_dir, version=None, k=10, jit_compile=False):
    """Writes `model` as `base_dir/<version>/` (see the module docstring), atomically.

    The version is written to a hidden sibling, loaded back and checked
    against the Keras model (top-k scores for a few catalogue histories,
    item vectors), then renamed into place; a failed export leaves nothing.

    Args:
        model: a trained `TransRec`.
        base_dir: TF Serving's base path (created if missing).
        version: the integer version; None takes the next one.
        k: items per recommendation.
        jit_compile: compile the user encoder and scoring with XLA.

    Returns:
        The path of the new version directory.
    """
    histories = np.array([[model.item_ids[0], model.item_ids[1]], [model.item_ids[2], ""]], dtype=object)

    def write(temp, version):
        functions = _write(model, temp, k, jit_compile, histories)
        _verify(model, functions, temp, histories)

    return write_version(base_dir, version, write)
