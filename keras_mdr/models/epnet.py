"""EPNet: PEPNet's domain gate on the shared embeddings, then a tower per task."""

from keras_mdr.api_export import km_export
from keras_mdr.features.preprocessing import DOMAIN_ID
from keras_mdr.layers.core.validation import check_positive_int, check_rate, check_units
from keras_mdr.layers.personalization.embedding_personalization import EmbeddingPersonalization
from keras_mdr.layers.routing.domain_task_towers import DomainTaskTowers
from keras_mdr.models.multi_domain_model import (
    MultiDomainModel,
    core_inputs,
    embed_features,
    prepare_specs,
)
from keras_mdr.models.registry import register_model


@register_model("epnet")
@km_export("keras_mdr.models.EPNet")
class EPNet(MultiDomainModel):
    """`O_ep = GateNU([e_d ; stop_gradient(E)]) * E`; `logit_t = Tower_t(O_ep)`.

    The embedding personalisation network of PEPNet: the concatenated
    embeddings `E` of a row are shared by all domains, and a Gate NU
    (`gamma * sigmoid(W2 relu(W1 x))`, `gamma = 2`) reading the domain's side
    information rescales each of their elements for the row's domain
    (`EmbeddingPersonalization`). The domain side information is a learned
    embedding `e_d` of the domain; the gate reads `E` behind a stop-gradient,
    as in the paper, so it never trains the shared embeddings. One tower
    per task, shared by the domains, maps `O_ep` to the task's logit, as
    PEPNet's task towers do (without PPNet's gates: see `ppnet`).

    Scenario-Wise-Rec's EPNet gates only the features it calls
    domain-agnostic and feeds one MLP for one task; this model gates every
    embedding and has a tower per task.

    Args:
        features, domain, tasks: specs (see `MultiDomainModel`).
        tower_units: hidden widths of each task's tower.
        domain_embedding_dim: width of the domain embedding `e_d`.
        gate_hidden_units: hidden width of the Gate NU (`None`: the width
            of `E`, as in PEPNet).
        gamma: the Gate NU's scale.
        activation: activation of the towers.
        dropout: dropout rate in the towers.
        **kwargs: `MultiDomainModel` arguments (`loss_reduction`, ...).

    Example:
    >>> model = keras_mdr.build_model("epnet", features=features,
    ...     domain="domain", tasks=["click", "like"], data=train_df)

    Reference: Chang et al., "PEPNet: Parameter and Embedding Personalized
    Network for Infusing with Personalized Prior Information", KDD 2023.
    """

    def __init__(
        self,
        features,
        domain,
        tasks,
        tower_units=(128, 64),
        domain_embedding_dim=16,
        gate_hidden_units=None,
        gamma=2.0,
        activation="relu",
        dropout=0.0,
        **kwargs,
    ):
        features, domain, tasks = prepare_specs(features, domain, tasks)
        tower_units = check_units("tower_units", tower_units, allow_empty=True)
        domain_embedding_dim = check_positive_int("domain_embedding_dim", domain_embedding_dim)
        dropout = check_rate("dropout", dropout)
        inputs = core_inputs(features)
        x = embed_features(features, inputs)
        personalized = EmbeddingPersonalization(
            domain.num_domains, domain_embedding_dim, gate_hidden_units, gamma, name="epnet"
        )(x, inputs[DOMAIN_ID])
        # One tower per task, shared by the domains (the domain acts through the gate).
        logits = DomainTaskTowers(
            tower_units, 1, len(tasks), activation=activation, dropout=dropout, name="task_towers"
        )(personalized)
        hyper_parameters = dict(
            tower_units=tower_units,
            domain_embedding_dim=domain_embedding_dim,
            gate_hidden_units=gate_hidden_units,
            gamma=float(gamma),
            activation=activation,
            dropout=dropout,
        )
        super().__init__(
            features, domain, tasks, inputs=inputs, logits=logits, hyper_parameters=hyper_parameters, **kwargs
        )
