"""Optimizers, and the names `km.training.train(optimizer=...)` and the `training.optimizer` config key take."""

import keras

from keras_mdr.optimizers.lazy_adam import LazyAdam

# Which rows of an embedding table each one updates in a step (the README's "Big embedding tables").
OPTIMIZERS = {
    "adam": keras.optimizers.Adam,  # every row: absent rows' moments decay and they still move
    "lazy_adam": LazyAdam,  # only the rows in the batch; Keras' Adam everywhere else
    "adagrad": keras.optimizers.Adagrad,  # only the rows in the batch
    "sgd": keras.optimizers.SGD,  # only the rows in the batch
}
