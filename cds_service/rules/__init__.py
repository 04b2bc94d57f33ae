"""Clinical rules: one module per rule; the registry lists the implemented ones."""
