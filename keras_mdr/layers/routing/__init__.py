"""Routing by domain: grouped matmuls, per-domain dense layers, norms and towers."""
