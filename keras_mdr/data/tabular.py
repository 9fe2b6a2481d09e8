"""A data set together with the specs that describe it."""

import collections

TabularData = collections.namedtuple("TabularData", ["frame", "features", "domain", "tasks"])
TabularData.__doc__ = """Rows and their specs: what a loader returns and what `build_model` needs.

Fields:
    frame: a pandas DataFrame of raw columns.
    features: feature specs (not yet adapted: `build_model(..., data=frame)`
        learns vocabularies and statistics).
    domain: the `Domain`.
    tasks: the `Task` specs.
"""
