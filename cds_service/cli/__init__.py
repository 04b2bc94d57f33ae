"""The aih-cds command. May import every layer."""
