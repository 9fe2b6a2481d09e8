"""M3oE: multi-domain multi-task mixture of shared, domain and task experts."""

import keras

from keras_mdr.api_export import km_export
from keras_mdr.features.preprocessing import DOMAIN_ID
from keras_mdr.layers.routing.domain_mlp import DomainMLP
from keras_mdr.layers.routing.domain_normalization import DomainNormalization
from keras_mdr.layers.routing.domain_task_towers import DomainTaskTowers
from keras_mdr.layers.experts.expert_bank import ExpertBank
from keras_mdr.layers.experts.expert_fusion import ExpertFusion
from keras_mdr.layers.experts.expert_gate import ExpertGate
from keras_mdr.layers.core.mlp_block import MLPBlock
from keras_mdr.layers.core.stop_gradient import StopGradient
from keras_mdr.layers.core.validation import check_positive_int, check_rate, check_units
from keras_mdr.models.multi_domain_model import (
    MultiDomainModel,
    _Untracked,
    core_inputs,
    embed_features,
    prepare_specs,
)
from keras_mdr.models.registry import register_model
from keras_mdr.training import bilevel

TRAINING_MODES = ("joint", "bilevel")


@register_model("m3oe")
@km_export("keras_mdr.models.M3oE")
class M3oE(MultiDomainModel):
    """M3oE: shared, domain and task experts fused per (domain, task).

    `h = StarBottom_d(x) + SkipMLP(x)`, where `StarBottom_d` is a per-domain
    MLP routed to each row's domain (`DomainMLP`), optionally followed by
    STAR's partitioned normalisation (`partitioned_norm`). On `h`:
    shared experts `S` mixed by a gate per (domain, task) that reads
    `stop_gradient(h)`, one expert per domain `Dm` and one per task `Tk`;
    `ExpertFusion` balances each view and adds them,
    `f_{d,t} = G_{d,t} S + beta_d Dm~_d + beta_t Tk~_t`, and a tower per
    (domain, task) maps `f` to the logit.

    The four structure weights (`w_d, w_t, beta_d, beta_t`, see
    `ExpertFusion`) train with everything else in `"joint"` mode, or in
    `"bilevel"` mode on validation batches only, with their own Adam
    optimiser, while the compiled optimiser steps the network on training
    batches (`keras_mdr.training.bilevel`). Bi-level training goes through the
    usual `fit(train, validation_data=val, ...)`.

    Args:
        features, domain, tasks: specs (see `MultiDomainModel`).
        num_shared_experts: number of shared experts E.
        expert_units: widths of every expert (shared, domain, task).
        bottom_units: widths of the STAR-style bottom and of the skip MLP.
        tower_units: hidden widths of each (domain, task) tower.
        dropout: dropout rate in the bottom, the experts and the towers.
        partitioned_norm: STAR's partitioned normalisation (per-domain
            statistics, moving ones at inference) on the pre-activation
            output of the per-domain bottom. Off by default: it gave no
            consistent gain on the synthetic data, and on the embeddings
            (where STAR puts it) it clearly lowered test AUC
            (`benchmarks/results/m3oe_modes.md`).
        gate_stop_gradient: the gates read `stop_gradient(h)`, so they do not
            train the bottom.
        training_mode: `"joint"` (one optimiser for all weights) or
            `"bilevel"` (structure weights on validation batches; `fit` then
            needs `validation_data`).
        structure_learning_rate: Adam learning rate of the structure weights
            in `"bilevel"` mode.
        loss_reduction: `"domain_task_mean"` (default: every (domain, task)
            group present in the batch counts equally) or `"pooled"`.
        balance_domains: the domains whose experts every domain balances
            against (the first `balance_domains`; `None`: all). Set by
            `keras_mdr.transfer.add_domain` to the source domains, so that a
            new domain leaves them unchanged (see `ExpertFusion`).
        **kwargs: other `MultiDomainModel` arguments (`batch_size`, ...).

    Example:
    >>> model = keras_mdr.build_model("m3oe", features=features, domain="domain",
    ...     tasks=["click", "like"], data=train_df, training_mode="bilevel")
    >>> model.compile(optimizer="adam")
    >>> model.fit(train_df, validation_data=val_df, epochs=3)

    Reference: Zhang et al., "M3oE: Multi-Domain Multi-Task Mixture-of Experts
    Recommendation Framework", SIGIR 2024.
    """

    def __init__(
        self,
        features,
        domain,
        tasks,
        num_shared_experts=4,
        expert_units=(64,),
        bottom_units=(128, 64),
        tower_units=(32,),
        dropout=0.0,
        partitioned_norm=False,
        gate_stop_gradient=True,
        training_mode="joint",
        structure_learning_rate=1e-3,
        loss_reduction="domain_task_mean",
        balance_domains=None,
        **kwargs,
    ):
        if training_mode not in TRAINING_MODES:
            raise ValueError(f"training_mode must be one of {TRAINING_MODES}, got {training_mode!r}")
        if not float(structure_learning_rate) >= 0.0:
            raise ValueError(f"structure_learning_rate must be >= 0, got {structure_learning_rate!r}")
        num_shared_experts = check_positive_int("num_shared_experts", num_shared_experts)
        expert_units = check_units("expert_units", expert_units)
        bottom_units = check_units("bottom_units", bottom_units)
        tower_units = check_units("tower_units", tower_units, allow_empty=True)
        dropout = check_rate("dropout", dropout)

        features, domain, tasks = prepare_specs(features, domain, tasks)
        num_domains, num_tasks = domain.num_domains, len(tasks)
        inputs = core_inputs(features)
        domain_ids = inputs[DOMAIN_ID]
        x = embed_features(features, inputs)

        star = DomainMLP(
            bottom_units,
            num_domains,
            output_activation=None if partitioned_norm else "relu",
            dropout=dropout,
            name="star_bottom",
        )(x, domain_ids)
        if partitioned_norm:
            star = DomainNormalization(num_domains, shared_affine=True, name="partitioned_norm")(star, domain_ids)
            star = keras.layers.Activation("relu", name="star_activation")(star)
        skip = MLPBlock(bottom_units, dropout=dropout, name="skip_bottom")(x)
        h = keras.layers.Add(name="bottom")([star, skip])

        gate_inputs = StopGradient(name="gate_inputs")(h) if gate_stop_gradient else h
        gates = ExpertGate(num_shared_experts, num_gates=num_tasks, num_domains=num_domains, name="gates")(
            gate_inputs, domain_ids
        )
        shared_experts = ExpertBank(num_shared_experts, expert_units, dropout=dropout, name="shared_experts")(h)
        domain_experts = ExpertBank(num_domains, expert_units, dropout=dropout, name="domain_experts")(h)
        task_experts = ExpertBank(num_tasks, expert_units, dropout=dropout, name="task_experts")(h)
        fused = ExpertFusion(balance_domains=balance_domains, name="fusion")(shared_experts, gates, domain_experts, task_experts, domain_ids)
        logits = DomainTaskTowers(tower_units, num_domains, num_tasks, dropout=dropout, name="towers")(
            fused, domain_ids
        )
        hyper_parameters = dict(
            num_shared_experts=num_shared_experts,
            expert_units=expert_units,
            bottom_units=bottom_units,
            tower_units=tower_units,
            dropout=dropout,
            partitioned_norm=bool(partitioned_norm),
            gate_stop_gradient=bool(gate_stop_gradient),
            training_mode=training_mode,
            structure_learning_rate=float(structure_learning_rate),
            balance_domains=balance_domains,
        )
        super().__init__(
            features,
            domain,
            tasks,
            inputs=inputs,
            logits=logits,
            loss_reduction=loss_reduction,
            hyper_parameters=hyper_parameters,
            **kwargs,
        )
        self.training_mode = training_mode
        # Held untracked so its slots never count as model weights; built now so that `.keras`
        # files save and restore its state through the `structure_optimizer` property.
        structure_optimizer = None
        if training_mode == "bilevel":
            structure_optimizer = keras.optimizers.Adam(float(structure_learning_rate), name="structure_optimizer")
            structure_optimizer.build(self.structure_variables)
        self._structure_optimizer = _Untracked(structure_optimizer)

    @classmethod
    def hyper_parameters_for_new_domains(cls, hyper_parameters, source_domains):
        """Keeps every domain's expert balance on the source domains (see `ExpertFusion`)."""
        hyper_parameters = dict(hyper_parameters)
        if hyper_parameters.get("balance_domains") is None:
            hyper_parameters["balance_domains"] = source_domains
        return hyper_parameters

    @property
    def structure_variables(self):
        """The four structure logits of the fusion (`ExpertFusion.structure_weights`)."""
        return self.get_layer("fusion").structure_weights

    @property
    def network_variables(self):
        """Every trainable weight except the structure weights."""
        return bilevel.network_variables(self, self.structure_variables)

    @property
    def structure_optimizer(self):
        """The Adam optimiser of the structure weights in `"bilevel"` mode (`None` when joint)."""
        return self._structure_optimizer.value

    def structure(self):
        """`{name: value}` of the four structure weights after the sigmoid."""
        return self.get_layer("fusion").structure_values()

    def fit(self, x=None, y=None, batch_size=None, validation_data=None, shuffle=True, seed=None, **kwargs):
        """`MultiDomainModel.fit`; in `"bilevel"` mode `validation_data` also feeds the structure steps."""
        if self.training_mode == "joint":
            return super().fit(
                x, y, batch_size=batch_size, validation_data=validation_data, shuffle=shuffle, seed=seed, **kwargs
            )
        if validation_data is None:
            raise ValueError(
                "M3oE with training_mode='bilevel' learns its structure weights on validation batches: "
                "pass validation_data to fit (or use training_mode='joint')"
            )
        if y is not None:
            raise ValueError("Pass labels as columns of `x`; `y` is not used by keras_mdr models")
        train = self.make_dataset(x, batch_size, shuffle=shuffle, seed=seed)
        stream = self.make_dataset(validation_data, batch_size, shuffle=True, seed=seed)
        validation = self.make_dataset(validation_data, batch_size)
        # Built outside the compiled step, on every trainable weight as Keras builds it (so saved
        # optimiser states load back); `train_step` only ever applies it to the network weights.
        if self.optimizer is not None and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)
        return keras.Model.fit(
            self,
            bilevel.with_validation_stream(train, stream),
            validation_data=validation,
            shuffle=False,
            **kwargs,
        )

    def train_step(self, data):
        if self.training_mode == "joint":
            return super().train_step(data)
        if not any(v.trainable for v in self.structure_variables):
            # Frozen by a transfer (`keras_mdr.transfer`): only the network step is left.
            return super().train_step(data[0])
        return bilevel.bilevel_train_step(self, data, self.structure_variables, self.structure_optimizer)
