"""Sparse updates of embedding tables: the rows a sparse gradient names, each row's occurrences summed."""

import tensorflow as tf


def sum_repeated_rows(gradient):
    """Sums the slices of an `IndexedSlices` that share a row, with static shapes (XLA needs them).

    `tf.unique` would give the distinct rows, but its output shape depends on
    the data, which XLA cannot compile. Sorting keeps the shape: after an
    argsort, equal indices are adjacent, a running count of index changes
    numbers the distinct rows, and a segment sum over those numbers (with as
    many segments as slices, the most there can be) adds each row's slices.

    Args:
        gradient: `tf.IndexedSlices` with `indices` `[N]` and `values`
            `[N, ...]`.

    Returns:
        `(rows, summed)`: `rows` `[N]`, the indices sorted, and `summed`
        `[N, ...]`, at each position the sum of all slices of that position's
        row. A row that appears k times appears k times in both, with equal
        values, so a scatter of them writes the same value k times.
    """
    order = tf.argsort(gradient.indices, stable=True)
    rows = tf.gather(gradient.indices, order)
    values = tf.gather(gradient.values, order)
    # True where a new row starts (an empty batch stays empty).
    starts = (tf.range(tf.size(rows)) == 0) | (rows != tf.roll(rows, shift=1, axis=0))
    segment = tf.cumsum(tf.cast(starts, tf.int32)) - 1
    sums = tf.math.unsorted_segment_sum(values, segment, num_segments=tf.shape(rows)[0])
    return rows, tf.gather(sums, segment)


class RowUpdates:
    """Mixin for a Keras optimizer: a sparse gradient updates only its rows, through `update_rows`.

    A dense gradient gets the base optimizer's `update_step`. A
    `tf.IndexedSlices` one (an embedding lookup's) is summed per row first
    (`sum_repeated_rows`), cast to the variable's dtype, and handed to
    `update_rows(rows, g, variable, learning_rate)`, which the optimizer
    defines: it must scatter new values into `variable` and its slots for
    `rows` (`[N]`, sorted, repeated rows with equal `g` `[N, ...]`) only.
    """

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices):
            super().update_step(gradient, variable, learning_rate)
            return
        rows, g = sum_repeated_rows(gradient)
        self.update_rows(rows, tf.cast(g, variable.dtype), variable, learning_rate)
