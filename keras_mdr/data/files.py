"""Streaming raw rows from CSV, Parquet and TFRecord files through `tf.data`.

TensorFlow-only (the in-memory readers are `keras_mdr.data.readers`). A file
data set yields batches of raw columns, `{column: [batch]}`, in the dtypes the
model's inputs declare (`string` ids, `int64` ids and domain, `float32`
numbers, labels and masks): what `MultiDomainModel.make_dataset` accepts,
which puts the model's preprocessing after it. So a model trains, evaluates
and predicts on file paths as it does on a DataFrame.

The pipeline: the file names (shuffled each epoch when `shuffle`) are read
several at a time and their rows interleaved (`interleave`, in parallel,
deterministic: the same files and seed give the same rows in the same order),
optionally cached, shuffled in a buffer, batched, parsed a whole batch at a
time in parallel (`decode_csv`, `parse_example`) and prefetched. CSV and
TFRecord rows are read by TensorFlow's own readers, so a multi-worker run can
give each worker its own files (`AutoShardPolicy.FILE`, see
`keras_mdr.training.distributed.distribute_dataset`); Parquet is read by
pyarrow in a Python generator.

Errors: a pattern that matches nothing, a missing column and a first row that
does not parse raise when the data set is built, naming the file and the
column (each file's header, schema or first record is read then). A bad row
further into a file raises TensorFlow's parsing error when the pipeline
reaches it (with the record number, not the file).
"""

import glob
import gzip
import os

import numpy as np
import tensorflow as tf

from keras_mdr.data import columns as columns_lib
from keras_mdr.data.examples import parse_spec, serialize_columns
from keras_mdr.features.preprocessing import input_dtype

CSV, TSV, PARQUET, TFRECORD = "csv", "tsv", "parquet", "tfrecord"
# Suffix -> (format, compression). TensorFlow's readers decompress gzip only.
_SUFFIXES = {
    ".csv": (CSV, None),
    ".csv.gz": (CSV, "GZIP"),
    ".tsv": (TSV, None),
    ".tsv.gz": (TSV, "GZIP"),
    ".parquet": (PARQUET, None),
    ".pq": (PARQUET, None),
    ".tfrecord": (TFRECORD, None),
    ".tfrecords": (TFRECORD, None),
    ".tfrecord.gz": (TFRECORD, "GZIP"),
}
# Formats whose rows TensorFlow's own file readers produce: tf.data can shard them by file.
FILE_SHARDABLE = (CSV, TSV, TFRECORD)
DEFAULT_SHUFFLE_BUFFER = 65_536


def is_file_source(data):
    """Whether `data` names files: a path or glob (`str` / `os.PathLike`), or a list of them."""
    if isinstance(data, (str, os.PathLike)):
        return True
    return isinstance(data, (list, tuple)) and len(data) > 0 and all(isinstance(p, (str, os.PathLike)) for p in data)


def file_format(path):
    """`(format, compression)` of a data file by its suffix (compression `"GZIP"` or `None`).

    Raises:
        ValueError: an unknown suffix.
    """
    lower = os.fspath(path).lower()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return _SUFFIXES[suffix]
    raise ValueError(f"Unknown data format for {path}; streamed files must end with one of {list(_SUFFIXES)}")


def data_files(paths):
    """The sorted files that `paths` (a path, a glob, or a list of them) name, all of one format.

    Raises:
        FileNotFoundError: a path or pattern that matches no file.
        ValueError: files of several formats, or of an unknown one.
    """
    patterns = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    files = []
    for pattern in map(os.fspath, patterns):
        matched = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        matched = [f for f in matched if os.path.isfile(f)]
        if not matched:
            raise FileNotFoundError(f"Data file not found: {pattern}" + (" (no file matches)" * glob.has_magic(pattern)))
        files.extend(matched)
    formats = {file_format(f) for f in files}
    if len({kind for kind, _ in formats}) > 1:
        raise ValueError(f"Data files must all have one format, got {sorted(kind for kind, _ in formats)}: {files}")
    return files


def file_columns(features, domain, tasks=()):
    """`{column: tf.DType}` that a file must hold: the inputs, then each task's label and mask (`float32`)."""
    if domain.dtype is None:
        raise ValueError(
            f"Domain '{domain.column}' has no dtype yet: pass an adapted domain (a model's `domain`) or "
            "Domain(..., dtype='string' or 'int64')"
        )
    columns = {f.name: input_dtype(f) for f in features}
    columns.setdefault(domain.column, input_dtype(domain))
    for task in tasks:
        for column in (task.label, task.mask):
            if column is not None:
                columns.setdefault(column, tf.float32)
    return columns


def _missing(path, present, columns):
    missing = [c for c in columns if c not in present]
    if missing:
        shown = ", ".join(list(present)[:30])
        raise ValueError(f"{path}: missing column '{missing[0]}' (columns present: {shown})")


# CSV / TSV ----------------------------------------------------------------


def _first_lines(path, compression, count=2):
    opener = gzip.open if compression == "GZIP" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as f:
            return [f.readline().rstrip("\r\n") for _ in range(count)]
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot be read as a text file ({error})") from None


