"""The `tf.data` side of TransRec (TensorFlow-only, outside XLA).

Training batches are built from left-padded windows of item indices
(`SequenceData.training_windows`): each batch gets sampled negatives (items
the window does not contain, redrawn until none collides) and, for a text
model, the token ids of every item, gathered from the tokenized catalogue.
The numeric core then sees only integer tensors of static shape:

- `items`: int32 `[B, T + 1]`, the window (0 pads, most recent last);
- `negatives`: int32 `[B, T, K]`, K negatives per position;
- text models also `unique_tokens [U, L]`, the tokens of each distinct item
  of the batch (padded with item 0), and `item_slots [B, T + 1]`,
  `negative_slots [B, T, K]`, the rows of `unique_tokens` that hold each
  item. A batch is encoded once per distinct item, not once per
  occurrence: with `U = min(N + 1, B (T + 1) + B T K)` (static), a small
  catalogue costs at most one pass over it per step.
"""

import tensorflow as tf

from keras_mdr.data.pipeline_options import without_autotuning


def sample_negatives(items, num_items, num_negatives):
    """`int32 [B, T, K]` items drawn uniformly from `1..num_items`, none of them in the row's window.

    Collisions are redrawn until none is left (the catalogue is checked to
    be larger than a window, so this ends).
    """
    batch, length = tf.shape(items)[0], tf.shape(items)[1] - 1
    shape = tf.stack([batch, length, num_negatives])

    def draw():
        return tf.random.uniform(shape, 1, num_items + 1, dtype=tf.int32)

    def collides(negatives):
        return tf.reduce_any(tf.equal(negatives[..., None], items[:, None, None, :]), axis=-1)

    def redraw(negatives):
        return (tf.where(collides(negatives), draw(), negatives),)

    (negatives,) = tf.while_loop(lambda n: tf.reduce_any(collides(n)), redraw, (draw(),))
    return negatives


def unique_slots(num_items, batch_size, length, num_negatives):
    """U: the static number of distinct items a batch can hold (padding included)."""
    return min(num_items + 1, batch_size * (length + 1) + batch_size * length * num_negatives)


def distinct_items(items, negatives, num_unique):
    """`(unique [U], item_slots, negative_slots)`: the distinct items (padded with 0) and where each one is."""
    flat = tf.concat([tf.reshape(items, [-1]), tf.reshape(negatives, [-1])], axis=0)
    unique, slots = tf.unique(flat)
    unique = tf.pad(unique, [[0, num_unique - tf.shape(unique)[0]]])
    count = tf.size(items)
    return unique, tf.reshape(slots[:count], tf.shape(items)), tf.reshape(slots[count:], tf.shape(negatives))


def training_batch(items, num_items, num_negatives, catalogue_tokens=None, num_unique=None):
    """The core's training inputs for a batch of windows `items [B, T + 1]` (see the module docstring)."""
    items = tf.cast(items, tf.int32)
    negatives = sample_negatives(items, num_items, num_negatives)
    batch = {"items": items, "negatives": negatives}
    if catalogue_tokens is not None:
        unique, batch["item_slots"], batch["negative_slots"] = distinct_items(items, negatives, num_unique)
        batch["unique_tokens"] = tf.gather(catalogue_tokens, unique)
    return batch


def training_dataset(windows, num_items, num_negatives, batch_size, catalogue_tokens=None, shuffle=True, seed=None):
    """A `tf.data.Dataset` of training batches from windows `int32 [W, T + 1]`."""
    dataset = tf.data.Dataset.from_tensor_slices(windows)
    if shuffle:
        dataset = dataset.shuffle(len(windows), seed=seed, reshuffle_each_iteration=True)
    tokens = None if catalogue_tokens is None else tf.constant(catalogue_tokens)
    num_unique = unique_slots(num_items, batch_size, windows.shape[1] - 1, num_negatives)
    dataset = dataset.batch(batch_size).map(
        lambda items: training_batch(items, num_items, num_negatives, tokens, num_unique),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return without_autotuning(dataset.prefetch(tf.data.AUTOTUNE))


def left_align(indices, max_length):
    """int32 `[B, max_length]`: each row's last `max_length` non-zero entries, right-aligned, zeros in front.

    Rows of raw histories may hold padding (0) anywhere (e.g. unknown item
    ids); it is squeezed out and only the most recent `max_length` items are
    kept, the documented truncation of a longer history.
    """
    indices = tf.cast(indices, tf.int32)
    valid = indices > 0
    # 1 for the most recent valid item, 2 for the one before, ...
    from_end = tf.cumsum(tf.cast(valid, tf.int32), axis=1, reverse=True)
    keep = valid & (from_end <= max_length)
    rows = tf.cast(tf.where(keep), tf.int32)
    columns = max_length - tf.gather_nd(from_end, rows)
    positions = tf.stack([rows[:, 0], columns], axis=1)
    return tf.scatter_nd(positions, tf.gather_nd(indices, rows), tf.stack([tf.shape(indices)[0], max_length]))
