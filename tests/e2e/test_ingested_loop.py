"""The whole loop on ingested data: a dataset in Roboflow's ``paligemma`` export layout is
ingested into the workspace, takes the place of the synthetic set for its task partition,
and comes out as a registered champion traced to that dataset's DVC hash."""

import json
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize
from mlflow.tracking import MlflowClient
from PIL import Image

from data.schema import read_split
from data.sources import ingest
from data.synthetic import SplitSizes, write_synthetic
from data.versioning import recorded_hash
from orchestration.defs import assets
from orchestration.defs.resources import DvcResource, MlflowResource, TrainingLauncher, WorkspaceResource
from registry.models import CHAMPION
from registry.tracking import UNTRAINED, logged_evaluation

pytestmark = pytest.mark.slow

# ChartQA: one answer per question, as in a Roboflow export, scored by relaxed accuracy.
TASK = "chartqa"
ROBOFLOW_SPLITS = {"train": "train", "val": "valid", "test": "test"}
RUN_CONFIG = {"ops": {"finetuned_adapter": {"config": {"overrides": ["steps=300"]}}}}


def _roboflow_export(rendered: Path, export: Path) -> Path:
    """Re-lay a palitune dataset out as Roboflow's ``paligemma`` export: JPEG images flat in
    ``dataset/``, beside ``_annotations.<split>.jsonl`` with image, prefix and suffix only."""
    export.mkdir(parents=True)
    for split, name in ROBOFLOW_SPLITS.items():
        lines = []
        for example in read_split(rendered, split):
            image = f"{example.id}_png.rf.{split}.jpg"
            Image.open(rendered / example.image).convert("RGB").save(export / image, quality=95)
            lines.append(json.dumps({"image": image, "prefix": example.prefix, "suffix": example.suffix}))
        (export / f"_annotations.{name}.jsonl").write_text("\n".join(lines) + "\n")
    return export


def test_an_ingested_roboflow_export_goes_through_the_whole_loop(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    rendered = write_synthetic(TASK, tmp_path / "rendered", sizes=SplitSizes(train=600, val=16, test=100))
    export = _roboflow_export(rendered, tmp_path / "download" / "dataset")
    dataset = ingest("paligemma-jsonl", export, workspace / "dvc-data" / TASK, task=TASK)

    resources = {
        "workspace": WorkspaceResource(root=str(workspace)),
        "dvc": DvcResource(),
        "mlflow": MlflowResource(),
        "launcher": TrainingLauncher(),
    }
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            assets.ALL, partition_key=TASK, resources=resources, run_config=RUN_CONFIG, instance=instance
        )
        assert result.success
        raw = result.asset_materializations_for_node("raw_dataset")[0].metadata
        assert raw["source"].value == "ingested" and raw["dataset"].value == str(dataset)
    assert not (workspace / "dvc-data" / "synthetic" / TASK).exists(), "the synthetic set was not rendered"

    digest = recorded_hash(dataset)
    assert digest and len(digest) == 32
    client = MlflowClient(f"sqlite:///{workspace}/mlflow/mlflow.db")
    champion = client.get_model_version_by_alias(f"palitune-{TASK}", CHAMPION)
    assert champion.tags["palitune.dataset_hash"] == digest
    run = client.get_run(champion.run_id)
    assert run.data.params["dataset"] == str(dataset), "trained on the ingested folder"
    assert run.data.params["dataset_hash"] == digest
    trained = run.data.metrics[f"finetuned/{TASK}/test/relaxed_accuracy"]
    untrained = logged_evaluation(client, champion.run_id, label=UNTRAINED)[f"{TASK}/test/relaxed_accuracy"]
    assert trained > untrained + 0.3, (trained, untrained)
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["source"]["format"] == "paligemma-jsonl" and manifest["counts"]["test"] == {TASK: 100}
