"""Small building blocks shared by the other groups: MLP, stop-gradient, argument checks."""
