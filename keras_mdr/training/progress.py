"""A progress bar a person can read, and the per-(domain, task) table once per epoch.

A keras_mdr model streams AUC and logloss per task and per (domain, task):
`2 + 2 T + 2 D T` numbers, 26 for 3 domains and 2 tasks, twice that with
validation. Keras' progress bar would print every one on every step. Here the
bar shows the loss and each task's pooled AUC, and the per-(domain, task)
numbers come as a table at the end of an epoch. Nothing is removed from the
logs: `History`, `metrics.json` and TensorBoard keep every metric.
"""

import math

import keras

from keras_mdr.training.report import format_report

MAX_LINE_LENGTH = 200
# The visible width of a progress line before its metrics, for up to 99999 steps an epoch:
# "12345/12345 " + the 20-character bar + " 1:23:45" (ETA) + " 999ms/step".
_BAR_WIDTH = 12 + 20 + 8 + 11


def _line_length(keys):
    # " - name: value": an AUC prints as "0.1234", a loss as "0.1234" or, below 1e-3, "1.2345e-04".
    return _BAR_WIDTH + sum(len(f" - {key}: ") + (10 if key.endswith("loss") else 6) for key in keys)


def headline_metrics(tasks, max_line_length=MAX_LINE_LENGTH):
    """The metrics the bar shows: `loss` and each task's AUC, or the mean `auc` if that is too wide.

    Args:
        tasks: the task names.
        max_line_length: the longest progress line allowed, with validation metrics.

    Returns:
        The metric names without the `val_` prefix.
    """
    per_task = ["loss"] + [f"{task}_auc" for task in tasks]
    if _line_length(per_task + [f"val_{key}" for key in per_task]) <= max_line_length:
        return per_task
    return ["loss", "auc"]


def report_from_logs(logs, tasks, domains, prefix=""):
    """`evaluate_report`'s structure (without counts) from flat Keras logs, or `None` if absent.

    Args:
        logs: `{name: value}` as Keras passes to callbacks.
        tasks, domains: the names.
        prefix: `"val_"` for the validation metrics.
    """

    def value(key):
        found = logs.get(prefix + key)
        if found is None:
            return None
        found = float(found)
        return None if math.isnan(found) else found

    if prefix + f"{tasks[0]}_auc" not in logs:
        return None
    report = {"tasks": {}}
    for task in tasks:
        report["tasks"][task] = {
            "auc": value(f"{task}_auc"),
            "logloss": value(f"{task}_logloss"),
            "domains": {
                domain: {"auc": value(f"{task}/{domain}/auc"), "logloss": value(f"{task}/{domain}/logloss")}
                for domain in domains
            },
        }
    return report


class ProgressLogger(keras.callbacks.ProgbarLogger):
    """Keras' progress bar with the headline metrics; the per-(domain, task) table every N epochs.

    `MultiDomainModel.fit` and `evaluate` add one when no `ProgbarLogger`
    is among the callbacks, so `verbose` means what it does in Keras: 0
    silent, 1 a progress bar, 2 one line per epoch. Pass your own to change
    the table's frequency.

    The bar shows `loss` and each task's pooled AUC (`click_auc`), and their
    `val_` forms; when that would make a line longer than `max_line_length`
    characters (many tasks), the mean AUC over tasks instead. After every
    `table_every_epochs`-th epoch (and the last) it prints the AUC and
    logloss per domain and task, of the validation data when there is some,
    in `format_report`'s form. Other callbacks still receive every metric.

    Args:
        table_every_epochs: print the table after every this many epochs;
            0 never prints it.
        max_line_length: the longest progress line allowed.

    Example:

    ```python
    model.fit(train, validation_data=valid, epochs=20,
              callbacks=[km.training.ProgressLogger(table_every_epochs=5)])
    ```
    """

    async_safe = True  # as Keras' own progress bar, which fit adds after choosing async dispatch

    def __init__(self, table_every_epochs=1, max_line_length=MAX_LINE_LENGTH):
        super().__init__()
        if not isinstance(table_every_epochs, int) or table_every_epochs < 0:
            raise ValueError(f"table_every_epochs must be an integer >= 0, got {table_every_epochs!r}")
        self.table_every_epochs = table_every_epochs
        self.max_line_length = max_line_length

    def _headline(self, logs):
        if not logs:
            return logs
        keys = headline_metrics([t.name for t in self.model.tasks], self.max_line_length)
        keys = keys + [f"val_{key}" for key in keys]
        return {key: logs[key] for key in keys if key in logs}

    def _update_progbar(self, batch, logs=None):
        super()._update_progbar(batch, self._headline(logs))

    def _finalize_progbar(self, logs):
        super()._finalize_progbar(self._headline(logs))

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if not self.verbose or not self.table_every_epochs or not logs:
            return
        last = epoch + 1 == self.epochs
        if (epoch + 1) % self.table_every_epochs and not last:
            return
        tasks, domains = [t.name for t in self.model.tasks], self.model.domain.names
        for prefix, split in (("val_", "validation"), ("", "training")):
            report = report_from_logs(logs, tasks, domains, prefix)
            if report is not None:
                title = f"Epoch {epoch + 1}, {split}: AUC / logloss per domain and task"
                print(format_report(report, title=title, max_width=self.max_line_length), flush=True)
                return


def with_progress_logger(callbacks):
    """`callbacks` plus a `ProgressLogger` unless they hold a progress bar already."""
    if isinstance(callbacks, keras.callbacks.CallbackList):
        return callbacks
    callbacks = list(callbacks or [])
    if not any(isinstance(c, keras.callbacks.ProgbarLogger) for c in callbacks):
        callbacks.append(ProgressLogger())
    return callbacks
