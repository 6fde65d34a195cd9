"""MLflow: runs, adapter versions with lineage, aliases, promotion."""
