"""A plugin module that cannot be imported: the registry must report it, not crash."""

raise ImportError("pdarts_example_op.broken needs a library that is not installed")
