"""PPNet: PEPNet's per-row gates on every tower layer, from personalised id priors."""

from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.features.preprocessing import DOMAIN_ID
from keras_mdr.layers.core.validation import check_rate, check_units
from keras_mdr.layers.embedding.feature_embedding import concat_columns
from keras_mdr.layers.personalization.parameter_personalization import ParameterPersonalizationGates
from keras_mdr.layers.routing.domain_task_towers import DomainTaskTowers
from keras_mdr.models.multi_domain_model import (
    MultiDomainModel,
    core_inputs,
    embed_features,
    prepare_specs,
)
from keras_mdr.models.registry import register_model


def default_prior_features(features):
    """The single-valued categorical features named `*_id` (user, item, author ids)."""
    names = [f.name for f in features if f.kind == "categorical" and (f.name == "id" or f.name.endswith("_id"))]
    if not names:
        raise ValueError(
            "PPNet needs personalised prior features (user / item / author ids): no categorical feature is "
            f"named '*_id' among {[f.name for f in features]}; pass prior_features=[...]"
        )
    return names


@register_model("ppnet")
@km_export("keras_mdr.models.PPNet")
class PPNet(MultiDomainModel):
    """`H_{l+1} = f((delta_{l,t} * H_l) W_l + b_l)` in each tower, `delta = GateNU([priors ; stop_gradient(E)])`.

    The parameter personalisation network of PEPNet. The towers read the
    shared embeddings `H_0 = E`; for each tower layer `l` a Gate NU
    (`gamma * sigmoid(W2 relu(W1 x))`, `gamma = 2`) reads the personalised
    priors (the embeddings of the user / item / author ids, from the same
    tables as `E`) and `E` behind a stop-gradient (so the gates never train
    the embeddings through `E`, as in the paper) and emits one gate per task
    (`ParameterPersonalizationGates`); every layer's input, the logit
    layer's included, is rescaled by its row's and task's gate. The gates
    are per row and cost one small dense layer each; the towers are routed.

    The towers are per (domain, task), each row running only its own
    domain's (`DomainTaskTowers`): PPNet itself has no domain input, and
    PEPNet brings the domain in through EPNet (`epnet`), so, like
    Scenario-Wise-Rec's PPNet (which runs every domain's tower on every row
    and masks), this model gives each domain its own towers. Scenario-Wise-
    Rec also feeds its towers the gate's input, the embeddings detached, so
    they never train through the towers; here the towers read `E` itself.

    Args:
        features, domain, tasks: specs (see `MultiDomainModel`).
        prior_features: names of the personalised prior features (`None`:
            every single-valued categorical feature named `*_id`).
        tower_units: hidden widths of each (domain, task) tower.
        gate_hidden_units: hidden width of every Gate NU (`None`: its output
            width, as in PEPNet).
        gamma: the Gate NUs' scale.
        activation: activation of the towers.
        dropout: dropout rate in the towers.
        **kwargs: `MultiDomainModel` arguments (`loss_reduction`, ...).

    Example:
    >>> model = keras_mdr.build_model("ppnet", features=features, domain="domain",
    ...     tasks=["click", "like"], data=train_df, prior_features=["user_id", "item_id"])

    Reference: Chang et al., "PEPNet: Parameter and Embedding Personalized
    Network for Infusing with Personalized Prior Information", KDD 2023.
    """

    def __init__(
        self,
        features,
        domain,
        tasks,
        prior_features=None,
        tower_units=(128, 64),
        gate_hidden_units=None,
        gamma=2.0,
        activation="relu",
        dropout=0.0,
        **kwargs,
    ):
        features, domain, tasks = prepare_specs(features, domain, tasks)
        tower_units = check_units("tower_units", tower_units, allow_empty=True)
        dropout = check_rate("dropout", dropout)
        priors = list(prior_features) if prior_features is not None else default_prior_features(features)
        columns = concat_columns(features, priors)
        inputs = core_inputs(features)
        x = embed_features(features, inputs)
        prior_embeddings = ops.take(x, columns, axis=1)
        gates = ParameterPersonalizationGates(
            [x.shape[-1]] + tower_units, len(tasks), gate_hidden_units, gamma, name="ppnet_gates"
        )(prior_embeddings, x)
        logits = DomainTaskTowers(
            tower_units, domain.num_domains, len(tasks), activation=activation, dropout=dropout, name="towers"
        )(x, inputs[DOMAIN_ID], gates=gates)
        hyper_parameters = dict(
            prior_features=None if prior_features is None else priors,
            tower_units=tower_units,
            gate_hidden_units=gate_hidden_units,
            gamma=float(gamma),
            activation=activation,
            dropout=dropout,
        )
        super().__init__(
            features, domain, tasks, inputs=inputs, logits=logits, hyper_parameters=hyper_parameters, **kwargs
        )
