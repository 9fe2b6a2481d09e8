"""Reading tables from CSV (also gzipped) and Parquet files."""

import os

import pandas as pd

from keras_mdr import specs as specs_lib

_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz")
_TSV_SUFFIXES = (".tsv", ".tsv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")


def string_columns(features=(), domain=None):
    """Columns that must be read as text (ids such as zip codes keep leading zeros)."""
    columns = [f.name for f in features if f.dtype == specs_lib.STRING]
    if domain is not None and domain.dtype == specs_lib.STRING:
        columns.append(domain.column)
    return columns


def read_table(path, features=(), domain=None, columns=None):
    """Reads a CSV / TSV (optionally compressed) or Parquet file into a DataFrame.

    Args:
        path: the file; the format follows the suffix (`.csv`, `.csv.gz`,
            `.tsv`, `.parquet`, ...).
        features, domain: specs; string features and a string domain column
            are read as text, never as numbers.
        columns: read only these columns.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the format is unknown, or the file has no rows.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Data file not found: {path}")
    lower = path.lower()
    text = {c: str for c in string_columns(features, domain)}
    if lower.endswith(_PARQUET_SUFFIXES):
        try:
            frame = pd.read_parquet(path, columns=columns)
        except ImportError as error:
            raise ImportError(f"Reading {path} needs pyarrow: pip install 'keras-mdr[parquet]'") from error
        for column in text:
            if column in frame:
                frame[column] = frame[column].astype(str)
    elif lower.endswith(_CSV_SUFFIXES + _TSV_SUFFIXES):
        separator = "\t" if lower.endswith(_TSV_SUFFIXES) else ","
        try:
            frame = pd.read_csv(path, sep=separator, dtype=text or None, usecols=columns, keep_default_na=True)
        except pd.errors.EmptyDataError as error:
            raise ValueError(f"Data file {path} is empty") from error
    else:
        raise ValueError(
            f"Unknown data format for {path}; expected one of {_CSV_SUFFIXES + _TSV_SUFFIXES + _PARQUET_SUFFIXES}"
        )
    if len(frame) == 0:
        raise ValueError(f"Data file {path} has a header but no rows")
    return frame
