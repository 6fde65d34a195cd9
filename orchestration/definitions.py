"""The Dagster entry point: ``dagster dev`` and ``dagster asset materialize`` load ``defs``."""

from dagster import Definitions

from orchestration.defs import assets, automation, resources

defs = Definitions(
    assets=assets.ALL,
    jobs=automation.JOBS,
    schedules=automation.SCHEDULES,
    sensors=automation.SENSORS,
    resources=resources.defaults(),
)
