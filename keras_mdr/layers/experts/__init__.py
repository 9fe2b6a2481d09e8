"""Experts and their gates: banks, mixtures, PLE gate control, sparse conditional experts."""
