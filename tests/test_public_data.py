"""Loaders for the public benchmark formats, on the samples in ../shared/data (skipped when absent)."""

import os

import numpy as np
import pytest

import keras_mdr as km
from keras_mdr.data import public

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


def _path(relative):
    path = os.path.join(DATA, relative)
    if not os.path.exists(path):
        pytest.skip(f"{relative} is not in ../shared/data (real data is not redistributed with keras_mdr)")
    return path


def _prepared(data):
    features, domain = km.adapt(data.features, data.domain, data.frame)
    return km.data.prepare_columns(data.frame, features, domain, data.tasks), domain


def test_movielens_has_the_age_group_domains_and_rating_labels():
    data = public.movielens(_path("ml-100k/ml-100k.csv.gz"), tasks=("click", "like"))
    (inputs, labels), domain = _prepared(data)
    assert len(data.frame) == 100_000
    assert domain.names == ["age_1_18", "age_25", "age_35_56"]
    ids = domain.value_to_id()
    sizes = np.bincount([ids[a] for a in inputs["age"]], minlength=3)
    assert sizes.tolist() == [26_551, 35_444, 38_005]
    assert labels["click"].mean() == pytest.approx(0.554, abs=5e-4)
    assert labels["like"].sum() == (data.frame["rating"] == 5).sum()
    assert inputs["zip"].dtype == object


def test_ali_ccp_uses_column_301_as_the_domain():
    data = public.ali_ccp(_path("ali-ccp/ali_ccp_train_sample.csv"))
    (_, labels), domain = _prepared(data)
    assert domain.names == ["1", "2", "3"]
    assert set(labels) == {"click", "purchase"}
    assert all(f.kind == "numeric" for f in data.features if f.name.startswith("D"))


def test_kuairand_drops_the_columns_that_leak_the_label():
    data = public.kuairand(_path("kuairand/kuairand_sample.csv"))
    assert not set(public.KUAIRAND_LEAKY_COLUMNS) & {f.name for f in data.features}
    (_, labels), domain = _prepared(data)
    assert domain.names == ["1"]
    assert labels["click"].mean() == pytest.approx(0.16)


def test_douban_and_mind_domains():
    douban = public.douban(_path("douban/douban_sample.csv"))
    (_, _), domain = _prepared(douban)
    assert domain.names == ["book", "music", "movie"]
    mind = public.mind(_path("mind/mind_sample.csv"))
    (_, labels), domain = _prepared(mind)
    assert domain.names == ["finance", "lifestyle", "news", "sports"]
    assert labels["click"].mean() == pytest.approx(0.045, abs=1e-3)


def test_a_model_trains_on_a_public_sample():
    data = public.douban(_path("douban/douban_sample.csv"), embedding_dim=4)
    model = km.build_model("shared_bottom", features=data.features, domain=data.domain, tasks=data.tasks,
                           data=data.frame, bottom_units=[8], tower_units=[4])
    model.compile(optimizer="adam")
    history = model.fit(data.frame, epochs=1, batch_size=512, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
