"""Grouped matmul: each row multiplied by its own group's weights, once.

Rows are sorted by group and each group's rows are padded to whole tiles of
`tile_size` rows, so every tile belongs to exactly one group. One batched
matmul of `[num_tiles, tile, in] x [num_tiles, in, out]` (one weight matrix
gathered per tile, not per row) then computes every row against its own
group's weights: one group's FLOPs per row plus at most `tile_size - 1`
padding rows per group. All shapes are static for a static row count, so the
plan compiles under XLA.

Usage:
    plan = plan_groups(group_ids, num_groups, tile_size)
    tiles = to_tiles(x, plan)                       # [num_tiles, tile, in]
    tiles = grouped_matmul(tiles, kernels, plan)    # kernels [G, in, out]
    y = from_tiles(tiles, plan)                     # [N, out]
"""

import collections

from keras import ops

# Up to this many groups a row's rank within its group is a running count over a one-hot
# `[N, G]` (O(N G)); above it, a sort (O(N log N)). Both give the same plan; XLA on CPU runs the
# count about twice as fast for a few groups (benchmarks/dispatch_plan.py).
COUNTING_MAX_GROUPS = 16

GroupPlan = collections.namedtuple(
    "GroupPlan", ["slot_of_row", "row_of_slot", "tile_group", "num_tiles", "tile_size"]
)


def _num_rows(group_ids):
    static = group_ids.shape[0]
    return static if static is not None else ops.shape(group_ids)[0]


def plan_groups(group_ids, num_groups, tile_size, counting=None):
    """Plans where each row goes in a tiled, group-sorted buffer.

    Args:
        group_ids: int `[N]`, values in `[0, num_groups)`.
        num_groups: number of groups G (a Python int).
        tile_size: rows per tile. With a static N it is capped at N, so a
            single row costs one row of compute.
        counting: how rows are ranked within their group (see `rank_in_group`).

    Returns:
        A `GroupPlan`: `slot_of_row [N]` (each row's slot in the buffer),
        `row_of_slot [num_tiles * tile]` (the row in each slot, N for
        padding), `tile_group [num_tiles]` and the sizes.
    """
    group_ids = ops.cast(group_ids, "int32")
    n = _num_rows(group_ids)
    if isinstance(n, int):
        tile_size = max(1, min(tile_size, n))
    # Enough tiles for the worst case: sum_g ceil(n_g / t) <= (N + G (t - 1)) / t.
    num_tiles = (n + num_groups * (tile_size - 1)) // tile_size

    counts = group_counts(group_ids, num_groups)
    group_tiles = (counts + tile_size - 1) // tile_size
    group_tile_end = ops.cumsum(group_tiles)
    group_slot_start = (group_tile_end - group_tiles) * tile_size

    positions = ops.arange(n, dtype="int32")
    rank = rank_in_group(group_ids, num_groups, counting)
    slot_of_row = ops.take(group_slot_start, group_ids) + rank

    num_slots = num_tiles * tile_size
    row_of_slot = ops.scatter_update(
        ops.full((num_slots,), n, dtype="int32"),
        ops.expand_dims(slot_of_row, 1),
        positions,
    )
    tile_index = ops.arange(num_tiles, dtype="int32")
    tile_group = ops.searchsorted(group_tile_end, tile_index, side="right")
    tile_group = ops.minimum(ops.cast(tile_group, "int32"), num_groups - 1)
    return GroupPlan(slot_of_row, row_of_slot, tile_group, num_tiles, tile_size)


def group_counts(group_ids, num_groups):
    """Rows per group: int `[G]`."""
    return ops.segment_sum(ops.ones_like(group_ids), group_ids, num_segments=num_groups)


def rank_in_group(group_ids, num_groups, counting=None):
    """Each row's position among the earlier rows of its group: int `[N]`.

    `counting` picks the running count (`True`) or the sort (`False`); by
    default the count up to `COUNTING_MAX_GROUPS` groups.
    """
    if counting is None:
        counting = num_groups <= COUNTING_MAX_GROUPS
    if counting:
        one_hot = ops.one_hot(group_ids, num_groups, dtype="int32")
        return ops.sum(ops.cumsum(one_hot, axis=0) * one_hot, axis=1) - 1
    n = _num_rows(group_ids)
    positions = ops.arange(n, dtype="int32")
    # A key unique per row makes the sort's stability irrelevant.
    order = ops.cast(ops.argsort(group_ids * n + positions), "int32")
    counts = group_counts(group_ids, num_groups)
    group_row_start = ops.cumsum(counts) - counts
    sorted_rank = positions - ops.take(group_row_start, ops.take(group_ids, order))
    return ops.scatter(ops.expand_dims(order, 1), sorted_rank, (n,))


def to_tiles(x, plan):
    """Gathers rows `x [N, F]` into the tiled buffer `[num_tiles, tile, F]` (padding is 0)."""
    padded = ops.concatenate([x, ops.zeros_like(x[:1])], axis=0)
    tiles = ops.take(padded, plan.row_of_slot, axis=0)
    return ops.reshape(tiles, (plan.num_tiles, plan.tile_size, x.shape[-1]))


def grouped_matmul(tiles, kernels, plan, biases=None):
    """`[num_tiles, tile, i] x kernels[tile_group] [num_tiles, i, j]` (+ `biases[tile_group]`)."""
    y = ops.matmul(tiles, ops.take(kernels, plan.tile_group, axis=0))
    if biases is not None:
        y = y + ops.expand_dims(ops.take(biases, plan.tile_group, axis=0), 1)
    return y


def tile_values(values, plan):
    """Per-group values `[G, ...]` broadcast to the tiles: `[num_tiles, 1, ...]`."""
    return ops.expand_dims(ops.take(values, plan.tile_group, axis=0), 1)


def from_tiles(tiles, plan):
    """Reads each row's result back from the tiles: `[N, j]` in the original row order."""
    flat = ops.reshape(tiles, (-1, tiles.shape[-1]))
    return ops.take(flat, plan.slot_of_row, axis=0)
