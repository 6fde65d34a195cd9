"""The Dagster entry point: ``dagster dev`` and ``dagster asset materialize`` load ``defs``."""

from dagster import Definitions

from orchestration.defs import assets, checks, resources

defs = Definitions(
    assets=assets.ALL,
    asset_checks=checks.ALL,
    resources=resources.defaults(),
)
