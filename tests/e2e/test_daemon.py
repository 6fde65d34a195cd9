"""Scheduled retraining for real: a ``dagster-daemon`` process with the new-data sensor on
sees a task's new dataset version and launches the retrain run itself, through the shipped
``dagster.yaml``'s queued run coordinator, and the run ends at the promotion gate."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

from data.pipeline import reproduce, set_params
from data.synthetic import SplitSizes
from data.versioning import ensure_repo, recorded_hash
from orchestration.defs.automation import HASH_TAG, TRIGGER_TAG

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEADLINE_S = 900
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def _cli(env: dict[str, str], *args: str) -> None:
    done = subprocess.run([str(BIN / "dagster"), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def _wait_for_run(instance: DagsterInstance, daemon: subprocess.Popen, log: Path) -> str:
    """The id of the sensor's run once it has finished; fails with the daemon's log otherwise."""
    start = time.monotonic()
    while time.monotonic() - start < DEADLINE_S:
        assert daemon.poll() is None, f"the daemon exited ({daemon.returncode}):\n{log.read_text()[-4000:]}"
        runs = instance.get_runs(filters=RunsFilter(tags={TRIGGER_TAG: "new-data"}))
        if runs and runs[0].status in FINISHED:
            return runs[0].run_id
        time.sleep(5)
    raise AssertionError(f"no finished sensor run after {DEADLINE_S} s:\n{log.read_text()[-4000:]}")


def test_the_daemon_retrains_a_task_when_its_data_gets_a_new_version(tmp_path: Path) -> None:
    workspace, home = tmp_path / "workspace", tmp_path / "dagster"
    home.mkdir()
    shutil.copy(REPO / "configs" / "dagster" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "PALITUNE_HOME": str(workspace), "PALITUNE_TASKS": "vqa"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with DagsterInstance.from_config(str(home)) as instance:  # created once, before two processes use it
        # A user renders a new version of the task's data (`palitune data repro --task vqa`).
        ensure_repo(workspace, workspace / "dvc-remote")
        set_params(workspace, "vqa", seed=3, sizes=SplitSizes(train=256, val=16, test=48), image_size=32)
        reproduce(workspace, ["vqa"])
        digest = recorded_hash(workspace / "dvc-data" / "synthetic" / "vqa")
        assert digest

        _cli(env, "sensor", "start", "new_dataset_version", "-m", "orchestration.definitions")
        log = tmp_path / "daemon.log"
        with log.open("w") as out:
            daemon = subprocess.Popen(
                [str(BIN / "dagster-daemon"), "run", "-m", "orchestration.definitions"],
                env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            run_id = _wait_for_run(instance, daemon, log)
        finally:
            os.killpg(daemon.pid, 15)
            daemon.wait(timeout=60)

        run = instance.get_run_by_id(run_id)
        assert run is not None
        assert run.status == DagsterRunStatus.SUCCESS, f"the retrain run ended {run.status}"
        assert run.tags[HASH_TAG] == digest and run.tags["dagster/partition"] == "vqa"
        # The sensor asked for it and the run went through the queued coordinator the daemon
        # drains, not in-process.
        assert run.tags["dagster/sensor_name"] == "new_dataset_version"
        events = {
            record.event_log_entry.dagster_event.event_type_value
            for record in instance.get_records_for_run(run_id).records
            if record.event_log_entry.dagster_event is not None
        }
        assert {"PIPELINE_ENQUEUED", "PIPELINE_START", "PIPELINE_SUCCESS"} <= events
        champion = instance.get_latest_materialization_event(AssetKey("champion"))
        assert champion is not None and champion.run_id == run_id, "the run ended at the promotion gate"
        version = instance.get_latest_materialization_event(AssetKey("dataset_version"))
        assert version is not None
        assert version.asset_materialization.tags["dagster/data_version"] == digest
