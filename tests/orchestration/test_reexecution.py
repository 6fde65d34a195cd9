"""Re-execution from failure as a pod-per-run deployment does it (configs/dagster/dagster-k8s.yaml):
the run and event-log storage survives, the first run's local files do not.

The first run fails at a real gate (a metric floor no model reaches); its process and its
local artifact storage (where the filesystem IO manager would have pickled outputs) are then
thrown away, and a fresh process, on an instance whose local storage is new and empty,
re-executes from failure. It can only succeed if every step finds its upstream artifacts in
the stores they were persisted to (DVC, disk, MLflow) through the event log's metadata.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus, JobDefinition
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TASK = "vqa"


def retrain_job() -> JobDefinition:
    """The job as the re-executing process rebuilds it (a reconstructor, imported by name)."""
    from orchestration.definitions import defs

    return defs.resolve_job_def("retrain")


# What the UI's "Re-execute from failure" does, in a process of its own: argv is the failed
# run's id, the new run config, the run's tags (a re-execution through the API inherits none)
# and the folder the reconstructor's module is imported from.
REEXECUTE = """
import json, sys
from dagster import DagsterInstance, ReexecutionOptions, build_reconstructable_job, execute_job

job = build_reconstructable_job(
    "tests.orchestration.test_reexecution", "retrain_job", reconstructor_working_directory=sys.argv[4]
)
with DagsterInstance.get() as instance:
    options = ReexecutionOptions.from_failure(sys.argv[1], instance)
    config, tags = json.loads(sys.argv[2]), json.loads(sys.argv[3])
    result = execute_job(job, instance, run_config=config, tags=tags, reexecution_options=options)
    sys.exit(0 if result.success else 1)
"""


def _pod(home: Path, local_storage: Path) -> None:
    """The instance as a pod sees it: shared run and event-log storage, its own local disk."""
    home.mkdir(parents=True, exist_ok=True)
    config = {
        "storage": {"sqlite": {"base_dir": str(home / "history")}},
        "local_artifact_storage": {
            "module": "dagster._core.storage.root",
            "class": "LocalArtifactStorage",
            "config": {"base_dir": str(local_storage)},
        },
        "compute_logs": {
            "module": "dagster._core.storage.local_compute_log_manager",
            "class": "LocalComputeLogManager",
            "config": {"base_dir": str(local_storage / "compute_logs")},
        },
        "telemetry": {"enabled": False},
    }
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))


def _run_config(floors: dict[str, float]) -> dict:
    return {
        "execution": {"config": {"in_process": {}}},
        "ops": {
            "raw_dataset": {"config": {"train": 48, "val": 8, "test": 16}},
            "finetuned_adapter": {"config": {"overrides": ["steps=6", "batch_size=8", "log_every=3"]}},
            "evaluation_report": {"config": {"floors": floors}},
        },
    }


def _steps(instance: DagsterInstance, run_id: str, kind: DagsterEventType) -> set[str]:
    return {e.dagster_event.step_key for e in instance.all_logs(run_id, of_type=kind) if e.dagster_event}


def test_a_failed_run_reexecutes_from_failure_in_a_fresh_pod(tmp_path: Path) -> None:
    home, workspace = tmp_path / "dagster", tmp_path / "workspace"
    env = {**os.environ, "PALITUNE_HOME": str(workspace), "DAGSTER_HOME": str(home), "PALITUNE_RETRIES": "0"}
    for name in ("MLFLOW_TRACKING_URI", "PALITUNE_DVC_REMOTE", "PALITUNE_MODEL_PREFIX", "PALITUNE_TASKS"):
        env.pop(name, None)
    tags = {"dagster/partition": TASK}

    _pod(home, tmp_path / "pod-1")
    config = tmp_path / "run_config.yaml"
    config.write_text(yaml.safe_dump(_run_config({"vqa_accuracy": 1.01})))  # no model reaches it
    dagster = str(Path(sys.executable).with_name("dagster"))
    first = subprocess.run(
        [dagster, "job", "execute", "-m", "orchestration.definitions", "-j", "retrain"]
        + ["--tags", json.dumps(tags), "-c", str(config)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert first.returncode != 0, first.stdout[-3000:] + first.stderr[-3000:]

    shutil.rmtree(tmp_path / "pod-1")  # the first pod is gone, and its disk with it
    _pod(home, tmp_path / "pod-2")
    with DagsterInstance.from_config(str(home)) as instance:
        (failed,) = instance.get_runs()
        assert failed.status == DagsterRunStatus.FAILURE
        assert _steps(instance, failed.run_id, DagsterEventType.STEP_FAILURE) == {"evaluation_report"}

    second = subprocess.run(
        [sys.executable, "-c", REEXECUTE, failed.run_id, json.dumps(_run_config({})), json.dumps(tags), str(REPO)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]

    with DagsterInstance.from_config(str(home)) as instance:
        rerun = next(r for r in instance.get_runs() if r.run_id != failed.run_id)
        assert rerun.parent_run_id == failed.run_id and rerun.status == DagsterRunStatus.SUCCESS
        done = _steps(instance, rerun.run_id, DagsterEventType.STEP_SUCCESS)
        assert done == {"evaluation_report", "model_version", "champion"}, "only the failed step and what follows"
        trained = instance.get_latest_materialization_event(AssetKey("finetuned_adapter"))
        assert trained is not None and trained.run_id == failed.run_id, "training was not run again"
        champion = instance.get_latest_materialization_event(AssetKey("champion"))
        assert champion is not None and champion.asset_materialization is not None
        shown = {k: v.value for k, v in champion.asset_materialization.metadata.items()}

    # The re-execution registered the adapter the first run trained, from the first run's MLflow run.
    client = MlflowClient(f"sqlite:///{workspace}/mlflow/mlflow.db")
    (registered,) = client.search_model_versions("name = 'palitune-vqa'")
    assert client.get_run(registered.run_id).data.tags["palitune.dagster_run_id"] == failed.run_id
    assert shown["challenger_uri"] == f"models:/palitune-vqa/{registered.version}"
    assert shown["baseline"] == "untrained base"
    assert shown["p_value"] == "<0.001" or len(shown["p_value"]) == 5, "rounded: 0.xxx or 1.000"
    # Nothing went through the filesystem IO manager: the new pod's disk holds its step logs only.
    stored = [p for p in (tmp_path / "pod-2").rglob("*") if p.is_file() and "compute_logs" not in p.parts]
    assert stored == [], stored