def _check_value(path, column, dtype, text):
    try:
        if dtype == tf.int64:
            int(text)
        elif dtype == tf.float32:
            float(text)
        return
    except ValueError:
        pass
    kind = "an integer" if dtype == tf.int64 else "a number"
    raise ValueError(f"{path}: column '{column}' must hold {kind}, found {text!r} in the first row")


def _csv_layout(files, columns, compression, delimiter):
    """Each needed column's index in the header, checked the same in every file."""
    layout = None
    for path in files:
        header, first = _first_lines(path, compression)
        names = tf.io.decode_csv(header, [""] * (header.count(delimiter) + 1), field_delim=delimiter)
        names = [n.numpy().decode() for n in names]
        _missing(path, names, columns)
        indices = {c: names.index(c) for c in columns}
        if layout is None:
            layout = indices
        elif indices != layout:
            raise ValueError(f"{path}: its columns are in another order than in {files[0]}; write every file alike")
        if not first:
            raise ValueError(f"{path}: has a header but no rows")
        try:
            row = tf.io.decode_csv(first, [""] * len(names), field_delim=delimiter)
        except tf.errors.InvalidArgumentError as error:
            raise ValueError(f"{path}: the first row does not parse: {error.message}") from None
        for column, index in indices.items():
            _check_value(path, column, columns[column], row[index].numpy().decode())
    return layout


def _csv_parser(columns, layout, delimiter):
    order = sorted(columns, key=layout.get)
    defaults = [tf.constant([], dtype=columns[c]) for c in order]  # required: an empty field is an error
    select = [layout[c] for c in order]

    def parse(lines):
        values = tf.io.decode_csv(lines, defaults, field_delim=delimiter, select_cols=select)
        return dict(zip(order, values))

    return parse


# TFRecord -----------------------------------------------------------------

_KINDS = {tf.string: "bytes_list", tf.int64: "int64_list", tf.float32: "float_list"}


def _check_tfrecords(files, columns, compression):
    for path in files:
        try:
            first = next(iter(tf.data.TFRecordDataset(path, compression_type=compression).take(1)), None)
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
            raise ValueError(f"{path}: not a TFRecord file of tf.Examples ({error.message})") from None
        if first is None:
            raise ValueError(f"{path}: has no records")
        try:
            example = tf.train.Example.FromString(first.numpy())
        except Exception as error:  # protobuf's DecodeError
            raise ValueError(f"{path}: its first record is not a tf.Example ({error})") from None
        present = example.features.feature
        _missing(path, list(present), columns)
        for column, dtype in columns.items():
            kind = present[column].WhichOneof("kind")
            if kind != _KINDS[dtype]:
                raise ValueError(f"{path}: column '{column}' holds {kind} in the first record, expected {_KINDS[dtype]}")


# Parquet ------------------------------------------------------------------


def _parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError as error:
        raise ImportError("Reading Parquet files needs pyarrow: pip install 'keras-mdr[parquet]'") from error
    return pq


def _check_parquet(files, columns):
    pq = _parquet()
    for path in files:
        try:
            schema = pq.read_schema(path)
        except Exception as error:  # pyarrow's ArrowInvalid
            raise ValueError(f"{path}: not a Parquet file ({error})") from None
        _missing(path, schema.names, columns)


def _parquet_batches(columns, batch_size):
    pq = _parquet()
    numpy_dtypes = {tf.string: object, tf.int64: np.int64, tf.float32: np.float32}

    def batches(path):
        path = path.decode()
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=list(columns)):
            values = {}
            for column, dtype in columns.items():
                array = batch.column(column).to_numpy(zero_copy_only=False)
                if dtype == tf.string:
                    array = np.where(array == None, "", array.astype(str))  # noqa: E711 (elementwise)
                try:
                    values[column] = array.astype(numpy_dtypes[dtype])
                except (TypeError, ValueError) as error:
                    raise ValueError(f"{path}: column '{column}' cannot be read as {dtype.name}: {error}") from None
            yield values

    return batches


# The pipeline -------------------------------------------------------------


