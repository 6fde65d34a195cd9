"""When the graph runs by itself: weekly, and whenever a task's dataset gets a new version.

Both start stopped (turn them on in the UI's Automation tab, or ``dagster schedule start
weekly_retrain`` / ``dagster sensor start new_dataset_version``); the daemon of
``dg dev`` runs them.

Why a schedule and a sensor rather than declarative automation (``AutomationCondition``):
both start *one* ``retrain`` run per task for the whole chain, tagged with the dataset hash
and the trigger, so a failure is re-executed from where it failed and the one-run-per-task
limit applies to the retrain as a whole. ``AutomationCondition.on_cron`` (or ``eager``) on
the assets would request each asset once its parents updated: six runs per task, without
those tags. And what the sensor watches, the DVC version recorded in the task's ``.dvc`` file or
``dvc.lock``, is outside the asset graph: declaratively it would take an observable source
asset plus a cadence to observe it, more code for the same behaviour.
"""

import os

from dagster import (
    AssetKey,
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
    sensor,
)

from orchestration.defs.dataset_assets import current_dataset_hash
from orchestration.defs.partitions import task_partitions
from orchestration.defs.resources import WorkspaceResource

CRON_ENV = "PALITUNE_RETRAIN_CRON"
DEFAULT_CRON = "0 3 * * 1"  # Mondays 03:00 UTC
TASK_TAG, HASH_TAG, TRIGGER_TAG = "palitune/task", "palitune/dataset_hash", "palitune/trigger"

retrain = define_asset_job(
    "retrain",
    selection=AssetSelection.all(),  # partitioned by task, as every asset it selects
    description="One task's whole lifecycle: data, version, training, evaluation, registration, promotion.",
)


def _tags(task: str, digest: str | None, trigger: str) -> dict[str, str]:
    return {TASK_TAG: task, HASH_TAG: digest or "none yet", TRIGGER_TAG: trigger}


@schedule(
    job=retrain,
    cron_schedule=os.environ.get(CRON_ENV) or DEFAULT_CRON,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
    description=f"Retrain every task weekly (cron from {CRON_ENV}, default '{DEFAULT_CRON}').",
)
def weekly_retrain(context: ScheduleEvaluationContext, workspace: WorkspaceResource):
    """One run per task partition, tagged with the task and its current dataset hash."""
    layout = workspace.layout
    for task in task_partitions.get_partition_keys():
        digest = current_dataset_hash(layout, task)
        yield RunRequest(partition_key=task, tags=_tags(task, digest, "schedule"))


@sensor(
    job=retrain,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.STOPPED,
    description="Retrain a task when its dataset has a DVC version the graph has not versioned yet.",
)
def new_dataset_version(context: SensorEvaluationContext, workspace: WorkspaceResource):
    """Compares each task's recorded dataset hash (``datasets/<task>.dvc`` or ``dvc.lock``)
    with the data version of the task's last ``dataset_version`` materialization. The run key
    is task and hash, so one version starts one run however often the sensor ticks."""
    layout, requests = workspace.layout, []
    for task in task_partitions.get_partition_keys():
        digest = current_dataset_hash(layout, task)
        if digest is None:
            continue
        record = context.instance.get_latest_data_version_record(AssetKey("dataset_version"), partition_key=task)
        seen = None
        if record is not None and record.asset_materialization is not None:
            seen = (record.asset_materialization.tags or {}).get("dagster/data_version")
        if digest != seen:
            context.log.info(f"{task}: dataset version {digest} is new (last versioned by the graph: {seen})")
            requests.append(
                RunRequest(run_key=f"{task}:{digest}", partition_key=task, tags=_tags(task, digest, "new-data"))
            )
    return requests or SkipReason("no task has a new dataset version")


SCHEDULES, SENSORS, JOBS = [weekly_retrain], [new_dataset_version], [retrain]
