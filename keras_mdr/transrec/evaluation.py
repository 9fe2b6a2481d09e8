"""Full-ranking evaluation of TransRec (TensorFlow: batched scoring under XLA).

Leave-one-out: each user's validation (second to last) or test (last) item is
ranked against the **whole catalogue**. The catalogue is encoded once per
evaluation into the item table `E [N + 1, d]` (row 0 is padding); a batch of
users is scored by one matmul `S = U E^T`, every item the user saw before the
target (and the padding row) is masked to `-inf`, and the target's rank is
the number of items with a strictly higher score (0 is the top). Then

    HR@k   = mean_u [rank_u < k]
    NDCG@k = mean_u [rank_u < k] / log2(rank_u + 2)

Ties count in the target's favour (an equal score is not higher), as do most
implementations that rank by a stable sort of the scores.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_mdr.data.sequences import SequenceData

MASKED = -np.inf


def _batches(count, batch_size):
    return [(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]


def item_table(model, batch_size=1024, jit_compile=True):
    """float32 `[N + 1, d]`: every catalogue item's vector (row 0, padding, is zero), encoded once."""
    encode = model.cached_function(
        ("encode_items", jit_compile),
        lambda: tf.function(lambda f: model.encode_items(f, training=False), jit_compile=jit_compile),
    )
    items = np.arange(1, model.num_items + 1, dtype=np.int32)
    features = model.item_features(items)
    parts = []
    for start, end in _batches(len(items), batch_size):
        chunk = features[start:end]
        if len(chunk) < batch_size and len(items) > batch_size:  # one compiled shape
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch_size - len(chunk), 0)])
        parts.append(np.asarray(encode(chunk))[: end - start])
    vectors = np.concatenate(parts).astype(np.float32)
    return np.concatenate([np.zeros((1, vectors.shape[1]), np.float32), vectors])


def user_vectors(model, table, history):
    """`[B, d]`: the user state after the last item of each left-padded history `[B, T]`."""
    history = tf.cast(history, tf.int32)
    states = model.encode_users(tf.gather(table, history), history, training=False)
    return states[:, -1]


def mask_seen(scores, seen):
    """`scores [B, N + 1]` with the items of `seen [B, H]` (0 pads) and the padding row 0 set to -inf."""
    seen = tf.cast(seen, tf.int32)
    rows = tf.broadcast_to(tf.range(tf.shape(seen)[0])[:, None], tf.shape(seen))
    indices = tf.reshape(tf.stack([rows, seen], axis=-1), (-1, 2))
    updates = tf.fill(tf.shape(indices)[:1], tf.constant(MASKED, scores.dtype))
    scores = tf.tensor_scatter_nd_update(scores, indices, updates)
    return tf.concat([tf.fill([tf.shape(scores)[0], 1], tf.constant(MASKED, scores.dtype)), scores[:, 1:]], axis=1)


def score_users(model, table, history, seen):
    """Masked scores `[B, N + 1]` of every catalogue item for each user."""
    users = user_vectors(model, table, history)
    return mask_seen(tf.matmul(users, table, transpose_b=True), seen)


def target_ranks(scores, target):
    """`[B]` int32: how many items score strictly higher than each user's target."""
    target_scores = tf.gather(scores, tf.cast(target, tf.int32), batch_dims=1)
    return tf.reduce_sum(tf.cast(scores > target_scores[:, None], tf.int32), axis=1)


def ranking_metrics(ranks, k=10):
    """`{hr@k, ndcg@k}` (means over users) from 0-based ranks."""
    ranks = np.asarray(ranks, np.float64)
    hit = ranks < k
    return {f"hr@{k}": float(hit.mean()), f"ndcg@{k}": float((hit / np.log2(ranks + 2)).mean())}


def ranks(model, table, history, target, seen, batch_size=1024, jit_compile=True):
    """int32 `[U]`: each user's target rank against the whole `table`, in batches of users."""
    rank_batch = model.cached_function(
        ("ranks", jit_compile),
        lambda: tf.function(
            lambda table, history, seen, target: target_ranks(score_users(model, table, history, seen), target),
            jit_compile=jit_compile,
        ),
    )
    table = tf.constant(table)
    return np.concatenate(
        [
            rank_batch(table, history[start:end], seen[start:end], target[start:end]).numpy()
            for start, end in _batches(len(history), batch_size)
        ]
    )


def full_ranking(model, data, split="test", k=10, batch_size=1024, jit_compile=True):
    """HR@k and NDCG@k of `model` on `data`'s leave-one-out `split`, by full ranking.

    Args:
        model: a `TransRec`.
        data: a `SequenceData` with the model's catalogue.
        split: `"valid"` (second to last item) or `"test"` (last item).
        k: the cut-off.
        batch_size: users per scoring batch.
        jit_compile: score under XLA.

    Returns:
        `{"hr@k": float, "ndcg@k": float, "users": int}`.
    """
    if not isinstance(data, SequenceData):
        raise TypeError(f"full_ranking needs a SequenceData, got {type(data).__name__}")
    model.check_catalogue(data)
    history, target, seen = data.evaluation(split, model.max_length)
    table = item_table(model, jit_compile=jit_compile)
    user_ranks = ranks(model, table, history, target, seen, batch_size, jit_compile)
    return {**ranking_metrics(user_ranks, k), "users": len(user_ranks)}


def popularity_ranking(data, split="test", k=10):
    """The most-popular baseline under the same protocol as `full_ranking`: no model, a reference point.

    Every user gets the same scores, each item's count in the training parts
    of all histories (the last two items of each left out), ties broken
    towards the lower item index so that none favours the target; the
    user's history is masked as for a model.

    Returns:
        `{"hr@k": float, "ndcg@k": float, "users": int}`.
    """
    if not isinstance(data, SequenceData):
        raise TypeError(f"popularity_ranking needs a SequenceData, got {type(data).__name__}")
    counts = np.bincount(np.concatenate([s[:-2] for s in data.sequences]), minlength=data.num_items + 1)
    # Distinct scores: count first, then the lower index (a fraction below 1 never reorders counts).
    scores = (counts - np.arange(data.num_items + 1) / (data.num_items + 1)).astype(np.float64)
    _, target, seen = data.evaluation(split, 1)
    user_ranks = target_ranks(mask_seen(np.tile(scores[None], (len(target), 1)), seen), target).numpy()
    return {**ranking_metrics(user_ranks, k), "users": len(user_ranks)}


class FullRankingCallback(keras.callbacks.Callback):
    """Adds `val_hr@k` and `val_ndcg@k` (full ranking on `data`'s `split`) to the logs after each epoch.

    Put it before callbacks that read them (early stopping); `TransRec.fit`
    does so for its `validation_data`. Scoring compiles with XLA when the
    model was compiled with it.
    """

    def __init__(self, data, split="valid", k=10, prefix="val_"):
        super().__init__()
        self.data, self.split, self.k, self.prefix = data, split, k, prefix

    def on_epoch_end(self, epoch, logs=None):
        # Scored under XLA when the model trains under XLA.
        results = full_ranking(self.model, self.data, self.split, self.k, jit_compile=bool(self.model.jit_compile))
        if logs is not None:
            for name in (f"hr@{self.k}", f"ndcg@{self.k}"):
                logs[self.prefix + name] = results[name]
