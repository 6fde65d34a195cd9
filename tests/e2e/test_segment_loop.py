"""The whole loop on the ``segment`` partition: the graph renders a small synthetic
segmentation set, trains the tiny model on it briefly, evaluates, registers and promotes it,
and ``palitune predict`` on the champion returns objects with masks (COCO RLE) and boxes; with
another mask codec in force the champion is refused, and its merged export records where it
came from.

How well the tiny model learns segmentation is the learnability benchmark's; here a few
hundred steps are enough to leave the untrained base (no valid object) behind."""

import json
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize
from mlflow.tracking import MlflowClient
from PIL import Image

from data.lineage_tags import DATASET_TAG
from data.mask_codec.codec import ENV_VAR
from data.masks import decode_mask
from data.schema import read_split
from data.versioning import recorded_hash
from orchestration.defs import assets
from orchestration.defs.resources import DvcResource, MlflowResource, TrainingLauncher, WorkspaceResource
from palitune.cli import main
from registry.models import CHAMPION
from registry.serving import EXPORT_RECORD_FILE, export_version
from tests.data.test_mask_codec import random_checkpoint, save_npz

pytestmark = pytest.mark.slow

TASK = "segment"
RUN_CONFIG = {
    "ops": {
        "raw_dataset": {"config": {"train": 192, "val": 8, "test": 16}},
        "finetuned_adapter": {"config": {"overrides": ["steps=150", "batch_size=16", "log_every=50"]}},
    }
}


def test_the_segment_partition_trains_registers_promotes_and_predicts_masks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = tmp_path / "workspace"
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
    dataset = workspace / "dvc-data" / "synthetic" / TASK
    digest = recorded_hash(dataset)
    assert digest and len(digest) == 32

    client = MlflowClient(f"sqlite:///{workspace}/mlflow/mlflow.db")
    champion = client.get_model_version_by_alias(f"palitune-{TASK}", CHAMPION)
    assert str(champion.version) == "1"
    assert champion.tags[DATASET_TAG] == digest
    assert champion.tags["palitune.promotion.decision"] == "promoted"
    assert champion.tags["palitune.promotion.baseline_kind"] == "untrained base"
    metrics = client.get_run(str(champion.run_id)).data.metrics
    assert float(champion.tags["palitune.promotion.baseline"]) == 0.0, "the untrained base gives no valid object"
    assert metrics[f"finetuned/{TASK}/test/miou"] > 0.0
    assert 0.0 <= metrics[f"finetuned/{TASK}/test/box_acc50"] <= 1.0
    logged = _all_artifacts(client, str(champion.run_id))
    assert any(path.endswith("/masks.png") for path in logged), "the mask pictures travel with the report"

    monkeypatch.setenv("PALITUNE_HOME", str(workspace))
    examples = read_split(dataset, "test")[:2]
    images = [str(dataset / e.image) for e in examples]
    argv = ["predict", "--model", f"models:/palitune-{TASK}@{CHAMPION}"]
    argv += [arg for e in examples for arg in ("--image", str(dataset / e.image), "--prompt", e.prefix)]
    assert main(argv) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [a["image"] for a in answers] == images
    assert any(a["objects"] for a in answers), answers
    for answer in answers:
        with Image.open(answer["image"]) as image:
            width, height = image.size
        assert answer["text"].startswith("<loc") or not answer["objects"]
        for obj in answer["objects"]:
            x0, y0, x1, y1 = obj["box"]
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height and isinstance(obj["label"], str)
            assert obj["mask"]["size"] == [height, width]
            assert decode_mask(obj["mask"], height, width).shape == (height, width)

    exported = export_version(client.tracking_uri, f"palitune-{TASK}@{CHAMPION}", workspace / "models", tmp_path / "x")
    record = json.loads((exported / EXPORT_RECORD_FILE).read_text())
    assert record["version"] == "1" and record["dataset_hash"] == digest and record["task"] == TASK
    assert record["metrics"][f"finetuned/{TASK}/test/miou"] == metrics[f"finetuned/{TASK}/test/miou"]
    assert record["mask_codec"]["name"] == "embedded"

    save_npz(tmp_path / "other.npz", random_checkpoint(dim=16))
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "other.npz"))
    assert main(argv) == 2
    assert "was encoded with mask codec 'embedded'" in capsys.readouterr().err


def _all_artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    """Every artifact path of the run, folders walked."""
    found: list[str] = []
    for artifact in client.list_artifacts(run_id, path):
        found += _all_artifacts(client, run_id, artifact.path) if artifact.is_dir else [artifact.path]
    return found
