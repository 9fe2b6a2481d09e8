"""Test helpers for exported models: unseen values, a TensorFlow-only process, tiny zoo configs.

`TfOnlyPrediction` runs an exported SavedModel in a fresh Python
process whose import path holds TensorFlow and its dependencies but neither
Keras nor keras_mdr (a view of site-packages without them, `python -S`), so a
SavedModel that still needed either would fail to load there.
"""

import inspect
import os
import subprocess
import sys
import tempfile

import numpy as np

_TF_ONLY_SCRIPT = r'''
import sys
import numpy as np
import tensorflow as tf

version_dir, inputs_path, outputs_path, single_rows = sys.argv[1:5]
loaded = tf.saved_model.load(version_dir)
serve = loaded.signatures["serving_default"]


def plain(values):
    values = values.numpy()
    return values.astype(str) if values.dtype == object else values  # strings without pickling


inputs = dict(np.load(inputs_path))
results = {}
for task, values in serve(**{k: tf.constant(v) for k, v in inputs.items()}).items():
    results[f"batch/{task}"] = plain(values)
for row in [int(r) for r in single_rows.split(",") if r]:
    alone = serve(**{k: tf.constant(v[row : row + 1]) for k, v in inputs.items()})
    for task, values in alone.items():
        results[f"row{row}/{task}"] = plain(values)
present = sorted(m for m in sys.modules if m.split(".")[0] in ("keras", "keras_mdr"))
if present:
    sys.exit(f"Keras or keras_mdr got imported: {present[:5]}")
np.savez(outputs_path, **results)
'''

_EXCLUDED = ("keras", "tf_keras", "__editable__")


def _site_packages_without_keras(directory):
    import tensorflow as tf

    site_packages = os.path.dirname(os.path.dirname(os.path.abspath(tf.__file__)))
    for entry in os.listdir(site_packages):
        if entry.startswith(_EXCLUDED) or entry.endswith(".pth"):
            continue
        os.symlink(os.path.join(site_packages, entry), os.path.join(directory, entry))


class TfOnlyPrediction:
    """`serving_default` of a SavedModel, running in a process where only TensorFlow imports.

    The process starts at construction; `result()` waits for it. Starting it
    early lets its TensorFlow import overlap other work.

    Args:
        version_dir: the exported version directory.
        columns: `{input: 1-D numpy array}` (strings as `str`).
        single_rows: row indices to also predict alone (batch size 1).
    """

    def __init__(self, version_dir, columns, single_rows=()):
        self._tmp = tempfile.TemporaryDirectory()
        tmp = self._tmp.name
        site = os.path.join(tmp, "site")
        os.mkdir(site)
        _site_packages_without_keras(site)
        script = os.path.join(tmp, "predict.py")
        with open(script, "w") as f:
            f.write(_TF_ONLY_SCRIPT)
        inputs_path, self._outputs_path = os.path.join(tmp, "inputs.npz"), os.path.join(tmp, "outputs.npz")
        np.savez(inputs_path, **{k: (v.astype(str) if v.dtype == object else v) for k, v in columns.items()})
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env.update(PYTHONPATH=site, TF_CPP_MIN_LOG_LEVEL="2")
        rows = ",".join(str(int(r)) for r in single_rows)
        self._process = subprocess.Popen(
            [sys.executable, "-S", script, os.fspath(version_dir), inputs_path, self._outputs_path, rows],
            env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )

    def result(self, timeout=120):
        """`({task: [N]}, {row: {task: [1]}})`: the whole batch and each single row."""
        try:
            _, stderr = self._process.communicate(timeout=timeout)
            if self._process.returncode != 0:
                raise AssertionError(f"TensorFlow-only process failed:\n{stderr[-3000:]}")
            outputs = dict(np.load(self._outputs_path))
        finally:
            if self._process.poll() is None:
                self._process.kill()
                self._process.wait()
            self._tmp.cleanup()
        batch = {k.split("/", 1)[1]: v for k, v in outputs.items() if k.startswith("batch/")}
        alone = {}
        for key, values in outputs.items():
            if key.startswith("row"):
                row, task = key[3:].split("/", 1)
                alone.setdefault(int(row), {})[task] = values
        return batch, alone


def with_unseen_values(frame, every=5):
    """A copy of a `keras_mdr.data.synthetic` frame with unseen categorical values in every `every`-th row."""
    frame = frame.copy()
    rows = frame.index[::every]
    frame.loc[rows, "user_id"] = "user-never-seen"
    frame.loc[rows, "item_id"] = 10**9
    frame.loc[rows, "gender"] = "unknown-gender"
    frame.loc[rows, "category"] = "category-never-seen"
    frame.loc[rows, "tags"] = "tag-never-seen|t1"
    return frame


def tiny_hyper_parameters(name, width=8):
    """A registered model's defaults with every layer width capped at `width`.

    Widths are the integer (or list-of-integer) parameters whose names say
    units or dim; counts (experts, levels, top-k) keep their defaults so
    that their constraints hold for models added later.
    """
    from keras_mdr.models.registry import model_class

    params = {}
    for parameter in inspect.signature(model_class(name).__init__).parameters.values():
        default = parameter.default
        if not any(word in parameter.name for word in ("units", "dim")):
            continue
        if isinstance(default, (list, tuple)) and all(isinstance(v, int) for v in default):
            params[parameter.name] = [min(v, width) for v in default]
        elif isinstance(default, int) and not isinstance(default, bool):
            params[parameter.name] = min(default, width)
    return params
