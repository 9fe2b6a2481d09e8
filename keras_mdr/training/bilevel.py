"""Bi-level training: network weights on training batches, structure weights on validation batches.

A first-order bi-level step (as in DARTS): for each training batch, one
optimiser step on the structure weights with the gradient of the loss on a
validation batch, then one step of the model's own optimiser on every other
trainable weight with the gradient of the loss on the training batch. The two
sets never share an update. It runs inside the normal `keras.Model.fit`: the
training dataset is zipped with a repeated validation stream
(`with_validation_stream`), and the model's `train_step` calls
`bilevel_train_step`, which compiles under `jit_compile=True` like the
ordinary step. TensorFlow only (it takes gradients with `tf.GradientTape`).
"""

import tensorflow as tf
from keras.utils import unpack_x_y_sample_weight


def with_validation_stream(train_dataset, validation_dataset):
    """Pairs each training batch with the next batch of an endless validation stream.

    Args:
        train_dataset: batched `(x, y)` training data.
        validation_dataset: batched `(x, y)` validation data; it is repeated,
            so the epoch's length is the training data's.

    Returns:
        A `tf.data.Dataset` of `((x, y), (x_val, y_val))`.
    """
    return tf.data.Dataset.zip((train_dataset, validation_dataset.repeat()))


def network_variables(model, structure_variables):
    """The model's trainable variables other than `structure_variables`."""
    structure_ids = {id(v) for v in structure_variables}
    return [v for v in model.trainable_variables if id(v) not in structure_ids]


def _loss(model, batch):
    x, y, sample_weight = unpack_x_y_sample_weight(batch)
    y_pred = model(x, training=True)
    return x, y, sample_weight, y_pred, model.compute_loss(x, y, y_pred, sample_weight, training=True)


def bilevel_train_step(model, data, structure_variables, structure_optimizer):
    """One bi-level step; a drop-in body for `model.train_step`.

    The structure step runs the model in training mode on the validation
    batch (batch statistics, dropout, as the network step sees it) and then
    restores the non-trainable state (e.g. moving normalisation statistics),
    so validation rows change nothing but the structure weights.

    Args:
        model: a compiled Keras model; `model.optimizer` steps the network.
        data: `((x, y), (x_val, y_val))` from `with_validation_stream`.
        structure_variables: the weights to learn on validation batches only.
        structure_optimizer: a built optimiser for `structure_variables`.

    Returns:
        The model's metrics on the training batch (`compute_metrics`).
    """
    if not (isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], (tuple, list))):
        raise ValueError(
            "Bi-level training needs (training batch, validation batch) pairs; fit the model with "
            "validation_data (see keras_mdr.training.bilevel.with_validation_stream)"
        )
    train_batch, validation_batch = data

    state = [tf.identity(v.value) for v in model.non_trainable_weights]
    with tf.GradientTape() as tape:
        validation_loss = _loss(model, validation_batch)[-1]
        validation_loss = structure_optimizer.scale_loss(validation_loss)
    gradients = tape.gradient(validation_loss, structure_variables)
    structure_optimizer.apply(gradients, structure_variables)
    for variable, value in zip(model.non_trainable_weights, state):
        variable.assign(value)

    with tf.GradientTape() as tape:
        x, y, sample_weight, y_pred, loss = _loss(model, train_batch)
        # Keras' own train step reports the loss through this tracker too.
        model._loss_tracker.update_state(loss, sample_weight=tf.shape(tf.nest.flatten(y_pred)[0])[0])
        loss = model.optimizer.scale_loss(loss)
    variables = network_variables(model, structure_variables)
    model.optimizer.apply(tape.gradient(loss, variables), variables)
    return model.compute_metrics(x, y, y_pred, sample_weight)
