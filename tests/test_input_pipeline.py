"""Streaming rows from CSV, Parquet and TFRecord files (`keras_mdr.data.files`) into training."""

import json
import os
import sys

import keras
import numpy as np
import pandas as pd
import pytest

import keras_mdr as km
from keras_mdr.data import columns as columns_lib
from keras_mdr.testing import tiny_synthetic
from test_distributed import HERE, run_workers


@pytest.fixture(scope="module")
def data():
    data = tiny_synthetic(300)
    features, domain = km.adapt(data.features, data.domain, data.frame)
    return data._replace(features=features, domain=domain)


def _typed(frame, data):
    """`frame`'s rows as the pipeline yields them: the inputs, labels and masks in their dtypes, columns sorted."""
    inputs, _ = columns_lib.prepare_columns(frame, data.features, data.domain, data.tasks)
    columns = {**inputs, **columns_lib.task_columns(frame, data.tasks)}
    return pd.DataFrame({c: columns[c] for c in sorted(columns)})


def _sorted_rows(frame):
    frame = frame[sorted(frame.columns)].astype({c: object for c in frame.columns if frame[c].dtype != object})
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def test_csv_to_tfrecord_shards_to_a_dataset_gives_the_rows_pandas_reads(data, tmp_path):
    data.frame.to_csv(tmp_path / "rows.csv", index=False)
    expected = _typed(km.data.read_table(tmp_path / "rows.csv", data.features, data.domain), data)

    from_csv = km.data.read_files(tmp_path / "rows.csv", data.features, data.domain, data.tasks)
    pd.testing.assert_frame_equal(from_csv[expected.columns], expected, check_dtype=False)

    paths = km.data.write_tfrecords(
        km.data.read_table(tmp_path / "rows.csv", data.features, data.domain), tmp_path / "shards",
        data.features, data.domain, data.tasks, shards=3,
    )
    assert [os.path.basename(p) for p in paths] == [f"part-0000{i}-of-00003.tfrecord" for i in range(3)]
    from_shards = km.data.read_files(str(tmp_path / "shards" / "*.tfrecord"), data.features, data.domain, data.tasks)
    pd.testing.assert_frame_equal(_sorted_rows(from_shards), _sorted_rows(expected))


def test_parquet_files_give_the_rows_pandas_reads(data, tmp_path):
    pytest.importorskip("pyarrow")
    halves = np.array_split(np.arange(len(data.frame)), 2)
    for i, rows in enumerate(halves):
        data.frame.iloc[rows].to_parquet(tmp_path / f"rows{i}.parquet")
    read = km.data.read_files(str(tmp_path / "rows*.parquet"), data.features, data.domain, data.tasks)
    pd.testing.assert_frame_equal(_sorted_rows(read), _sorted_rows(_typed(data.frame, data)))


def test_shuffled_files_give_every_row_once_in_a_seeded_order(data, tmp_path):
    paths = km.data.write_tfrecords(data.frame, tmp_path, data.features, data.domain, shards=4)
    features = [km.DenseFeature("age"), km.SparseFeature("user_id")]

    def order(seed):
        batches = km.data.file_dataset(paths, features, data.domain, batch_size=64, shuffle=True, seed=seed,
                                       shuffle_buffer=50)
        return [(u, a) for batch in batches.as_numpy_iterator() for u, a in zip(batch["user_id"], batch["age"])]

    first = order(1)
    assert first == order(1) and first != order(2)
    unshuffled = [(u.encode(), a) for u, a in zip(data.frame["user_id"], data.frame["age"].astype(np.float32))]
    assert first != unshuffled and sorted(first) == sorted(unshuffled)


