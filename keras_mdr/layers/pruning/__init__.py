"""Domain-adaptive neuron pruning (AdaSparse)."""
