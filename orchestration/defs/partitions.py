"""One partition per task.

The lifecycle is the same for every task, so the graph is drawn once and each task is a
partition of it: the UI shows one chain of six assets with a per-task status bar, a run
materializes one task, and schedules, sensors and checks are written once. (An asset
factory per task would draw seven copies of the chain.)

``PALITUNE_TASKS`` (comma separated) limits the partitions; by default every task of the
task table.
"""

from __future__ import annotations

import os
from typing import Any

from dagster import StaticPartitionsDefinition, asset

from data.tasks import TASKS

TASKS_ENV = "PALITUNE_TASKS"


def configured_tasks() -> list[str]:
    """The tasks named by ``PALITUNE_TASKS``, else all of them.

    Raises:
        ValueError: naming a task the task table does not have.
    """
    named = [t.strip() for t in os.environ.get(TASKS_ENV, "").split(",") if t.strip()]
    unknown = sorted(set(named) - set(TASKS))
    if unknown:
        raise ValueError(f"{TASKS_ENV}: unknown task(s) {', '.join(unknown)}; there are: {', '.join(TASKS)}")
    return named or list(TASKS)


task_partitions = StaticPartitionsDefinition(configured_tasks())
OWNERS = ["team:ml-platform"]


def task_asset(*, group: str, kinds: set[str], code_version: str, **kwargs: Any) -> Any:
    """``@asset`` for a stage of the lifecycle: partitioned by task, owned by the platform team.

    Its checks are partitioned by task too, so the UI reports each task's check result, not
    whichever task ran last."""
    if "check_specs" in kwargs:
        kwargs["check_specs"] = [spec._replace(partitions_def=task_partitions) for spec in kwargs["check_specs"]]
    return asset(
        partitions_def=task_partitions,
        owners=OWNERS,
        group_name=group,
        kinds=kinds,
        code_version=code_version,
        **kwargs,
    )


# Each task's default run config (``Task.config``) by task name, for readers that look it up here.
TRAINING_CONFIGS = {name: task.config for name, task in TASKS.items()}
