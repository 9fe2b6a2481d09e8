"""Early stopping that survives an interrupted run."""

import json
import os

import keras
import numpy as np


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`EarlyStopping` that always restores the best weights, and resumes.

    At the end of training the weights of the best epoch are restored, whether
    training stopped early or ran all its epochs. With `state_dir`, the best
    value, the epochs waited and the best weights are written after every
    epoch, so a run resumed with `keras.callbacks.BackupAndRestore` goes on
    waiting from where it stopped and can still restore a best epoch from
    before the interruption. The state is removed when training ends.

    Args:
        state_dir: folder for the resumable state, or `None`.
        write_state: `False` to only read the state from `state_dir` (a
            worker other than the chief, which writes it).
        **kwargs: `keras.callbacks.EarlyStopping` arguments;
            `restore_best_weights` is always on.
    """

    def __init__(self, state_dir=None, write_state=True, **kwargs):
        kwargs["restore_best_weights"] = True
        super().__init__(**kwargs)
        self.state_dir = state_dir
        self.write_state = write_state

    def _paths(self):
        return (
            os.path.join(self.state_dir, "early_stopping.json"),
            os.path.join(self.state_dir, "best_weights.npz"),
        )

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.state_dir is None:
            return
        state_path, weights_path = self._paths()
        if os.path.exists(state_path) and os.path.exists(weights_path):
            with open(state_path) as f:
                state = json.load(f)
            self.best, self.wait, self.best_epoch = state["best"], state["wait"], state["best_epoch"]
            with np.load(weights_path) as saved:
                self.best_weights = [saved[f"arr_{i}"] for i in range(len(saved.files))]

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.state_dir is None or self.best_weights is None or not self.write_state:
            return
        os.makedirs(self.state_dir, exist_ok=True)
        state_path, weights_path = self._paths()
        # Model weights only (no optimizer state): the best epoch's weights are what gets restored.
        with open(weights_path + ".tmp", "wb") as f:
            np.savez(f, *self.best_weights)
        os.replace(weights_path + ".tmp", weights_path)
        with open(state_path + ".tmp", "w") as f:
            json.dump({"best": float(self.best), "wait": self.wait, "best_epoch": self.best_epoch}, f)
        os.replace(state_path + ".tmp", state_path)

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        if self.state_dir is not None and self.write_state:
            for path in self._paths():
                if os.path.exists(path):
                    os.remove(path)
