"""PEPNet's personalisation gates: the Gate NU, and its embedding (EPNet) and parameter (PPNet) gates."""
