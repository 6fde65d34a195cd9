"""Data stage: the synthetic dataset and its DVC version."""

import json
from pathlib import Path

from dagster import AssetExecutionContext, Config, DataVersion, MetadataValue, Output, asset

from data.pipeline import reproduce, set_params
from data.schema import MANIFEST_FILE
from data.synthetic import SplitSizes
from data.versioning import DatasetVersion, ensure_repo, version_dataset
from orchestration.defs.resources import DvcResource, WorkspaceResource


class RawDatasetConfig(Config):
    seed: int = 0
    image_size: int = 64
    train: int = 2000
    val: int = 100
    test: int = 200


@asset(group_name="data", kinds={"dvc", "python"}, code_version="2")
def raw_dataset(workspace: WorkspaceResource, dvc: DvcResource, config: RawDatasetConfig) -> Output[str]:
    """Synthetic shapes VQA (colour and counting questions), rendered locally by the
    workspace's DVC pipeline (``dvc repro synthesize@vqa``, sized in ``params.yaml`` from this
    asset's config), split into train/val/test in the JSONL contract."""
    layout = workspace.layout
    ensure_repo(layout.root, dvc.remote(layout))
    sizes = SplitSizes(config.train, config.val, config.test)
    set_params(layout.root, "vqa", seed=config.seed, sizes=sizes, image_size=config.image_size)
    (path,) = reproduce(layout.root, ["vqa"])
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    return Output(
        str(path), metadata={"path": MetadataValue.path(str(path)), "counts": MetadataValue.json(manifest["counts"])}
    )


@asset(group_name="data", kinds={"dvc"}, code_version="1")
def dataset_version(
    context: AssetExecutionContext, raw_dataset: str, workspace: WorkspaceResource, dvc: DvcResource
) -> Output[DatasetVersion]:
    """The dataset folder versioned with DVC and pushed; its hash is the data version."""
    layout = workspace.layout
    ensure_repo(layout.root, dvc.remote(layout))
    version = version_dataset(layout.root, Path(raw_dataset))
    context.log.info(f"dataset {version.path} is DVC version {version.hash}")
    return Output(
        version,
        data_version=DataVersion(version.hash),
        metadata={
            "dvc_hash": version.hash,
            "files": version.files,
            "bytes": version.size,
            "dvc_file": MetadataValue.path(str(version.dvc_file)),
        },
    )
