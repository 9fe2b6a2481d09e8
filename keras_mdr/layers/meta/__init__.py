"""Meta learning: networks whose weights are generated from the domain (M2M)."""
