"""The whole graph materialized for real, per task partition, with training launched
through Pipes: two tasks end to end, a failing blocking check, bad input not retried."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, materialize
from mlflow.tracking import MlflowClient

from data.versioning import recorded_hash
from orchestration.defs import assets
from orchestration.defs.resources import DvcResource, MlflowResource, TrainingLauncher, WorkspaceResource

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _run_config(task: str, *, overrides: tuple[str, ...] = (), floors: dict | None = None) -> dict:
    return {
        "ops": {
            "raw_dataset": {"config": {"train": 48, "val": 8, "test": 16}},
            "finetuned_adapter": {"config": {"overrides": ["steps=6", "batch_size=8", "log_every=3", *overrides]}},
            "evaluation_report": {"config": {"floors": floors or {}}},
        }
    }


def _materialize(workspace: Path, instance: DagsterInstance, task: str, **config):
    resources = {
        "workspace": WorkspaceResource(root=str(workspace)),
        "dvc": DvcResource(),
        "mlflow": MlflowResource(),
        "launcher": TrainingLauncher(),
    }
    return materialize(
        assets.ALL,
        partition_key=task,
        resources=resources,
        run_config=_run_config(task, **config),
        instance=instance,
        raise_on_error=False,
    )


def _metadata(instance: DagsterInstance, asset: str, task: str) -> dict:
    record = instance.get_latest_data_version_record(AssetKey(asset), partition_key=task)
    assert record is not None, f"{asset}[{task}] was not materialized"
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def test_two_task_partitions_materialize_end_to_end(tmp_path: Path) -> None:
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow/mlflow.db")
    with DagsterInstance.ephemeral() as instance:
        for task in ("vqa", "chartqa"):
            result = _materialize(tmp_path, instance, task)
            assert result.success, task
            digest = recorded_hash(tmp_path / "dvc-data" / "synthetic" / task)
            checks = {
                e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
                for e in result.all_events
                if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
            }
            assert checks == {"dataset_is_valid": True, "preflight": True, "metric_floors": True}

            version = _metadata(instance, "dataset_version", task)
            assert version["dvc_hash"] == digest
            trained = _metadata(instance, "finetuned_adapter", task)
            assert trained["steps"] == 6 and Path(trained["adapter"]).joinpath("adapter_config.json").is_file()
            assert trained["mlflow_run"].startswith("http://127.0.0.1:5000/#/experiments/")
            # The training process logged into the run opened by the asset, with the lineage.
            run = client.get_run(trained["mlflow_run_id"])
            assert run.data.tags["palitune.dagster_run_id"] == result.run_id
            assert run.data.tags["palitune.dataset_hash"] == digest
            assert client.get_metric_history(run.info.run_id, "train/loss")

            (registered,) = client.search_model_versions(f"name = 'palitune-{task}'")
            assert registered.tags["palitune.dataset_hash"] == digest
            assert registered.tags["palitune.promotion.decision"] in ("promoted", "rejected")
            assert _metadata(instance, "champion", task)["model"] == f"palitune-{task}"
            logs = [e.message for e in instance.all_logs(result.run_id) if e.message]
            assert any("step 3:" in m and "train/loss" in m for m in logs), "progress came back over Pipes"


def test_a_failing_blocking_check_stops_everything_downstream(tmp_path: Path) -> None:
    with DagsterInstance.ephemeral() as instance:
        result = _materialize(tmp_path, instance, "vqa", floors={"vqa_accuracy": 1.01})
        assert not result.success
        evaluation = _metadata(instance, "evaluation_report", "vqa")
        assert "vqa/test/vqa_accuracy" in evaluation
        for downstream in ("model_version", "champion"):
            assert instance.get_latest_data_version_record(AssetKey(downstream), partition_key="vqa") is None
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow/mlflow.db")
    assert client.search_model_versions("name = 'palitune-vqa'") == [], "nothing was registered"


def test_bad_input_found_by_training_fails_once_without_retries(tmp_path: Path) -> None:
    """qlora needs a GPU: the training process refuses it and says so over Pipes; the retry
    policy (for transient failures) must not run it again."""
    with DagsterInstance.ephemeral() as instance:
        result = _materialize(tmp_path, instance, "vqa", overrides=("method=qlora",))
        assert not result.success
        events = result.events_for_node("finetuned_adapter")
        starts = [e for e in events if e.event_type == DagsterEventType.STEP_START]
        retries = [e for e in events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
        assert len(starts) == 1 and not retries
        (failure,) = [e for e in events if e.event_type == DagsterEventType.STEP_FAILURE]
        assert "training refused its input" in str(failure.step_failure_data.error) and "qlora" in str(
            failure.step_failure_data.error
        )
        assert instance.get_latest_data_version_record(AssetKey("evaluation_report"), partition_key="vqa") is None


def test_an_unreachable_dvc_remote_is_retried_then_stops_the_run(tmp_path: Path) -> None:
    """The remote is transient trouble: retried per policy (shortened here through the
    environment, as an operator would), then the run fails before any training starts."""
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "files").write_text("not a folder")  # DVC's object store cannot be written
    env = {
        **os.environ,
        "PALITUNE_HOME": str(tmp_path / "workspace"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "PALITUNE_DVC_REMOTE": str(remote),
        "PALITUNE_RETRY_DELAY_S": "0.2",
    }
    (tmp_path / "dagster").mkdir()
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [
        str(Path(sys.executable).with_name("dagster")),
        *("asset", "materialize", "--select", "*", "--partition", "vqa", "-m", "orchestration.definitions"),
        *("--config-json", json.dumps(_run_config("vqa"))),
    ]
    proc = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    os.environ["DAGSTER_HOME"], previous = str(tmp_path / "dagster"), os.environ.get("DAGSTER_HOME")
    try:
        with DagsterInstance.get() as instance:
            (run,) = instance.get_runs()
            events = [e.dagster_event for e in instance.all_logs(run.run_id) if e.dagster_event]
    finally:
        os.environ.pop("DAGSTER_HOME")
        if previous is not None:
            os.environ["DAGSTER_HOME"] = previous
    by_step = lambda step, kind: [e for e in events if e.step_key == step and e.event_type == kind]  # noqa: E731
    assert len(by_step("dataset_version", DagsterEventType.STEP_UP_FOR_RETRY)) == 2
    (failure,) = by_step("dataset_version", DagsterEventType.STEP_FAILURE)
    assert "pushing vqa failed" in str(failure.step_failure_data.error)
    assert not by_step("finetuned_adapter", DagsterEventType.STEP_START), "nothing downstream ran"
    assert not (tmp_path / "workspace" / "runs").exists()
