"""TensorBoard logs: every metric per (domain, task) as scalars, CESAA's expert routing as an image per epoch."""

import collections
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

import keras_mdr as km
from keras_mdr.testing import tiny_synthetic
from keras_mdr.testing.serving_checks import tiny_hyper_parameters

pytest.importorskip("tensorboard", reason="TensorBoard logs need the tensorboard package (the tensorboard extra)")


def _read_events(folder):
    """`{tag: {step: value}}` of the event files in `folder`; images as decoded arrays."""
    found = collections.defaultdict(dict)
    for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                tensor = tf.make_ndarray(value.tensor)
                if value.metadata.plugin_data.plugin_name == "images":
                    found[value.tag][event.step] = tf.image.decode_png(tensor[2]).numpy()
                else:
                    found[value.tag][event.step] = float(tensor)
    return found


def test_event_files_hold_every_metric_per_domain_and_task_and_the_expert_heat_map(tmp_path):
    data = tiny_synthetic(600)
    train, valid = km.data.random_split(data.frame, (0.7, 0.3), seed=0)
    model = km.build_model(
        "cesaa", features=data.features, domain=data.domain, tasks=data.tasks, data=train,
        **tiny_hyper_parameters("cesaa"),
    )
    history = km.training.train(
        model, train, valid, epochs=2, batch_size=128, jit_compile=False, verbose=0, tensorboard_dir=tmp_path
    )
    for split, prefix in (("train", ""), ("validation", "val_")):
        events = _read_events(tmp_path / split)
        expected = [name[len(prefix):] for name in history.history if name.startswith(prefix)]
        if not prefix:
            expected = [name for name in expected if not name.startswith("val_")]
        assert {"loss", "auc", "click_auc", "click/d0/auc", "like/d2/logloss"} <= set(expected)
        for name in expected:  # every metric, both epochs, the values fit saw
            logged = events[f"epoch_{name}"]
            np.testing.assert_allclose([logged[0], logged[1]], history.history[prefix + name], rtol=1e-6, err_msg=name)
    images = _read_events(tmp_path / "validation")["expert_utilization"]
    assert sorted(images) == [0, 1]
    height, width, channels = images[1].shape
    assert height > 100 and width > 100 and channels == 4
    assert images[0].std() > 0, "the heat map image is blank"


def test_a_model_without_conditional_experts_logs_no_image(tmp_path):
    data = tiny_synthetic(300)
    model = km.build_model("shared_bottom", features=data.features, domain=data.domain, tasks=data.tasks,
                           data=data.frame, bottom_units=[4], tower_units=[2])
    callbacks = km.training.tensorboard_callbacks(model, tmp_path, data.frame)
    assert [type(c).__name__ for c in callbacks] == ["TensorBoard"]
