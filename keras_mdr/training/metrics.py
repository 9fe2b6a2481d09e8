"""Streaming AUC and logloss of one task, pooled and per domain."""

import math

import keras
import numpy as np
from keras import ops

from keras_mdr.api_export import km_export

_EPSILON = 1e-7


def _auc(positives, negatives):
    """AUC from per-bin class counts `[..., bins]`; ties within a bin count one half."""
    negatives_below = ops.cumsum(negatives, axis=-1) - negatives
    concordant = ops.sum(positives * (negatives_below + 0.5 * negatives), axis=-1)
    total = ops.sum(positives, axis=-1) * ops.sum(negatives, axis=-1)
    return ops.where(total > 0, concordant / ops.maximum(total, 1.0), float("nan"))


def binary_logloss(labels, probabilities):
    """Elementwise binary cross-entropy of probabilities clipped to `[eps, 1 - eps]`."""
    p = ops.clip(probabilities, _EPSILON, 1.0 - _EPSILON)
    return -(labels * ops.log(p) + (1.0 - labels) * ops.log(1.0 - p))


@km_export("keras_mdr.training.TaskMetrics")
class TaskMetrics(keras.metrics.Metric):
    """AUC and logloss of one task: pooled over domains and for each domain.

    The AUC is exact for predictions bucketed into `num_bins` equal bins of
    `[0, 1]` (pairs in one bucket count as ties, as scikit-learn counts equal
    scores), so it streams with fixed memory `[D, num_bins]` and differs from
    the exact AUC by at most the mass of pairs that share a bucket. Rows whose
    label is negative (masked out) are ignored.

    Args:
        task: the task name, prefix of the result keys.
        domains: the domain names, in id order.
        num_bins: histogram resolution of the AUC.

    `update_state(labels [B], probabilities [B], domain_ids [B])`.
    `result()` is a dict: `{task}_auc`, `{task}_logloss`, and
    `{task}/{domain}/auc`, `{task}/{domain}/logloss` for each domain.
    """

    def __init__(self, task, domains, num_bins=10_000, **kwargs):
        kwargs.setdefault("name", f"{task}_metrics")
        super().__init__(**kwargs)
        self.task = task
        self.domains = [str(d) for d in domains]
        self.num_bins = int(num_bins)
        shape = (len(self.domains), self.num_bins)
        self.positives = self.add_variable(shape=shape, initializer="zeros", name="positives")
        self.negatives = self.add_variable(shape=shape, initializer="zeros", name="negatives")
        self.loss_sum = self.add_variable(shape=shape[:1], initializer="zeros", name="loss_sum")
        self.count = self.add_variable(shape=shape[:1], initializer="zeros", name="count")

    def update_state(self, labels, probabilities, domain_ids):
        labels = ops.cast(ops.reshape(labels, (-1,)), "float32")
        probabilities = ops.cast(ops.reshape(probabilities, (-1,)), "float32")
        domain_ids = ops.cast(ops.reshape(domain_ids, (-1,)), "int32")
        valid = ops.cast(labels >= 0, "float32")
        labels = ops.clip(labels, 0.0, 1.0)
        bins = ops.cast(ops.floor(ops.clip(probabilities, 0.0, 1.0) * self.num_bins), "int32")
        cells = domain_ids * self.num_bins + ops.minimum(bins, self.num_bins - 1)
        num_cells = len(self.domains) * self.num_bins
        shape = (len(self.domains), self.num_bins)

        def histogram(weights):
            return ops.reshape(ops.segment_sum(weights, cells, num_segments=num_cells), shape)

        n = len(self.domains)
        self.positives.assign_add(histogram(valid * labels))
        self.negatives.assign_add(histogram(valid * (1.0 - labels)))
        losses = binary_logloss(labels, probabilities) * valid
        self.loss_sum.assign_add(ops.segment_sum(losses, domain_ids, num_segments=n))
        self.count.assign_add(ops.segment_sum(valid, domain_ids, num_segments=n))

    def result(self):
        auc = _auc(self.positives, self.negatives)
        logloss = self.loss_sum / ops.maximum(self.count, 1.0)
        results = {
            f"{self.task}_auc": _auc(ops.sum(self.positives, 0), ops.sum(self.negatives, 0)),
            f"{self.task}_logloss": ops.sum(self.loss_sum) / ops.maximum(ops.sum(self.count), 1.0),
        }
        for i, domain in enumerate(self.domains):
            results[f"{self.task}/{domain}/auc"] = auc[i]
            results[f"{self.task}/{domain}/logloss"] = logloss[i]
        return results

    def report(self):
        """The current values as plain Python: `{auc, logloss, count, domains: {name: {...}}}`."""

        def clean(value):
            value = float(value)
            return None if math.isnan(value) else value

        positives = np.asarray(self.positives.numpy(), dtype=np.float64)
        negatives = np.asarray(self.negatives.numpy(), dtype=np.float64)
        loss_sum = np.asarray(self.loss_sum.numpy(), dtype=np.float64)
        count = np.asarray(self.count.numpy(), dtype=np.float64)
        auc = np.asarray(_auc(positives, negatives))
        pooled_auc = _auc(positives.sum(0), negatives.sum(0))
        report = {
            "auc": clean(pooled_auc),
            "logloss": clean(loss_sum.sum() / count.sum()) if count.sum() else None,
            "count": int(count.sum()),
            "domains": {},
        }
        for i, domain in enumerate(self.domains):
            report["domains"][domain] = {
                "auc": clean(auc[i]),
                "logloss": clean(loss_sum[i] / count[i]) if count[i] else None,
                "count": int(count[i]),
            }
        return report

    def reset_state(self):
        for variable in self.variables:
            variable.assign(ops.zeros(variable.shape, dtype=variable.dtype))

    def get_config(self):
        config = super().get_config()
        config.update(task=self.task, domains=self.domains, num_bins=self.num_bins)
        return config
