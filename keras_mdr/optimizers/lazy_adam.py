"""Adam whose sparse (embedding) updates touch only the rows of the batch."""

import keras
import tensorflow as tf

from keras_mdr.api_export import km_export
from keras_mdr.optimizers.row_updates import RowUpdates


@km_export("keras_mdr.optimizers.LazyAdam")
class LazyAdam(RowUpdates, keras.optimizers.Adam):
    """Adam that updates only the rows an embedding table's sparse gradient names.

    Keras' Adam applies its update to a whole embedding table every step:
    the moments of rows absent from the batch decay, and their update
    `m / (sqrt(v) + epsilon)` is not zero, so every row moves and every step
    costs a pass over the table. For a gradient that arrives as
    `tf.IndexedSlices` (an embedding lookup's), `LazyAdam` updates only the
    rows in the batch, with the gradient `g` of each row summed over its
    occurrences:

        m[r] <- m[r] + (1 - beta_1) (g[r] - m[r])
        v[r] <- v[r] + (1 - beta_2) (g[r]^2 - v[r])
        w[r] <- w[r] - lr sqrt(1 - beta_2^t) / (1 - beta_1^t) m[r] / (sqrt(v[r]) + epsilon)

    with `t` the optimizer's global step (`iterations + 1`), as in Keras'
    Adam; every other row of `w`, `m` and `v` is left as it was. A dense
    gradient (every other variable: the towers, the experts) gets exactly
    Keras' Adam update. It compiles under XLA (`jit_compile=True`): the
    repeated rows are summed with static shapes (`sum_repeated_rows`).

    Keras applies `weight_decay` and `use_ema` to whole variables, so with
    them the rows absent from a batch change too. Under a `tf.distribute`
    strategy, keras_mdr's step loop makes the gradients dense
    (`keras_mdr.training.distributed`), and `LazyAdam` then is Adam:
    lazy updates happen on one device only.

    Args:
        learning_rate, beta_1, beta_2, epsilon, amsgrad, and the other
        arguments: as for `keras.optimizers.Adam`.

    Example:

    >>> model.compile(optimizer=km.optimizers.LazyAdam(1e-3), jit_compile=True)

    Reference: the lazy Adam of TensorFlow Addons (`tfa.optimizers.LazyAdam`)
    and Kingma & Ba, "Adam: A Method for Stochastic Optimization", 2014.
    """

    def update_rows(self, rows, g, variable, learning_rate):
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        alpha = tf.cast(learning_rate, dtype) * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))

        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        m_rows = tf.gather(m.value, rows)
        m_rows = m_rows + (g - m_rows) * (1 - beta_1)
        v_rows = tf.gather(v.value, rows)
        v_rows = v_rows + (tf.square(g) - v_rows) * (1 - beta_2)
        self.assign(m, tf.IndexedSlices(m_rows, rows))
        self.assign(v, tf.IndexedSlices(v_rows, rows))
        if self.amsgrad:
            v_hat = self._velocity_hats[index]
            v_rows = tf.maximum(tf.gather(v_hat.value, rows), v_rows)
            self.assign(v_hat, tf.IndexedSlices(v_rows, rows))
        # Scattered as new values, not as a difference: a scatter_sub would subtract a repeated row's step
        # once per occurrence.
        w_rows = tf.gather(variable, rows) - m_rows * alpha / (tf.sqrt(v_rows) + self.epsilon)
        self.assign(variable, tf.IndexedSlices(w_rows, rows))
