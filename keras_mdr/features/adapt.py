"""Learning vocabularies, normalisation statistics and domains from data."""

import dataclasses

import numpy as np
import pandas as pd

from keras_mdr import specs as specs_lib
from keras_mdr.data import columns as columns_lib
from keras_mdr.data import files as files_lib


def _vocabulary(values, feature):
    counts = pd.Series(values).value_counts(sort=False)
    counts = counts[counts >= feature.min_frequency]
    # Most frequent first; ties broken by value so that adapting is deterministic.
    order = sorted(zip(-counts.to_numpy(), counts.index.tolist()), key=lambda p: (p[0], p[1]))
    vocabulary = [v for _, v in order]
    if feature.max_vocabulary_size is not None:
        vocabulary = vocabulary[: feature.max_vocabulary_size]
    return [v for v in vocabulary if v != ""] if feature.kind == "multi_categorical" else vocabulary


def _split(values, feature):
    tokens = []
    for value in values:
        if value:
            tokens.extend(value.split(feature.separator)[: feature.max_len])
    return tokens


def adapt_feature(feature, frame, what="data"):
    """Returns `feature` with the statistics it still lacks learned from `frame`."""
    if feature.is_adapted:
        return feature
    values = columns_lib.feature_values(frame, feature, what)
    if feature.kind == "numeric":
        values = values.astype(np.float64)
        return dataclasses.replace(feature, mean=float(values.mean()), variance=float(values.var()))
    if feature.kind == "multi_categorical":
        values = _split(values, feature)
    vocabulary = _vocabulary(values, feature)
    if feature.dtype == specs_lib.INT64:
        vocabulary = [int(v) for v in vocabulary]
    return dataclasses.replace(feature, vocabulary=vocabulary)


def new_vocabulary(feature, frame, min_count, what="data"):
    """Values of a vocabulary `feature`'s column in `frame` that its vocabulary lacks.

    Args:
        feature: an adapted categorical or multi-valued feature with a
            vocabulary (not hashed).
        frame: a DataFrame with the feature's column.
        min_count: keep values seen at least this many times.

    Returns:
        The new values, most frequent first (ties by value), as `adapt_feature`
        orders a vocabulary.
    """
    values = columns_lib.feature_values(frame, feature, what)
    if feature.kind == "multi_categorical":
        values = _split(values, feature)
    counting = dataclasses.replace(feature, min_frequency=min_count, max_vocabulary_size=None, vocabulary=None)
    known = set(feature.vocabulary)
    new = [v for v in _vocabulary(values, counting) if v not in known]
    return [int(v) for v in new] if feature.dtype == specs_lib.INT64 else new


def adapt_domain(domain, frame, what="data"):
    """Returns `domain` with one domain per distinct value when it has no values yet."""
    if domain.is_adapted:
        return domain
    values = columns_lib.domain_values(frame, domain, what)
    distinct = sorted(pd.unique(values).tolist())
    dtype = domain.dtype or (specs_lib.INT64 if values.dtype == np.int64 else specs_lib.STRING)
    return specs_lib.Domain(domain.column, values=distinct, dtype=dtype)


def adapt(features, domain, data, what="data"):
    """Learns what the specs leave open (vocabularies, means, domains) from `data`.

    Args:
        features: feature specs or their dict forms.
        domain: a `Domain`, its dict form or a column name.
        data: a pandas DataFrame or a dict of columns (the training split),
            or files (`keras_mdr.data.file_dataset`'s `paths`), read whole
            into memory here (the domain needs its `dtype`).

    Returns:
        `(features, domain)`, new specs with every statistic filled in.
    """
    features, domain, _ = specs_lib.normalize_specs(features, domain, ["_"])
    if all(f.is_adapted for f in features) and domain.is_adapted:
        return features, domain
    if files_lib.is_file_source(data):
        data = files_lib.read_files(data, features, domain)
    frame = columns_lib.to_frame(data, what)
    if domain.dtype is None and domain.column in frame.columns:
        series = frame[domain.column]
        if pd.api.types.is_integer_dtype(series):
            domain = dataclasses.replace(domain, dtype=specs_lib.INT64)
        else:
            domain = dataclasses.replace(domain, dtype=specs_lib.STRING)
    features = [adapt_feature(f, frame, what) for f in features]
    return features, adapt_domain(domain, frame, what)
