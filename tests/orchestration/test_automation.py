"""The schedule and the new-data sensor, evaluated against a real instance and workspace."""

import subprocess
import sys
from pathlib import Path

from dagster import (
    DagsterInstance,
    RunRequest,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    materialize,
)

from data.pipeline import reproduce, set_params
from data.synthetic import SplitSizes
from data.tasks import TASKS
from data.versioning import ensure_repo, recorded_hash
from orchestration.defs.automation import HASH_TAG, TASK_TAG, new_dataset_version, weekly_retrain
from orchestration.defs.dataset_assets import dataset_version, raw_dataset
from orchestration.defs.resources import DvcResource, WorkspaceResource

TINY = SplitSizes(train=24, val=4, test=4)


def _sense(instance: DagsterInstance, workspace: WorkspaceResource) -> list[RunRequest]:
    result = new_dataset_version(build_sensor_context(instance=instance, resources={"workspace": workspace}))
    return [] if isinstance(result, SkipReason) else list(result)


def _render(root: Path, seed: int) -> str:
    set_params(root, "vqa", seed=seed, sizes=TINY, image_size=32)
    reproduce(root, ["vqa"])
    digest = recorded_hash(root / "dvc-data" / "synthetic" / "vqa")
    assert digest
    return digest


def test_the_sensor_fires_on_a_new_dataset_version_and_not_otherwise(tmp_path: Path) -> None:
    workspace = WorkspaceResource(root=str(tmp_path))
    ensure_repo(tmp_path, tmp_path / "dvc-remote")
    with DagsterInstance.ephemeral() as instance:
        assert _sense(instance, workspace) == [], "no data, nothing to do"

        first = _render(tmp_path, seed=0)  # as `palitune data repro --task vqa` would
        (request,) = _sense(instance, workspace)
        assert request.partition_key == "vqa" and request.run_key == f"vqa:{first}"
        assert request.tags[TASK_TAG] == "vqa" and request.tags[HASH_TAG] == first

        # The graph versions that data: the same hash is not new any more.
        resources = {"workspace": workspace, "dvc": DvcResource()}
        assert materialize(
            [raw_dataset, dataset_version], partition_key="vqa", resources=resources, instance=instance
        ).success
        assert _sense(instance, workspace) == []

        second = _render(tmp_path, seed=1)  # new parameters, new bytes, new version
        assert second != first
        (request,) = _sense(instance, workspace)
        assert request.run_key == f"vqa:{second}" and request.tags[HASH_TAG] == second


def test_the_weekly_schedule_requests_every_task_tagged_with_its_data(tmp_path: Path) -> None:
    ensure_repo(tmp_path, tmp_path / "dvc-remote")
    digest = _render(tmp_path, seed=0)
    with DagsterInstance.ephemeral() as instance:
        context = build_schedule_context(
            instance=instance, resources={"workspace": WorkspaceResource(root=str(tmp_path))}
        )
        requests = list(weekly_retrain(context))
    assert [r.partition_key for r in requests] == list(TASKS)
    by_task = {r.partition_key: r.tags for r in requests}
    assert by_task["vqa"][HASH_TAG] == digest and by_task["ocr"][HASH_TAG] == "none yet"
    assert all(tags["palitune/trigger"] == "schedule" for tags in by_task.values())


def test_the_retrain_cron_is_configurable() -> None:
    probe = "from orchestration.defs.automation import weekly_retrain as s; print(s.cron_schedule)"
    env = {"PATH": "/usr/bin:/bin", "PALITUNE_RETRAIN_CRON": "30 1 * * 0"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "30 1 * * 0"


def test_a_check_result_belongs_to_its_task_partition(tmp_path: Path) -> None:
    """Asset checks are partitioned as their assets: each task's result is its own."""
    from dagster import AssetCheckKey, AssetKey, DagsterEventType, EventRecordsFilter

    workspace = WorkspaceResource(root=str(tmp_path))
    ensure_repo(tmp_path, tmp_path / "dvc-remote")
    set_params(tmp_path, "vqa", seed=0, sizes=TINY, image_size=32)
    with DagsterInstance.ephemeral() as instance:
        resources = {"workspace": workspace, "dvc": DvcResource()}
        assert materialize([raw_dataset], partition_key="vqa", resources=resources, instance=instance).success
        records = instance.get_event_records(EventRecordsFilter(DagsterEventType.ASSET_CHECK_EVALUATION))
        (evaluation,) = [r.event_log_entry.dagster_event.event_specific_data for r in records]
        assert evaluation.asset_check_key == AssetCheckKey(AssetKey("raw_dataset"), "dataset_is_valid")
        assert evaluation.passed and evaluation.partition == "vqa"
