"""The Dagster entry point: ``dg dev``, ``dg launch`` and the daemon load ``defs`` ([tool.dg] in pyproject.toml)."""

from dagster import Definitions

from orchestration.defs import assets, automation, resources

defs = Definitions(
    assets=assets.ALL,
    jobs=automation.JOBS,
    schedules=automation.SCHEDULES,
    sensors=automation.SENSORS,
    resources=resources.defaults(),
)
