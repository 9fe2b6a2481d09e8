"""SAR-Net's attentions over a user's behaviours: one queried by the scenario, one by the target item."""

import math

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.core.validation import check_positive_int
from keras_mdr.layers.sequence.transformer_block import masked_softmax


@km_export("keras_mdr.layers.ScenarioBehaviorAttention")
class ScenarioBehaviorAttention(keras.layers.Layer):
    """`[u_s ; u_i]`: the user's behaviours pooled by attention to the scenario and to the target item.

        u_s = sum_j softmax_j(q_d . (k_j K_s) / sqrt(a)) k_j        q_d: the domain's query, [D, a]
        u_i = sum_j softmax_j((v Q_i) . (k_j K_i) / sqrt(a)) k_j    v: the target item's embedding

    `k_j` are the embeddings of the row's behaviours (padding positions
    masked out; a row without behaviours pools to zeros). The scenario
    attention's query is a learned vector per domain, the same for all of
    the domain's rows (no per-row computation); the item attention's query
    is the target item's embedding, projected. Each attention runs over the
    row's own behaviours, never across the batch.

    Args:
        num_domains: D.
        attention_dim: a, the width queries and keys are projected to.

    Call arguments:
        behaviors: `[B, L, e]` behaviour embeddings.
        padding_mask: `[B, L]` bool, true for real behaviours.
        target: `[B, t]` the target item's embedding.
        domain_ids: `[B]` int.

    Returns:
        `[B, 2e]`: `u_s` then `u_i`.

    Example:
    >>> layer = ScenarioBehaviorAttention(num_domains=3, attention_dim=4)
    >>> layer(np.ones((2, 5, 6)), np.ones((2, 5), bool), np.ones((2, 3)), np.array([0, 2])).shape
    (2, 12)

    Reference: Shen et al., "SAR-Net: A Scenario-Aware Ranking Network for
    Personalized Fair Recommendation in Hundreds of Travel Scenarios",
    CIKM 2021.
    """

    def __init__(self, num_domains, attention_dim=16, **kwargs):
        super().__init__(**kwargs)
        self.num_domains = check_positive_int("num_domains", num_domains)
        self.attention_dim = check_positive_int("attention_dim", attention_dim)

    def build(self, behaviors_shape, padding_mask_shape=None, target_shape=None, domain_ids_shape=None):
        width, a = behaviors_shape[-1], self.attention_dim
        shapes = {
            "domain_queries": (self.num_domains, a),
            "scenario_keys": (width, a),
            "item_queries": (target_shape[-1], a),
            "item_keys": (width, a),
        }
        for name, shape in shapes.items():
            setattr(self, name, self.add_weight(name=name, shape=shape, initializer="glorot_uniform"))

    def _pool(self, queries, keys, behaviors, mask):
        logits = ops.einsum("ba,bla->bl", queries, ops.matmul(behaviors, keys)) / math.sqrt(self.attention_dim)
        return ops.einsum("bl,ble->be", masked_softmax(logits, mask), behaviors)

    def call(self, behaviors, padding_mask, target, domain_ids):
        mask = ops.cast(padding_mask, "bool")
        domain_queries = ops.take(self.domain_queries, ops.cast(domain_ids, "int32"), axis=0)
        scenario = self._pool(domain_queries, self.scenario_keys, behaviors, mask)
        item = self._pool(ops.matmul(target, self.item_queries), self.item_keys, behaviors, mask)
        return ops.concatenate([scenario, item], axis=-1)

    def compute_output_shape(
        self, behaviors_shape, padding_mask_shape=None, target_shape=None, domain_ids_shape=None
    ):
        return (behaviors_shape[0], 2 * behaviors_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(num_domains=self.num_domains, attention_dim=self.attention_dim)
        return config