@pytest.mark.parametrize("kind", ["csv", "tfrecord"])
def test_training_from_files_equals_training_from_the_dataframe_on_the_same_batches(data, tmp_path, kind):
    if kind == "csv":
        path = tmp_path / "train.csv"
        data.frame.to_csv(path, index=False)
    else:
        (path,) = km.data.write_tfrecords(data.frame, tmp_path, data.features, data.domain, data.tasks)

    def trained(rows):
        keras.utils.set_random_seed(5)
        model = km.build_model("shared_bottom", features=data.features, domain=data.domain, tasks=data.tasks,
                               bottom_units=[8], tower_units=[4])
        model.compile(optimizer=keras.optimizers.Adam(0.01), jit_compile=False)
        history = model.fit(rows, batch_size=64, epochs=1, shuffle=False, verbose=0)
        return model.get_weights(), history.history["loss"]

    weights, loss = trained(data.frame)
    file_weights, file_loss = trained(str(path))
    np.testing.assert_allclose(file_loss, loss, rtol=1e-5)
    for got, want in zip(file_weights, weights):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_each_worker_reads_its_own_files_and_both_train_on_unequal_shards(data, tmp_path):
    frame = data.frame.assign(row=np.arange(len(data.frame), dtype=np.float32))
    row = [km.DenseFeature("row")]
    # Shards of 87, 87 and 86 rows: worker 0 gets two of them, worker 1 one, so their batches differ in number.
    km.data.write_tfrecords(frame.iloc[:260], tmp_path, row, data.domain, shards=3, prefix="rows")
    km.data.write_tfrecords(data.frame, tmp_path, data.features, data.domain, data.tasks, shards=3, prefix="train")
    codes = run_workers([sys.executable, os.path.join(HERE, "multi_worker_files.py"), str(tmp_path)], tmp_path, 600)
    assert codes == [0, 0], "\n".join((tmp_path / f"worker{i}.log").read_text()[-3000:] for i in range(2))
    read = [json.loads((tmp_path / f"read{i}.json").read_text()) for i in range(2)]
    assert [r["policy"] for r in read] == ["FILE", "FILE"]
    rows = [set(r["rows"]) for r in read]
    assert not rows[0] & rows[1]
    assert sorted(read[0]["rows"] + read[1]["rows"]) == list(range(260))
    assert [len(r) for r in rows] == [173, 87]
    assert [r["epochs"] for r in read] == [2, 2]


def test_fewer_files_than_workers_are_split_by_row(tmp_path, data):
    (path,) = km.data.write_tfrecords(data.frame, tmp_path, data.features, data.domain)
    from keras_mdr.training.distributed import shard_policy

    class TwoWorkers:
        num_replicas_in_sync = 2

        class extended:
            worker_devices = ("/job:worker/task:0/device:CPU:0",)

    assert shard_policy(TwoWorkers, [path]).name == "DATA"
    assert shard_policy(TwoWorkers, [path, path]).name == "FILE"
    assert shard_policy(TwoWorkers, data.frame).name == "DATA"


def test_a_missing_column_names_the_file_and_the_column(data, tmp_path):
    data.frame.drop(columns=["age"]).to_csv(tmp_path / "rows.csv", index=False)
    with pytest.raises(ValueError, match=r"rows.csv: missing column 'age'"):
        km.data.file_dataset(tmp_path / "rows.csv", data.features, data.domain, data.tasks)
    km.data.write_tfrecords(data.frame, tmp_path, data.features, data.domain)  # no labels
    with pytest.raises(ValueError, match=r"part-00000-of-00001.tfrecord: missing column 'click'"):
        km.data.file_dataset(tmp_path / "part-00000-of-00001.tfrecord", data.features, data.domain, data.tasks)


def test_a_file_that_does_not_parse_names_the_file_and_the_column(data, tmp_path):
    data.frame.assign(item_id="x").to_csv(tmp_path / "ids.csv", index=False)
    with pytest.raises(ValueError, match=r"ids.csv: column 'item_id' must hold an integer, found 'x'"):
        km.data.file_dataset(tmp_path / "ids.csv", data.features, data.domain)
    (tmp_path / "bad.tfrecord").write_bytes(b"not a record")
    with pytest.raises(ValueError, match=r"bad.tfrecord: not a TFRecord file"):
        km.data.file_dataset(tmp_path / "bad.tfrecord", data.features, data.domain)
    with pytest.raises(FileNotFoundError, match=r"nothing-\*.csv \(no file matches\)"):
        km.data.file_dataset(str(tmp_path / "nothing-*.csv"), data.features, data.domain)


def test_the_pipelines_keras_mdr_builds_run_without_autotuning(data, tmp_path):
    # Autotuning's thread can hold the end of every epoch and predict call (keras_mdr.data.pipeline_options).
    from keras_mdr.transrec import preprocessing

    model = km.build_model("shared_bottom", features=data.features, domain=data.domain, tasks=data.tasks)
    data.frame.to_csv(tmp_path / "rows.csv", index=False)
    windows = np.arange(1, 13, dtype=np.int32).reshape(3, 4)
    pipelines = {
        "dataframe": model.make_dataset(data.frame, 64),
        "predict": model.make_dataset(data.frame, 64, labels=False),
        "files": model.make_dataset(str(tmp_path / "rows.csv"), 64),
        "transrec": preprocessing.training_dataset(windows, num_items=20, num_negatives=2, batch_size=2),
    }
    assert {name: d.options().autotune.enabled for name, d in pipelines.items()} == dict.fromkeys(pipelines, False)
