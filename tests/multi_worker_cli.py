"""One worker of a `keras-mdr train` run on a two-process `MultiWorkerMirroredStrategy`.

Run by `test_distributed.py` with `TF_CONFIG` set. Usage:
`python multi_worker_cli.py CONFIG [KILL_AT_EPOCH]`: with `KILL_AT_EPOCH`,
worker 1 kills itself (SIGKILL, as a lost machine stops) at the second batch
of that epoch, after the chief has written the previous epoch's checkpoint.
"""

import json
import os
import signal
import sys

import keras

from keras_mdr import cli, run


class KillAtEpoch(keras.callbacks.Callback):
    """Kills this process at the second batch of `epoch` (0-based)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch, self.current = epoch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.current == self.epoch and batch == 1:
            os.kill(os.getpid(), signal.SIGKILL)


def main(config, kill_at_epoch=None):
    if kill_at_epoch is not None and json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 1:
        train = run.train

        def train_then_killed(*args, **kwargs):
            return train(*args, callbacks=[KillAtEpoch(int(kill_at_epoch))], **kwargs)

        run.train = train_then_killed
    return cli.main(["train", "--config", config])


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
