"""Explicit feature interactions: factorization machine, cross layers."""
