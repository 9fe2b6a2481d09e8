"""Per-row weighted sums: the mixing step of expert mixtures and of HAMUR's hyper-network core."""

from keras import ops


def mix(weights, values):
    """`out[b, g] = sum_e weights[b, g, e] * values[b, (g,) e]`: each row's weighted sums of its own values.

    Equal to `einsum("bge,beh->bgh")` (or `"bge,bgeh->bgh"` for per-`g`
    values), computed as a broadcast product summed over `e`, which XLA
    fuses into one loop; under XLA on CPU it ran faster than the einsum at
    the zoo's shapes (`benchmarks/row_mixing.py`).

    Args:
        weights: `[B, G, E]`.
        values: `[B, E, H]` (shared by every `g`) or `[B, G, E, H]`.

    Returns:
        `[B, G, H]`.
    """
    if len(values.shape) == 3:
        values = ops.expand_dims(values, 1)
    return ops.sum(ops.expand_dims(weights, -1) * values, axis=2)
