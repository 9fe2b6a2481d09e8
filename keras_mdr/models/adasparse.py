"""AdaSparse: one MLP whose neurons each domain weights and prunes."""

import keras
import numpy as np

from keras_mdr.api_export import km_export
from keras_mdr.features.preprocessing import DOMAIN_ID
from keras_mdr.layers.core.validation import check_units
from keras_mdr.layers.pruning.domain_pruned_mlp import DomainPrunedMLP
from keras_mdr.models.multi_domain_model import (
    MultiDomainModel,
    core_inputs,
    embed_features,
    prepare_specs,
)
from keras_mdr.models.registry import register_model
from keras_mdr.training import domain_tables


@register_model("adasparse")
@km_export("keras_mdr.models.AdaSparse")
class AdaSparse(MultiDomainModel):
    """`h = DomainPrunedMLP(x; e_d)`; `logits = h W + b`.

    Learns a sparse structure per domain: a domain-aware pruner weights
    every neuron of a shared MLP (the feature embeddings, then each hidden
    layer) with AdaSparse's Fusion factors, `beta * sigmoid(alpha v)`, and
    prunes it below `epsilon`; `alpha` grows every training step, driving
    the factors to 0 or `beta`; an optional regulariser keeps each layer's
    sparsity in `sparsity_range` (see `DomainPrunedMLP`). The domain-aware
    input of the pruner is a learned embedding of the domain, also joined
    to the MLP's input. A linear layer on the last hidden layer gives the T
    logits.

    By default (`pruner_input="domain"`) the pruning masks are a function of
    the domain: each layer's D masks are computed once per batch and every
    row takes its domain's, and at inference they are fixed per domain
    (`model.sparsity()` reports each domain's pruned share per layer). The
    authors' description of the pruner and Scenario-Wise-Rec's code also
    feed it the layer's neurons (per-row masks): `pruner_input=
    "domain_and_neurons"`. Only the Fusion form is offered (not
    Binarization or Scaling).

    Args:
        features, domain, tasks: specs (see `MultiDomainModel`).
        hidden_units: widths of the MLP's hidden layers.
        domain_embedding_dim: width of the domain embedding `e_d`.
        pruner_input: `"domain"` or `"domain_and_neurons"`.
        beta: the largest weighting factor (Fusion's scale).
        epsilon: the pruning threshold on the factors.
        alpha: the initial sharpness of the factors' sigmoid.
        alpha_step: its growth per training step (the sparsity schedule;
            the default, Scenario-Wise-Rec's, moves `alpha` by 0.1 in 1,000
            steps: raise it for a sharper schedule on small data).
        sparsity_range: `(low, high)` target sparsity of every layer (the
            regulariser), or `None`.
        sparsity_weight: the regulariser's weight.
        activation: activation of the hidden layers.
        dropout: dropout rate after each hidden layer.
        **kwargs: `MultiDomainModel` arguments (`loss_reduction`, ...).

    Example:
    >>> model = keras_mdr.build_model("adasparse", features=features, domain="domain",
    ...     tasks=["click"], data=train_df, sparsity_range=(0.2, 0.5))
    >>> model.sparsity()      # share of pruned neurons per domain and layer

    Reference: Yang et al., "AdaSparse: Learning Adaptively Sparse Structures
    for Multi-Domain Click-Through Rate Prediction", CIKM 2022.
    """

    def __init__(
        self,
        features,
        domain,
        tasks,
        hidden_units=(256, 128),
        domain_embedding_dim=16,
        pruner_input="domain",
        beta=2.0,
        epsilon=0.01,
        alpha=1.0,
        alpha_step=1e-4,
        sparsity_range=None,
        sparsity_weight=1.0,
        activation="relu",
        dropout=0.0,
        **kwargs,
    ):
        features, domain, tasks = prepare_specs(features, domain, tasks)
        hidden_units = check_units("hidden_units", hidden_units)
        inputs = core_inputs(features)
        x = embed_features(features, inputs)
        pruned = DomainPrunedMLP(
            hidden_units,
            domain.num_domains,
            domain_embedding_dim=domain_embedding_dim,
            pruner_input=pruner_input,
            beta=beta,
            epsilon=epsilon,
            alpha=alpha,
            alpha_step=alpha_step,
            sparsity_range=sparsity_range,
            sparsity_weight=sparsity_weight,
            activation=activation,
            dropout=dropout,
            name="pruned_mlp",
        )
        logits = keras.layers.Dense(len(tasks), name="logits")(pruned(x, inputs[DOMAIN_ID]))
        hyper_parameters = dict(
            hidden_units=hidden_units,
            domain_embedding_dim=domain_embedding_dim,
            pruner_input=pruner_input,
            beta=pruned.beta,
            epsilon=pruned.epsilon,
            alpha=pruned.alpha,
            alpha_step=pruned.alpha_step,
            sparsity_range=pruned.sparsity_range,
            sparsity_weight=pruned.sparsity_weight,
            activation=activation,
            dropout=pruned.dropout,
        )
        super().__init__(
            features, domain, tasks, inputs=inputs, logits=logits, hyper_parameters=hyper_parameters, **kwargs
        )

    def sparsity(self, data=None, batch_size=None):
        """The share of pruned neurons (factor 0) per domain, at inference.

        Args:
            data: raw rows; needed with `pruner_input="domain_and_neurons"`
                (the masks differ per row: the shares are over the rows of
                each domain). Without it, the masks are each domain's own.
            batch_size: rows per batch.

        Returns:
            A DataFrame indexed by domain name with a column per pruned
            layer (`layer_0` the input embeddings, then each hidden layer),
            `all` (over all of them) and, with `data`, `rows`.
        """
        layer = self.get_layer("pruned_mlp")
        if data is None:
            masks = [np.asarray(m) for m in layer.domain_masks()]
            pruned = np.stack([(m == 0).mean(axis=1) for m in masks], axis=1)
            overall = sum((m == 0).sum(axis=1) for m in masks) / sum(m.shape[1] for m in masks)
            table = domain_tables.domain_table(self, pruned, None, "layer_")
        else:
            inputs, domain_ids = layer.input
            num_domains, widths = self.domain.num_domains, layer.widths
            zeros, rows = np.zeros((num_domains, len(widths))), np.zeros(num_domains)
            for x, domains in domain_tables.probe_batches(self, data, [inputs, domain_ids], batch_size):
                _, factors = layer.forward(x, domains, training=False)
                for i, pi in enumerate(factors):
                    np.add.at(zeros[:, i], domains, (np.asarray(pi) == 0).sum(axis=1))
                rows += np.bincount(domains, minlength=num_domains)
            with np.errstate(invalid="ignore", divide="ignore"):
                pruned = zeros / (rows[:, None] * np.array(widths))
                overall = zeros.sum(axis=1) / (rows * sum(widths))
            table = domain_tables.domain_table(self, pruned, rows, "layer_")
        table.insert(len(layer.widths), "all", overall)
        return table
