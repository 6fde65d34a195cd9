"""Data stage: the task's dataset and its DVC version."""

import json
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    DataVersion,
    MaterializeResult,
    MetadataValue,
)

from data.pipeline import ensure_pipeline, output_dir, read_params, reproduce, set_params, task_defaults
from data.schema import MANIFEST_FILE, read_split
from data.synthetic import SplitSizes
from data.validate import validate_dataset
from data.versioning import DatasetVersion, recorded_hash, remote_url, version_dataset
from data.workspace import Workspace
from orchestration.defs.partitions import task_asset
from orchestration.defs.resources import DvcResource, WorkspaceResource
from orchestration.defs.retries import TRANSIENT, final_on_bad_input
from orchestration.defs.upstream import upstream_metadata


class RawDatasetConfig(Config):
    """Parameters of the synthetic stage; unset ones keep their value in ``params.yaml``."""

    seed: int | None = None
    image_size: int | None = None
    train: int | None = None
    val: int | None = None
    test: int | None = None


def task_dataset_dir(layout: Workspace, task: str) -> Path:
    """Where the task's data is: ingested data in ``datasets/<task>`` wins over the synthetic set."""
    own = layout.datasets / task
    return own if (own / MANIFEST_FILE).is_file() else output_dir(layout.project, task)


def current_dataset_hash(layout: Workspace, task: str) -> str | None:
    """The DVC version the task's dataset folder is recorded at now, if any."""
    return recorded_hash(task_dataset_dir(layout, task))


def _preview(dataset: Path, rows: int = 5) -> MetadataValue:
    lines = ["| id | prefix | suffix |", "|---|---|---|"]
    for example in read_split(dataset, "train")[:rows]:
        suffix = example.suffix if len(example.suffix) <= 60 else example.suffix[:57] + "..."
        lines.append(f"| {example.id} | {example.prefix} | {suffix.replace('|', '/')} |")
    return MetadataValue.md("\n".join(lines))


VALID_CHECK = "dataset_is_valid"


def validity(dataset: Path) -> AssetCheckResult:
    """The result of ``palitune data validate`` on the folder, as a check result."""
    report = validate_dataset(dataset)
    shown = "\n".join(str(p) for p in report.problems[:50]) or "none"
    return AssetCheckResult(
        check_name=VALID_CHECK,
        passed=report.ok,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "problem_count": len(report.problems),
            "problems": MetadataValue.text(shown),
            "counts": MetadataValue.json(report.counts),
        },
    )


@task_asset(
    group="data",
    kinds={"dvc", "python"},
    code_version="3",
    check_specs=[
        AssetCheckSpec(
            VALID_CHECK,
            asset="raw_dataset",
            blocking=True,
            description="`palitune data validate`: schema, images, boxes, ids, no train/test leakage. "
            "A dataset that fails is never versioned or trained on.",
        )
    ],
)
def raw_dataset(
    context: AssetExecutionContext, workspace: WorkspaceResource, dvc: DvcResource, config: RawDatasetConfig
) -> MaterializeResult:
    """The task's dataset folder in the JSONL contract, split into train/val/test.

    Data of your own, ingested to ``datasets/<task>`` (``palitune data ingest``), is used as
    it is. Otherwise the project's DVC pipeline renders the synthetic set
    (``dvc repro synthesize@<task>``, parameters in ``params.yaml``, which this asset's config
    can change); an unchanged stage is not rendered again."""
    task, layout = context.partition_key, workspace.layout
    project = dvc.prepare(layout)
    path = task_dataset_dir(layout, task)
    with final_on_bad_input():
        if path == layout.datasets / task:
            source = "ingested"
        else:
            ensure_pipeline(project)
            current = {**task_defaults(task), **read_params(project).get(task, {})}
            chosen = {k: v for k, v in config.model_dump().items() if v is not None}
            params = {**current, **chosen}
            sizes = SplitSizes(params["train"], params["val"], params["test"])
            set_params(project, task, seed=params["seed"], sizes=sizes, image_size=params["image_size"])
            (path,) = reproduce(project, [task])
            source = "synthetic (dvc repro)"
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    return MaterializeResult(
        metadata={
            "dataset": MetadataValue.path(str(path)),
            "source": source,
            "counts": MetadataValue.json(manifest["counts"]),
            "preview": _preview(path),
        },
        check_results=[validity(path)],
    )


@task_asset(
    group="data",
    kinds={"dvc"},
    code_version="3",
    retry_policy=TRANSIENT,
    deps=[raw_dataset],
)
def dataset_version(
    context: AssetExecutionContext, workspace: WorkspaceResource, dvc: DvcResource
) -> MaterializeResult:
    """The dataset folder versioned with DVC and pushed to the remote. Its hash is the data
    version: every run trained or scored on it is tagged with it, and
    ``palitune data checkout HASH`` restores it on a fresh clone."""
    project = dvc.prepare(workspace.layout)
    with final_on_bad_input():
        dataset = Path(upstream_metadata(context, "raw_dataset")["dataset"])
        version = version_dataset(project, dataset, remote=dvc.remote())
    context.log.info(f"dataset {version.path} is DVC version {version.hash}")
    return MaterializeResult(
        data_version=DataVersion(version.hash),
        metadata={
            "dataset": MetadataValue.path(str(version.path)),
            "dvc_hash": version.hash,
            "files": version.files,
            "bytes": version.size,
            "dvc_file": MetadataValue.path(str(version.dvc_file)),
            "remote": remote_url(project, dvc.remote()),
        },
    )


def read_dataset_version(context: AssetExecutionContext) -> DatasetVersion:
    """The dataset version the partition's ``dataset_version`` last recorded (``upstream_metadata``)."""
    recorded = upstream_metadata(context, "dataset_version")
    return DatasetVersion(
        path=Path(recorded["dataset"]),
        hash=str(recorded["dvc_hash"]),
        dvc_file=Path(recorded["dvc_file"]),
        files=int(recorded["files"]),
        size=int(recorded["bytes"]),
    )
