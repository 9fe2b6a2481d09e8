"""PEPNet's EPNet: the domain's gate on the shared embeddings."""

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.core.validation import check_positive, check_positive_int
from keras_mdr.layers.personalization.gate_nu import GateNU


@km_export("keras_mdr.layers.EmbeddingPersonalization")
class EmbeddingPersonalization(keras.layers.Layer):
    """`O_ep = delta_domain * E`, `delta_domain = GateNU([e_d ; stop_gradient(E)])`.

    EPNet personalises the domain-shared embeddings `E` of a row for its
    domain: a `GateNU` reads the domain's side information (here a learned
    embedding `e_d` of the domain, a `[D, e]` table) and the embeddings
    themselves behind a stop-gradient, so the gate never pulls the shared
    embeddings, and rescales every element of `E` (factors in
    `[0, gamma]`, about 1 at initialisation).

    Args:
        num_domains: D.
        domain_embedding_dim: width of `e_d`.
        hidden_units: the gate's hidden width (`None`: the width of `E`).
        gamma: the gate's scale.

    Call arguments:
        embeddings: `[B, F]`, the row's concatenated embeddings `E`.
        domain_ids: `[B]` int.

    Returns:
        `[B, F]`.

    Example:
    >>> layer = EmbeddingPersonalization(num_domains=3, domain_embedding_dim=4)
    >>> layer(np.ones((5, 8)), np.array([0, 2, 1, 2, 0])).shape
    (5, 8)

    Reference: Chang et al., "PEPNet: Parameter and Embedding Personalized
    Network for Infusing with Personalized Prior Information", KDD 2023.
    """

    def __init__(self, num_domains, domain_embedding_dim=16, hidden_units=None, gamma=2.0, **kwargs):
        super().__init__(**kwargs)
        self.num_domains = check_positive_int("num_domains", num_domains)
        self.domain_embedding_dim = check_positive_int("domain_embedding_dim", domain_embedding_dim)
        self.hidden_units = None if hidden_units is None else check_positive_int("hidden_units", hidden_units)
        self.gamma = check_positive("gamma", gamma)
        self.gate = None

    def build(self, embeddings_shape, domain_ids_shape=None):
        width = embeddings_shape[-1]
        self.domain_embeddings = self.add_weight(
            name="domain_embeddings", shape=(self.num_domains, self.domain_embedding_dim), initializer="uniform"
        )
        self.gate = GateNU(width, self.hidden_units, self.gamma, name="gate")
        self.gate.build((None, self.domain_embedding_dim + width))

    def call(self, embeddings, domain_ids):
        domain = ops.take(self.domain_embeddings, ops.cast(domain_ids, "int32"), axis=0)
        delta = self.gate(ops.concatenate([domain, ops.stop_gradient(embeddings)], axis=-1))
        return delta * embeddings

    def compute_output_shape(self, embeddings_shape, domain_ids_shape=None):
        return embeddings_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_domains=self.num_domains,
            domain_embedding_dim=self.domain_embedding_dim,
            hidden_units=self.hidden_units,
            gamma=self.gamma,
        )
        return config
