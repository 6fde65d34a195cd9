"""The lifecycle as assets: raw_dataset -> dataset_version -> finetuned_adapter ->
evaluation_report -> model_version -> champion. Each calls one palitune package."""

import json
from dataclasses import dataclass
from pathlib import Path

from dagster import AssetExecutionContext, Config, DataVersion, MetadataValue, Output, asset

from data.schema import MANIFEST_FILE
from data.synthetic import SplitSizes, write_shapes_vqa
from data.versioning import DatasetVersion, ensure_repo, version_dataset
from evaluation.report import EvaluationReport
from evaluation.run import evaluate
from orchestration.defs.resources import DvcResource, MlflowResource, WorkspaceResource
from registry.lineage import lineage_tags
from registry.models import RegisteredVersion, download_adapter, register_adapter
from registry.promotion import run_promotion
from registry.tracking import log_evaluation, open_run, run_url
from training.config import RunConfig, load_config
from training.model_loading import resolve_base
from training.train import TrainResult, train

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class RawDatasetConfig(Config):
    seed: int = 0
    train: int = 2000
    val: int = 100
    test: int = 200


class FinetuneConfig(Config):
    config: str = "configs/tiny/64px_vqa_lora.yaml"
    overrides: list[str] = []


class PromotionConfig(Config):
    margin: float = 0.0


@dataclass(frozen=True)
class TrainedAdapter:
    result: TrainResult
    config: RunConfig
    mlflow_run_id: str


@dataclass(frozen=True)
class Evaluation:
    finetuned: EvaluationReport
    untrained: EvaluationReport


def _preview(report: EvaluationReport, rows: int = 8) -> MetadataValue:
    lines = ["| prompt | prediction | answer | score |", "|---|---|---|---|"]
    for p in report.predictions[:rows]:
        lines.append(f"| {p.prefix} | {p.prediction or '(empty)'} | {p.answers[0]} | {p.score:.2f} |")
    return MetadataValue.md("\n".join(lines))


@asset(group_name="data", kinds={"python"}, code_version="1")
def raw_dataset(workspace: WorkspaceResource, config: RawDatasetConfig) -> Output[str]:
    """Synthetic shapes VQA (colour and counting questions), rendered locally, split into
    train/val/test in the JSONL contract."""
    path = write_shapes_vqa(
        workspace.layout.datasets / "vqa", seed=config.seed, sizes=SplitSizes(config.train, config.val, config.test)
    )
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


@asset(group_name="training", kinds={"pytorch"}, code_version="1")
def finetuned_adapter(
    context: AssetExecutionContext,
    dataset_version: DatasetVersion,
    config: FinetuneConfig,
    workspace: WorkspaceResource,
    mlflow: MlflowResource,
) -> Output[TrainedAdapter]:
    """LoRA fine-tune of the base on the dataset version's train split; logged to MLflow."""
    layout = workspace.layout
    config_path = Path(config.config) if Path(config.config).is_file() else PROJECT_ROOT / config.config
    run_config = load_config(
        config_path, [*config.overrides, f"dataset={dataset_version.path}", f"output_dir=runs/{context.run_id}"]
    )
    client = mlflow.client(layout)
    tags = lineage_tags(
        dataset_hash=dataset_version.hash,
        base_model=run_config.base_model,
        config_hash=run_config.fingerprint(),
        task=run_config.task,
        dagster_run_id=context.run_id,
        repo=PROJECT_ROOT,
    )
    run_id = open_run(
        client,
        mlflow.experiment,
        layout.mlflow_artifacts,
        run_name=f"{run_config.task}-{context.run_id[:8]}",
        tags=tags,
    )
    result = train(run_config, layout, tracking_uri=mlflow.uri(layout), mlflow_run_id=run_id)
    return Output(
        TrainedAdapter(result, run_config, run_id),
        metadata={
            "adapter": MetadataValue.path(str(result.adapter_dir)),
            "final_loss": result.final_loss,
            "steps": result.steps,
            "trainable_params": result.trainable_params,
            "mlflow_run_id": run_id,
        },
    )


