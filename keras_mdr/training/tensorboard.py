"""TensorBoard logs of a training run: every metric as a scalar, CESAA's expert routing as an image.

`keras.callbacks.TensorBoard` writes each epoch's logs: the loss, the mean
AUC and logloss, each task's, and each (domain, task)'s (`click/d0/auc`),
for training (`LOG_DIR/train`) and validation (`LOG_DIR/validation`). For a
model with a `ConditionalExperts` layer, `ExpertUtilizationImages` adds the
domains x experts heat map of `expert_utilization` as an image per epoch.
Writing summaries needs the `tensorboard` package (`pip install
'keras-mdr[tensorboard]'`), which is also what shows them:
`tensorboard --logdir LOG_DIR`. TensorFlow only.
"""

import io
import os

import keras
import pandas as pd
import tensorflow as tf

from keras_mdr.layers.experts.conditional_experts import ConditionalExperts
from keras_mdr.training.expert_utilization import expert_utilization, plot_expert_utilization

# Rows routed for the heat map each epoch: enough for stable shares, cheap next to an epoch.
UTILIZATION_ROWS = 4096


def _require_tensorboard():
    try:
        import tensorboard  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "Writing TensorBoard logs needs the tensorboard package. Run: pip install 'keras-mdr[tensorboard]'"
        ) from error


class ExpertUtilizationImages(keras.callbacks.Callback):
    """Writes the expert-utilisation heat map (domains x experts) to TensorBoard after each epoch.

    The image, tagged `expert_utilization`, goes to `LOG_DIR/validation`
    (the routing of `data`, usually validation rows), one per epoch, so
    TensorBoard's slider shows how each domain's routing settles.

    Args:
        data: raw rows to route (a DataFrame is sampled down to
            `UTILIZATION_ROWS` rows).
        log_dir: the TensorBoard log directory.
        layer_name: which `ConditionalExperts` layer, when there are several.
    """

    def __init__(self, data, log_dir, layer_name=None):
        super().__init__()
        _require_tensorboard()
        if isinstance(data, pd.DataFrame) and len(data) > UTILIZATION_ROWS:
            data = data.sample(n=UTILIZATION_ROWS, random_state=0)
        self.data = data
        self.log_dir = os.fspath(log_dir)
        self.layer_name = layer_name
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        table = expert_utilization(self.model, self.data, layer_name=self.layer_name)
        png = io.BytesIO()
        plot_expert_utilization(table, png, title=f"Expert utilisation per domain, epoch {epoch + 1}")
        image = tf.image.decode_png(png.getvalue(), channels=4)[None]
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "validation"))
        with self._writer.as_default():
            tf.summary.image("expert_utilization", image, step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def tensorboard_callbacks(model, log_dir, data):
    """The callbacks that log `model`'s training to `log_dir`.

    Args:
        model: a `MultiDomainModel`.
        log_dir: the TensorBoard log directory.
        data: raw rows for the expert heat map of a model with
            `ConditionalExperts` (validation rows, or training rows).

    Returns:
        A list: `keras.callbacks.TensorBoard` (scalars of every metric per
        epoch) and, for a model with one `ConditionalExperts` layer,
        `ExpertUtilizationImages`.
    """
    _require_tensorboard()
    callbacks = [keras.callbacks.TensorBoard(log_dir=os.fspath(log_dir), write_graph=False)]
    experts = [layer for layer in model.layers if isinstance(layer, ConditionalExperts)]
    if len(experts) == 1:
        callbacks.append(ExpertUtilizationImages(data, log_dir))
    return callbacks
