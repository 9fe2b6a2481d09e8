"""Adagrad whose sparse (embedding) updates touch only the rows of the batch."""

import keras
import tensorflow as tf

from keras_mdr.api_export import km_export
from keras_mdr.optimizers.row_updates import RowUpdates


@km_export("keras_mdr.optimizers.SparseAdagrad")
class SparseAdagrad(RowUpdates, keras.optimizers.Adagrad):
    """Adagrad that reads and writes only the rows an embedding table's sparse gradient names.

    Adagrad leaves a row whose gradient is zero as it is, but Keras' Adagrad
    still passes over the whole table every step (`sqrt(accumulator +
    epsilon)` of every row), and it squares each occurrence of a repeated row
    before summing them. For a gradient that arrives as `tf.IndexedSlices`
    (an embedding lookup's), `SparseAdagrad` sums each row's occurrences
    first, `g[r]`, and updates only those rows:

        a[r] <- a[r] + g[r]^2
        w[r] <- w[r] - lr g[r] / sqrt(a[r] + epsilon)

    which is exactly dense Adagrad on the summed gradient, at a cost that
    follows the batch rather than the table. A dense gradient gets Keras'
    Adagrad. It compiles under XLA (`sum_repeated_rows` keeps static shapes).

    Args:
        learning_rate, initial_accumulator_value, epsilon, and the other
        arguments: as for `keras.optimizers.Adagrad`.
    """

    def update_rows(self, rows, g, variable, learning_rate):
        dtype = variable.dtype
        accumulator = self._accumulators[self._get_variable_index(variable)]
        a_rows = tf.gather(accumulator.value, rows) + tf.square(g)
        # Scattered as new values: a repeated row appears with equal values, so writing it twice is harmless.
        self.assign(accumulator, tf.IndexedSlices(a_rows, rows))
        step = tf.cast(learning_rate, dtype) * g / tf.sqrt(a_rows + self.epsilon)
        self.assign(variable, tf.IndexedSlices(tf.gather(variable, rows) - step, rows))
