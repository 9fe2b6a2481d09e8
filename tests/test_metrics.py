"""Streaming metrics equal scikit-learn's on the same predictions."""

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from keras_mdr.training import TaskMetrics

RNG = np.random.default_rng(3)


def _data(n=5000, domains=3):
    d = RNG.integers(0, domains, n)
    y = (RNG.random(n) < 0.3 + 0.1 * d).astype("float32")
    p = np.clip(0.5 * y + 0.5 * RNG.random(n), 0.01, 0.99).astype("float32")
    return y, p, d.astype("int32")


def _updated(y, p, d, batches=5, num_bins=10_000):
    metric = TaskMetrics("click", ["a", "b", "c"], num_bins=num_bins)
    for part in np.array_split(np.arange(len(y)), batches):
        metric.update_state(y[part], p[part], d[part])
    return metric


def test_auc_and_logloss_per_domain_match_sklearn():
    y, p, d = _data()
    result = {k: float(v) for k, v in _updated(y, p, d).result().items()}
    assert result["click_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-3)
    assert result["click_logloss"] == pytest.approx(log_loss(y, p), abs=1e-5)
    for i, name in enumerate("abc"):
        rows = d == i
        assert result[f"click/{name}/auc"] == pytest.approx(roc_auc_score(y[rows], p[rows]), abs=1e-3)
        assert result[f"click/{name}/logloss"] == pytest.approx(log_loss(y[rows], p[rows]), abs=1e-5)


def test_auc_is_exact_when_predictions_fall_on_distinct_bins():
    y, _, d = _data(2000)
    p = ((RNG.permutation(10_000)[: len(y)] + 0.5) / 10_000).astype("float32")
    result = _updated(y, p, d).result()
    assert float(result["click_auc"]) == pytest.approx(roc_auc_score(y, p), abs=1e-6)


def test_ties_count_half_like_sklearn():
    y = np.array([1, 0, 1, 0, 1, 0], "float32")
    p = np.array([0.7, 0.7, 0.2, 0.2, 0.9, 0.1], "float32")
    d = np.zeros(6, "int32")
    metric = TaskMetrics("t", ["a"])
    metric.update_state(y, p, d)
    assert float(metric.result()["t_auc"]) == pytest.approx(roc_auc_score(y, p), abs=1e-6)


def test_masked_labels_are_ignored():
    y, p, d = _data(1000)
    masked = y.copy()
    masked[::3] = -1
    keep = masked >= 0
    result = _updated(masked, p, d).result()
    assert float(result["click_auc"]) == pytest.approx(roc_auc_score(y[keep], p[keep]), abs=1e-3)
    assert float(result["click_logloss"]) == pytest.approx(log_loss(y[keep], p[keep]), abs=1e-5)


def test_report_gives_counts_and_none_for_undefined_auc():
    y = np.array([1, 0, 1, 1], "float32")
    p = np.array([0.9, 0.2, 0.6, 0.7], "float32")
    d = np.array([0, 0, 1, 1], "int32")
    metric = TaskMetrics("t", ["a", "b"])
    metric.update_state(y, p, d)
    report = metric.report()
    assert report["count"] == 4
    assert report["domains"]["a"] == {"auc": 1.0, "logloss": pytest.approx(log_loss([1, 0], [0.9, 0.2])), "count": 2}
    assert report["domains"]["b"]["auc"] is None
    metric.reset_state()
    assert metric.report()["count"] == 0
