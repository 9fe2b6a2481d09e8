"""Optimizers, and the names `km.training.train(optimizer=..., table_optimizer=...)` and the config take."""

import keras

from keras_mdr.optimizers.lazy_adam import LazyAdam
from keras_mdr.optimizers.sparse_adagrad import SparseAdagrad
from keras_mdr.optimizers.split_optimizer import SplitOptimizer

# Which rows of an embedding table each one updates in a step (the README's "Big embedding tables").
OPTIMIZERS = {
    "adam": keras.optimizers.Adam,  # every row: absent rows' moments decay and they still move
    "lazy_adam": LazyAdam,  # only the rows in the batch; Keras' Adam everywhere else
    "adagrad": SparseAdagrad,  # only the rows in the batch (Keras' Adagrad: every row read, absent ones kept)
    "sgd": keras.optimizers.SGD,  # only the rows in the batch
}


def check_names(optimizer, table_optimizer=None):
    """Raises a `ValueError` unless `optimizer` (and `table_optimizer`, if not `None`) are names of `OPTIMIZERS`."""
    for argument, name in (("optimizer", optimizer), ("table_optimizer", table_optimizer)):
        if name not in OPTIMIZERS and (argument == "optimizer" or name is not None):
            raise ValueError(f"{argument} must be one of {list(OPTIMIZERS)}, got {name!r}")


def make_optimizer(optimizer, learning_rate, table_optimizer=None, table_learning_rate=None):
    """The optimizer `optimizer` names; with `table_optimizer`, a `SplitOptimizer` that gives it the tables.

    Args:
        optimizer: a name of `OPTIMIZERS`, for every variable (or, with
            `table_optimizer`, every variable but the embedding tables).
        learning_rate: its learning rate.
        table_optimizer: `None`, or a name of `OPTIMIZERS` for the embedding
            tables.
        table_learning_rate: the tables' learning rate (default
            `learning_rate`).
    """
    check_names(optimizer, table_optimizer)
    rest = OPTIMIZERS[optimizer](learning_rate)
    if table_optimizer is None:
        return rest
    tables = OPTIMIZERS[table_optimizer](learning_rate if table_learning_rate is None else table_learning_rate)
    return SplitOptimizer(tables, rest)
