"""Raw columns in memory: checked once, with errors that name the column.

Every in-memory source (a pandas DataFrame, a dict of lists or arrays) goes
through `prepare_columns`, which returns a dict of 1-D numpy arrays in the
dtypes the model's inputs declare: `object` (str) for string ids, `int64` for
integer ids and the domain, `float32` for numbers and labels.
"""

import numpy as np
import pandas as pd

from keras_mdr import specs as specs_lib

IGNORED_LABEL = -1.0


def to_frame(data, what="data"):
    """Returns `data` (a DataFrame or a dict of equal-length columns) as a DataFrame."""
    if isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, dict):
        lengths = {k: len(np.atleast_1d(v)) for k, v in data.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"{what}: columns have different lengths: {lengths}")
        frame = pd.DataFrame({k: np.atleast_1d(v) for k, v in data.items()})
    else:
        raise TypeError(
            f"{what} must be a pandas DataFrame or a dict of columns, got {type(data).__name__}"
        )
    if len(frame) == 0:
        raise ValueError(f"{what} has no rows")
    return frame


def _require(frame, column, role, what):
    if column not in frame.columns:
        available = ", ".join(map(str, list(frame.columns)[:30]))
        raise ValueError(f"{what}: missing {role} column '{column}' (columns present: {available})")


def _first_bad(mask):
    return int(np.flatnonzero(mask)[0])


def _shown(series, row):
    """The value at `row` as plain Python, for messages (`3`, not `np.int64(3)`)."""
    value = series.iloc[row]
    return repr(value.item() if isinstance(value, np.generic) else value)


def _numeric(frame, column, role, what, expected="be numeric"):
    series = frame[column]
    if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
        converted = pd.to_numeric(series, errors="coerce")
        bad = converted.isna() & series.notna()
        if bad.any():
            row = _first_bad(bad.to_numpy())
            raise ValueError(
                f"{what}: {role} column '{column}' must {expected}, found {_shown(series, row)} at row {row}"
            )
        series = converted
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def _integers(frame, column, role, what):
    expected = "hold integer ids"
    values = _numeric(frame, column, role, what, expected)
    bad = ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        row = _first_bad(bad)
        raise ValueError(
            f"{what}: {role} column '{column}' must {expected}, found {_shown(frame[column], row)} at row {row}"
        )
    return values.astype(np.int64)


def _strings(frame, column):
    series = frame[column]
    return np.asarray(series.fillna("").astype(str).to_numpy(), dtype=object)


def feature_values(frame, feature, what="data"):
    """One feature's column as a numpy array in the dtype its input declares."""
    _require(frame, feature.name, "feature", what)
    if feature.kind == "numeric":
        values = _numeric(frame, feature.name, "numeric feature", what)
        bad = ~np.isfinite(values)
        if bad.any():
            row = _first_bad(bad)
            raise ValueError(
                f"{what}: numeric feature '{feature.name}' has {int(bad.sum())} NaN or infinite "
                f"values (first at row {row}); fill or drop them before training"
            )
        return values.astype(np.float32)
    if feature.dtype == specs_lib.INT64:
        return _integers(frame, feature.name, "categorical feature (int64)", what)
    return _strings(frame, feature.name)


def domain_values(frame, domain, what="data"):
    """The domain column as raw values (int64 or str), checked against the known domains."""
    _require(frame, domain.column, "domain", what)
    if domain.dtype == specs_lib.INT64:
        values = _integers(frame, domain.column, "domain", what)
    else:
        values = _strings(frame, domain.column)
    if domain.is_adapted:
        known = domain.value_to_id()
        unknown = sorted({v for v in pd.unique(values) if v not in known}, key=str)
        if unknown:
            raise ValueError(
                f"{what}: domain column '{domain.column}' has unknown values {unknown[:10]}; "
                f"known values: {sorted(known, key=str)}"
            )
    return values


def label_values(frame, task, what="data"):
    """The task's labels as float32, with IGNORED_LABEL where the task's mask is not 1."""
    _require(frame, task.label, f"label (task '{task.name}')", what)
    labels = _numeric(frame, task.label, f"label (task '{task.name}')", what)
    counts = np.ones(len(labels), dtype=bool)
    if task.mask is not None:
        _require(frame, task.mask, f"mask (task '{task.name}')", what)
        counts = _numeric(frame, task.mask, f"mask (task '{task.name}')", what) == 1
    bad = counts & ~np.isin(labels, (0.0, 1.0))
    if bad.any():
        row = _first_bad(bad)
        raise ValueError(
            f"{what}: label column '{task.label}' (task '{task.name}') must be 0 or 1, "
            f"found {_shown(frame[task.label], row)} at row {row}"
        )
    return np.where(counts, labels, IGNORED_LABEL).astype(np.float32)


def task_columns(frame, tasks, what="data"):
    """Each task's label and mask column as raw `float32` values, checked as `label_values` checks them."""
    columns = {}
    for task in tasks:
        label_values(frame, task, what)
        for column, role in ((task.label, "label"), (task.mask, "mask")):
            if column is not None and column not in columns:
                columns[column] = _numeric(frame, column, f"{role} (task '{task.name}')", what).astype(np.float32)
    return columns


def prepare_columns(data, features, domain, tasks=(), what="data"):
    """Checks and converts raw data into `(inputs, labels)` dicts of numpy arrays.

    Args:
        data: a pandas DataFrame or a dict of columns.
        features, domain, tasks: specs.
        what: how error messages name the data.

    Returns:
        `inputs` keyed by input name (features and the domain column) and
        `labels` keyed by task name (empty if `tasks` is empty).
    """
    frame = to_frame(data, what)
    inputs = {}
    for feature in features:
        inputs[feature.name] = feature_values(frame, feature, what)
    domain_raw = domain_values(frame, domain, what)
    # A column that is both a feature and the domain is one input (normalize_specs
    # checks that both declare the same dtype).
    inputs.setdefault(domain.column, domain_raw)
    labels = {task.name: label_values(frame, task, what) for task in tasks}
    return inputs, labels
