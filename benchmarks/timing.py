"""Wall-clock timing shared by the benchmark scripts."""

import time


def timed_seconds(run, repeats):
    """Wall times of `repeats` calls of `run`, after one call that traces and compiles."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def median_seconds(run, repeats):
    """Median wall time of `repeats` calls of `run`, after one call that traces and compiles."""
    return sorted(timed_seconds(run, repeats))[repeats // 2]


class EpochTrainTimer:
    """A Keras callback recording each epoch's training time (first batch start to last batch end).

    Validation and callbacks that run at the end of an epoch (full-ranking
    evaluation) are left out. Built lazily so importing this module does not
    import Keras.
    """

    def __new__(cls):
        import keras

        class _Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds = []

            def on_epoch_begin(self, epoch, logs=None):
                self._start = self._end = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                self._end = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(self._end - self._start)

        return _Timer()
