"""Random train / validation / test splits of in-memory data."""

import numpy as np

from keras_mdr.data.columns import to_frame


def random_split(data, fractions=(0.8, 0.1, 0.1), seed=2022):
    """Splits rows at random into parts of the given fractions.

    Args:
        data: a DataFrame or dict of columns.
        fractions: fractions summing to 1 (e.g. train, validation, test).
        seed: the permutation's seed.

    Returns:
        A list of DataFrames, one per fraction, with a fresh index.
    """
    fractions = [float(f) for f in fractions]
    if not fractions or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    frame = to_frame(data)
    order = np.random.default_rng(seed).permutation(len(frame))
    bounds = np.round(np.cumsum([0.0] + fractions) * len(frame)).astype(int)
    return [frame.iloc[order[a:b]].reset_index(drop=True) for a, b in zip(bounds[:-1], bounds[1:])]
