"""Sparse expert dispatch: each row runs only the K experts chosen for it.

A router picks, for each of B rows, K of N experts (`expert_ids [B, K]`) with
mixing weights (`gate_weights [B, K]`). Both functions here compute

    y_i = sum_k gate_weights[i, k] * Expert_{expert_ids[i, k]}(x_i)

for MLP experts whose weights are stacked as `kernels[l] [N, in, out]` and
`biases[l] [N, out]` (an `ExpertBank`'s weights), paying for the chosen
experts only, with static shapes (XLA-compilable):

- `dispatch_with_capacity` (training): every expert gets a fixed buffer of
  `C = ceil(capacity_factor * K * B / N)` rows, filled with the first rows
  assigned to it; one stacked matmul `einsum('ncf,nfh->nch')` per layer;
  results are scatter-added back to their rows. Compute is
  `N * C ~ capacity_factor * K * B` rows whatever the routing, but pairs
  beyond an expert's capacity are dropped, and which pairs those are depends
  on the rest of the batch.
- `dispatch_grouped` (inference, optionally training): drop-free. The
  `K * B` (row, expert) pairs are sorted by expert and padded to whole tiles
  (`grouped_dispatch`), one batched matmul per layer: `K * B` pair-rows plus
  at most `N * (tile_size - 1)` padding rows. A row's result never depends
  on the other rows.
"""

import math

from keras import ops

from keras_mdr.layers.routing import grouped_dispatch


def _num_rows(inputs):
    return inputs.shape[0] if inputs.shape[0] is not None else ops.shape(inputs)[0]


def expert_capacity(num_rows, top_k, num_experts, capacity_factor):
    """`C = min(ceil(capacity_factor * K * B / N), B)` rows per expert.

    An expert can be chosen at most once per row, so more than B slots would
    never fill. `num_rows` is a Python int when the batch size is static
    (then C is too), or a scalar tensor.
    """
    # The small offset stops float round-off of an exact integer (1.1 * 100 =
    # 110.00000000000001) from adding a slot.
    if isinstance(num_rows, int):
        return min(math.ceil(capacity_factor * top_k * num_rows / num_experts - 1e-6), num_rows)
    load = capacity_factor * top_k * ops.cast(num_rows, "float32") / num_experts
    return ops.minimum(ops.cast(ops.ceil(load - 1e-6), "int32"), num_rows)


def dispatch_with_capacity(inputs, expert_ids, gate_weights, kernels, biases, activation, capacity_factor):
    """Routed experts with a fixed capacity per expert; overflowing pairs are dropped.

    The (row, expert) pairs are ranked slot-major: every row's first choice
    comes before any row's second choice, and within a choice slot the
    earlier row comes first. Each expert keeps its first C pairs, found with
    `top_k` over a position score (the pair's reversed position where it is
    assigned to the expert, 0 elsewhere). A dropped pair contributes zero and
    the row's other weights are not renormalised (see `ConditionalExperts`).

    Args:
        inputs: `[B, F]`.
        expert_ids: `[B, K]` int, distinct experts per row.
        gate_weights: `[B, K]`.
        kernels, biases: per layer, `[N, in, out]` and `[N, out]`.
        activation: applied after every layer.
        capacity_factor: `cf` in `C = ceil(cf * K * B / N)`.

    Returns:
        `[B, out]`.
    """
    num_experts, top_k = kernels[0].shape[0], expert_ids.shape[1]
    rows = _num_rows(inputs)
    pairs = rows * top_k
    capacity = expert_capacity(rows, top_k, num_experts, capacity_factor)

    pair_experts = ops.reshape(ops.transpose(ops.cast(expert_ids, "int32")), (-1,))
    pair_weights = ops.reshape(ops.transpose(gate_weights), (-1,))
    # Float scores are exact for fewer than 2**24 pairs.
    priority = ops.cast(pairs - ops.arange(pairs, dtype="int32"), "float32")
    assigned = ops.transpose(ops.one_hot(pair_experts, num_experts, dtype="float32"))
    scores, slot_pairs = ops.top_k(assigned * priority, capacity)
    slot_rows = slot_pairs % rows

    tokens = ops.take(inputs, slot_rows, axis=0)
    for kernel, bias in zip(kernels, biases):
        tokens = activation(ops.einsum("ncf,nfh->nch", tokens, kernel) + ops.expand_dims(bias, 1))
    # Empty slots (score 0) point at some row with weight 0: they add nothing.
    slot_weights = ops.take(pair_weights, slot_pairs) * ops.cast(scores > 0, gate_weights.dtype)
    contributions = ops.reshape(tokens * ops.expand_dims(slot_weights, -1), (-1, tokens.shape[-1]))
    return ops.segment_sum(contributions, ops.reshape(slot_rows, (-1,)), num_segments=rows)


def dispatch_grouped(inputs, expert_ids, gate_weights, kernels, biases, activation, tile_size):
    """Routed experts, drop-free: the (row, expert) pairs grouped by expert.

    Args:
        inputs, expert_ids, gate_weights, kernels, biases, activation: as for
            `dispatch_with_capacity`.
        tile_size: rows per tile of the grouped matmul.

    Returns:
        `[B, out]`.
    """
    num_experts, top_k = kernels[0].shape[0], expert_ids.shape[1]
    # Pair i * K + k is (row i, choice k), so a row's K results end up adjacent.
    pair_inputs = ops.reshape(ops.repeat(ops.expand_dims(inputs, 1), top_k, axis=1), (-1, inputs.shape[-1]))
    plan = grouped_dispatch.plan_groups(ops.reshape(expert_ids, (-1,)), num_experts, tile_size)
    tiles = grouped_dispatch.to_tiles(pair_inputs, plan)
    for kernel, bias in zip(kernels, biases):
        tiles = activation(grouped_dispatch.grouped_matmul(tiles, kernel, plan, bias))
    outputs = ops.reshape(grouped_dispatch.from_tiles(tiles, plan), (-1, top_k, tiles.shape[-1]))
    return ops.sum(outputs * ops.expand_dims(gate_weights, -1), axis=1)
