"""The data contract: schema, tasks, synthetic generators, validation and DVC versions."""