@asset(group_name="evaluation", kinds={"pytorch"}, code_version="1")
def evaluation_report(
    finetuned_adapter: TrainedAdapter,
    dataset_version: DatasetVersion,
    workspace: WorkspaceResource,
    mlflow: MlflowResource,
) -> Output[Evaluation]:
    """The fine-tuned and the untrained model, generated and scored on the test split."""
    layout, result = workspace.layout, finetuned_adapter.result
    finetuned = evaluate(result.base_model, dataset_version.path, adapter_dir=result.adapter_dir)
    untrained = evaluate(result.base_model, dataset_version.path)
    client, run_id = mlflow.client(layout), finetuned_adapter.mlflow_run_id
    reports_dir = result.adapter_dir.parent / "evaluation"
    log_evaluation(client, run_id, finetuned, reports_dir / "finetuned", label="finetuned")
    log_evaluation(client, run_id, untrained, reports_dir / "untrained", label="untrained")
    metric = finetuned.primary_metric
    return Output(
        Evaluation(finetuned, untrained),
        metadata={
            metric: finetuned.primary_value,
            f"untrained {metric}": untrained.primary_value,
            "examples": len(finetuned.predictions),
            "preview": _preview(finetuned),
        },
    )


@asset(group_name="registry", kinds={"mlflow"}, code_version="1")
def model_version(
    finetuned_adapter: TrainedAdapter,
    evaluation_report: Evaluation,
    dataset_version: DatasetVersion,
    workspace: WorkspaceResource,
    mlflow: MlflowResource,
) -> Output[RegisteredVersion]:
    """The adapter registered as a new version of ``palitune-<task>``, alias ``challenger``."""
    layout, run = workspace.layout, finetuned_adapter
    client = mlflow.client(layout)
    tags = {
        **client.get_run(run.mlflow_run_id).data.tags,
        **{f"palitune.metric.{k}": f"{v:.6g}" for k, v in evaluation_report.finetuned.metrics.items()},
    }
    tags = {k: v for k, v in tags.items() if k.startswith("palitune.")}
    version = register_adapter(
        client, run.mlflow_run_id, run.result.adapter_dir, mlflow.model_name(run.config.task), tags
    )
    experiment_id = client.get_run(run.mlflow_run_id).info.experiment_id
    return Output(
        version,
        metadata={
            "model": version.name,
            "version": version.version,
            "alias": "challenger",
            "dataset_hash": dataset_version.hash,
            "mlflow_run": run_url(mlflow.uri(layout), run.mlflow_run_id, experiment_id),
        },
    )


@asset(group_name="registry", kinds={"mlflow"}, code_version="1")
def champion(
    model_version: RegisteredVersion,
    evaluation_report: Evaluation,
    dataset_version: DatasetVersion,
    config: PromotionConfig,
    workspace: WorkspaceResource,
    mlflow: MlflowResource,
) -> Output[dict]:
    """Alias ``champion``: moves to the new version only if it beats the current champion
    (or, for the first version, the untrained base) on the same test set."""
    layout = workspace.layout
    client = mlflow.client(layout)

    def score_version(version, scratch: Path) -> EvaluationReport:
        base = resolve_base(version.tags["palitune.base_model"], layout.models)
        return evaluate(base, dataset_version.path, adapter_dir=download_adapter(client, version, scratch))

    decision, holder = run_promotion(
        client,
        model_version.name,
        model_version.version,
        evaluation_report.finetuned,
        evaluation_report.untrained,
        score_version,
        margin=config.margin,
    )
    state = {
        "model": model_version.name,
        "champion_version": holder,
        "promoted": decision.promote,
        "reason": decision.reason,
    }
    return Output(
        state,
        metadata={
            **state,
            "champion_version": str(holder),
            "baseline": decision.baseline,
            "challenger_score": decision.challenger,
        },
    )


ALL = [raw_dataset, dataset_version, finetuned_adapter, evaluation_report, model_version, champion]
