"""Keras callbacks for the training tests: record epochs, spoil weights, simulate an interruption."""

import keras
import numpy as np


class EpochRecorder(keras.callbacks.Callback):
    """Records `weights` and `val_loss` per epoch; at epoch `spoil_at` first spoils the weights (+3),
    so that a later epoch cannot be the best one."""

    def __init__(self, spoil_at=None):
        super().__init__()
        self.weights, self.val_loss, self.spoil_at = [], [], spoil_at

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.spoil_at:
            self.model.set_weights([w + np.float32(3.0) for w in self.model.get_weights()])

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())
        self.val_loss.append(logs["val_loss"])


class InterruptAtEpoch2(keras.callbacks.Callback):
    """Raises `KeyboardInterrupt` as epoch 2 begins, as a killed run would stop."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            raise KeyboardInterrupt("simulated interruption")
