"""Embedding lookups of the preprocessed features."""