def file_dataset(
    paths,
    features,
    domain,
    tasks=(),
    batch_size=4096,
    shuffle=False,
    seed=None,
    shuffle_buffer=DEFAULT_SHUFFLE_BUFFER,
    cache=False,
    cycle_length=4,
):
    """A `tf.data.Dataset` of batches of raw columns read from files.

    Args:
        paths: a file, a glob (`"data/train-*.tfrecord"`) or a list of them;
            CSV / TSV (optionally `.gz`), Parquet (needs pyarrow) or TFRecord
            files of `tf.Example`s (`write_tfrecords`), all of one format.
            CSV files need a header, the same in every file.
        features, domain: adapted specs (a model's `features` and `domain`):
            which columns to read and their dtypes.
        tasks: read each task's label and mask column too (`float32`).
        batch_size: rows per batch (the last may be smaller).
        shuffle: shuffle the files' order each epoch and the rows in a buffer
            of `shuffle_buffer` rows.
        seed: the shuffle seed (the same seed, the same order).
        cache: `True` keeps the rows read in memory after the first epoch, a
            path caches them in that file; later epochs skip reading and
            decompressing (they still shuffle and parse).
        cycle_length: files read at once, their rows interleaved.

    Returns:
        A data set of `{column: Tensor[batch]}` dicts: `string` and `int64`
        ids, `float32` numbers; labels and masks `float32`.

    Raises:
        FileNotFoundError, ValueError: see the module docstring.
    """
    files = data_files(paths)
    kind, compression = file_format(files[0])
    columns = file_columns(features, domain, tasks)
    names = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        names = names.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    cycle = min(cycle_length, len(files))

    if kind == PARQUET:
        _check_parquet(files, columns)
        signature = {c: tf.TensorSpec([None], dtype) for c, dtype in columns.items()}
        batches = _parquet_batches(columns, batch_size)
        rows = names.interleave(
            lambda path: tf.data.Dataset.from_generator(batches, args=(path,), output_signature=signature),
            cycle_length=cycle, num_parallel_calls=tf.data.AUTOTUNE,
        )
        if cache:
            rows = rows.cache("" if cache is True else os.fspath(cache))
        if shuffle:
            return rows.unbatch().shuffle(shuffle_buffer, seed=seed).batch(batch_size).prefetch(tf.data.AUTOTUNE)
        return rows.rebatch(batch_size).prefetch(tf.data.AUTOTUNE)

    if kind == TFRECORD:
        _check_tfrecords(files, columns, compression)
        spec = parse_spec({c: tf.TensorSpec([None], dtype) for c, dtype in columns.items()})

        def parse(records):
            return tf.io.parse_example(records, spec)

        def read(path):
            return tf.data.TFRecordDataset(path, compression_type=compression)
    else:
        delimiter = "\t" if kind == TSV else ","
        parse = _csv_parser(columns, _csv_layout(files, columns, compression, delimiter), delimiter)

        def read(path):
            return tf.data.TextLineDataset(path, compression_type=compression).skip(1)  # the header

    if shuffle:
        rows = names.interleave(read, cycle_length=cycle, num_parallel_calls=tf.data.AUTOTUNE)
        if cache:
            rows = rows.cache("" if cache is True else os.fspath(cache))
        batches = rows.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    else:
        # Unshuffled, the files are interleaved a batch at a time: tf.data's cost per element is then paid
        # per batch, not per row (rebatch evens out each file's short last batch).
        batches = names.interleave(
            lambda path: read(path).batch(batch_size), cycle_length=cycle, num_parallel_calls=tf.data.AUTOTUNE
        )
        if cache:
            batches = batches.cache("" if cache is True else os.fspath(cache))
        batches = batches.rebatch(batch_size)
    return batches.map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def read_files(paths, features, domain, tasks=(), num_rows=None):
    """Rows of `file_dataset` as a pandas DataFrame (strings decoded), in the pipeline's order.

    Args:
        num_rows: read at most this many rows (all by default).
    """
    import pandas as pd

    batches = file_dataset(paths, features, domain, tasks)
    if num_rows is not None:
        batches = batches.unbatch().take(num_rows).batch(num_rows)
    parts = [
        pd.DataFrame({c: np.char.decode(v.astype(bytes), "utf-8") if v.dtype == object else v for c, v in batch.items()})
        for batch in batches.as_numpy_iterator()
    ]
    return pd.concat(parts, ignore_index=True)


# Writing ------------------------------------------------------------------


def write_tfrecords(data, directory, features, domain, tasks=(), shards=1, prefix="part"):
    """Writes rows as TFRecord shards of `tf.Example`s that `file_dataset` reads.

    Rows are checked as for training (`prepare_columns`: errors name the
    column) and dealt to the shards in contiguous blocks of nearly equal
    size. Each row holds one feature per input column (`bytes_list` ids,
    `int64_list` ids, `float_list` numbers) and each task's label and mask
    column as `float_list`.

    Args:
        data: a pandas DataFrame or a dict of columns.
        directory: created if needed.
        features, domain, tasks: specs.
        shards: the number of files.
        prefix: files are `{prefix}-00000-of-00004.tfrecord`, ...

    Returns:
        The paths written.
    """
    if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
        raise ValueError(f"shards must be an integer >= 1, got {shards!r}")
    frame = columns_lib.to_frame(data)
    if shards > len(frame):
        raise ValueError(f"shards ({shards}) must not exceed the rows ({len(frame)}): a shard would be empty")
    inputs, _ = columns_lib.prepare_columns(frame, features, domain, tasks)
    columns = {**inputs, **columns_lib.task_columns(frame, tasks)}
    os.makedirs(directory, exist_ok=True)
    paths = []
    for shard, rows in enumerate(np.array_split(np.arange(len(frame)), shards)):
        path = os.path.join(directory, f"{prefix}-{shard:05d}-of-{shards:05d}.tfrecord")
        with tf.io.TFRecordWriter(path) as writer:
            for record in serialize_columns({c: v[rows] for c, v in columns.items()}):
                writer.write(record)
        paths.append(path)
    return paths
