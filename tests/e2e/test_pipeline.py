"""The whole Dagster graph, materialized for real in a temporary workspace, twice."""

from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, materialize
from mlflow.tracking import MlflowClient

from data.versioning import recorded_hash
from orchestration.defs import assets
from orchestration.defs.resources import DvcResource, MlflowResource, TrainingLauncher, WorkspaceResource
from registry.models import CHALLENGER, CHAMPION, download_adapter
from registry.tracking import UNTRAINED, logged_evaluation

pytestmark = pytest.mark.slow

# Smaller than the demo (2,000 examples, 1,200 steps) and still clearly learnt.
RUN_CONFIG = {
    "ops": {
        "raw_dataset": {"config": {"train": 1000, "val": 50, "test": 100}},
        "finetuned_adapter": {"config": {"overrides": ["steps=400"]}},
    }
}


def _materialize(workspace: Path, instance: DagsterInstance):
    resources = {
        "workspace": WorkspaceResource(root=str(workspace)),
        "dvc": DvcResource(),
        "mlflow": MlflowResource(),
        "launcher": TrainingLauncher(),
    }
    return materialize(assets.ALL, partition_key="vqa", resources=resources, run_config=RUN_CONFIG, instance=instance)


def test_the_whole_loop_twice(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    with DagsterInstance.ephemeral() as instance:
        first = _materialize(workspace, instance)
        assert first.success
        data_hash = recorded_hash(workspace / "dvc-data" / "synthetic" / "vqa")
        assert data_hash and len(data_hash) == 32
        record = instance.get_latest_data_version_record(AssetKey("dataset_version"), partition_key="vqa")
        assert record.asset_materialization.tags["dagster/data_version"] == data_hash

        client = MlflowClient(f"sqlite:///{workspace}/mlflow/mlflow.db")
        champion = client.get_model_version_by_alias("palitune-vqa", CHAMPION)
        assert champion.version == "1" or champion.version == 1
        assert champion.tags["palitune.dataset_hash"] == data_hash
        assert champion.tags["palitune.base_model"] == "tiny"
        assert len(champion.tags["palitune.git_commit"]) in (40, len("unknown"))
        run = client.get_run(champion.run_id)
        trained = run.data.metrics["finetuned/vqa/test/vqa_accuracy"]
        untrained = logged_evaluation(client, champion.run_id, label=UNTRAINED)["vqa/test/vqa_accuracy"]
        assert trained > untrained + 0.3, (trained, untrained)
        assert champion.tags["palitune.promotion.baseline_kind"] == "untrained base"
        assert client.get_metric_history(champion.run_id, "train/loss"), "training logged into the same run"
        adapter = download_adapter(client, champion, tmp_path / "champion-adapter")
        assert (adapter / "adapter_model.safetensors").is_file(), "the version's adapter is downloadable"

        second = _materialize(workspace, instance)
        assert second.success
        assert recorded_hash(workspace / "dvc-data" / "synthetic" / "vqa") == data_hash, "same data, same version"
        challenger = client.get_model_version_by_alias("palitune-vqa", CHALLENGER)
        assert str(challenger.version) == "2"
        assert challenger.run_id != champion.run_id, "a new run"
        # The second version was compared with champion v1 re-scored on the same test set.
        assert challenger.tags["palitune.promotion.baseline_kind"] == "champion v1"
        holder = str(client.get_model_version_by_alias("palitune-vqa", CHAMPION).version)
        promoted = challenger.tags["palitune.promotion.decision"] == "promoted"
        assert holder == ("2" if promoted else "1")
        assert float(challenger.tags["palitune.promotion.baseline"]) == pytest.approx(trained, abs=1e-6)
