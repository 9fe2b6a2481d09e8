"""Sequence layers: the Transformer block that sequential recommenders and text encoders stack."""
