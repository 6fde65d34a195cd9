"""Dagster glue: assets, resources and checks over the palitune packages. Thin by design."""
