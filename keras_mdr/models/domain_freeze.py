"""Keeps the source domains' parameters exactly as they were while a new domain trains.

A model that gained domains (`keras_mdr.transfer.add_domain`) holds two kinds
of variables: shared ones (embeddings, experts, bottoms, hyper-networks) and
per-domain ones, whose domain axis holds the source domains' rows followed by
the new domains' (towers, gates, norms and their moving statistics, biases,
domain embeddings and experts, adapters, LoRA factors). With a frozen method
the shared variables stop training and the per-domain ones train, and after
every training step their source rows are written back from a snapshot taken
when `fit` starts. So neither an optimiser (Adam's moments, weight decay) nor
a layer's state (`DomainNormalization`'s moving statistics, updated by every
domain present in a training batch) can move them. Shared non-trainable
state that a layer updates in training (AdaptDHM's cluster centroids,
AdaSparse's pruning schedule) is written back whole. So the source domains'
predictions stay bit-for-bit what they were.

Which axis of a variable is its domain axis is read off its shape: the same
model built with the source domains only (`reference`) has, on that one axis,
`rows_per_domain * source_domains` rows where this model has
`rows_per_domain * num_domains`. Per-(domain, task) tables are domain-major
(row `d * T + t`), so the source rows are the leading ones. An embedding
table whose vocabulary grew with ids first seen in a new domain is kept the
same way: the reference has the source vocabulary, the new ids' rows come
after the old ones, and only they train.
"""

import math

import keras
import numpy as np
from keras import ops


def domain_axis(old_shape, new_shape, old_domains, new_domains, path):
    """`(axis, rows_per_domain)` of a weight that grew with the domain count; `None` when it did not.

    Args:
        old_shape, new_shape: the weight's shapes with `old_domains` and
            `new_domains` domains.
        path: the weight's path, for the error message.

    Raises:
        ValueError: the shapes differ in a way that is not one domain-major
            axis of `rows_per_domain` rows per domain.
    """
    old_shape, new_shape = tuple(old_shape), tuple(new_shape)
    if old_shape == new_shape:
        return None
    differing = [a for a, (o, n) in enumerate(zip(old_shape, new_shape)) if o != n]
    if len(old_shape) == len(new_shape) and len(differing) == 1:
        axis = differing[0]
        rows, remainder = divmod(old_shape[axis], old_domains)
        if remainder == 0 and rows * new_domains == new_shape[axis]:
            return axis, rows
    raise ValueError(
        f"Cannot map weight '{path}' from {old_domains} to {new_domains} domains: its shape goes from "
        f"{old_shape} to {new_shape}, which is not one axis of a fixed number of rows per domain"
    )


def _grown_axis(old_shape, new_shape, path):
    """The one axis along which a weight grew (its leading `old_shape[axis]` rows are the source's); `None`."""
    old_shape, new_shape = tuple(old_shape), tuple(new_shape)
    if old_shape == new_shape:
        return None
    differing = [a for a, (o, n) in enumerate(zip(old_shape, new_shape)) if o != n]
    if len(old_shape) != len(new_shape) or len(differing) != 1 or new_shape[differing[0]] < old_shape[differing[0]]:
        raise ValueError(
            f"Cannot keep the source rows of weight '{path}': its shape goes from {old_shape} to {new_shape}, "
            "which is not one axis that grew"
        )
    return differing[0]


def _size(shape):
    return int(math.prod(shape))


class DomainFreeze:
    """Trains only the new domains' rows of a model's per-domain variables.

    Built by `MultiDomainModel` for a frozen transfer method. On
    construction it marks every shared variable non-trainable (and every
    layer left without a trainable variable, so that e.g. a shared
    `BatchNormalization` runs in inference mode) and every per-domain one
    trainable; `snapshot()` records the per-domain variables and the shared
    state at the start of training and `restore()` writes the source rows and
    the state back after each step.

    Args:
        model: the model with all its domains.
        reference: the same architecture built with the first
            `source_domains` domains and their vocabularies only (its
            weights' shapes are read).
        source_domains: the number of leading domains to keep frozen.
    """

    def __init__(self, model, reference, source_domains):
        if len(reference.weights) != len(model.weights):
            raise ValueError(
                f"Model '{model.name}' has {len(model.weights)} weights with {model.domain.num_domains} domains "
                f"but {len(reference.weights)} with {source_domains}: its layout cannot be mapped"
            )
        self.source_domains = source_domains
        self._frozen = []  # (variable, axis, source rows) of each per-domain variable and grown table
        self._state = []  # shared non-trainable variables: state a layer may update in training
        for ref, variable in zip(reference.weights, model.weights):
            axis = _grown_axis(ref.shape, variable.shape, variable.path)
            if axis is not None:
                self._frozen.append((variable, axis, ref.shape[axis]))
            elif not variable.trainable:
                self._state.append(variable)
        per_domain = {id(v) for v, _, _ in self._frozen}
        for variable in model.trainable_weights:
            if id(variable) not in per_domain:
                variable.trainable = False
        for layer in model._flatten_layers(include_self=False):
            if not any(v.trainable and id(v) in per_domain for v in layer.weights):
                layer.trainable = False
        self._anchors = None

    def frozen_size(self, variable):
        """How many of `variable`'s entries belong to the source domains (0 for a shared variable)."""
        for frozen, axis, rows in self._frozen:
            if frozen is variable:
                return _size(variable.shape) // variable.shape[axis] * rows
        return 0

    def _variables(self):
        return [v for v, _, _ in self._frozen] + self._state

    def snapshot(self):
        """Records the per-domain variables and the shared state as they are now (outside a traced step)."""
        if self._anchors is None:
            # From a copy: a Keras variable initialised with another variable's value may share its buffer.
            self._anchors = [
                keras.Variable(ops.convert_to_numpy(v), trainable=False, dtype=v.dtype, name=f"frozen_{i}")
                for i, v in enumerate(self._variables())
            ]
        else:
            for anchor, variable in zip(self._anchors, self._variables()):
                anchor.assign(variable.value)

    def restore(self):
        """Writes back the source domains' rows of every per-domain variable, and all shared state."""
        for anchor, (variable, axis, rows) in zip(self._anchors, self._frozen):
            shape = [1] * len(variable.shape)
            shape[axis] = variable.shape[axis]
            source = (np.arange(variable.shape[axis]) < rows).reshape(shape)
            variable.assign(ops.where(source, anchor, variable))
        for anchor, variable in zip(self._anchors[len(self._frozen) :], self._state):
            variable.assign(anchor)
