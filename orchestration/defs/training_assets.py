"""Training stage: the fine-tuned adapter, in a run opened with its lineage tags."""

from dataclasses import dataclass
from pathlib import Path

from dagster import AssetExecutionContext, Config, MetadataValue, Output, asset

from data.versioning import DatasetVersion
from orchestration.defs.resources import MlflowResource, WorkspaceResource
from registry.lineage import lineage_tags
from registry.tracking import open_run
from training.config import RunConfig, load_config
from training.train import TrainResult, train

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class FinetuneConfig(Config):
    config: str = "configs/tiny/64px_vqa_lora.yaml"
    overrides: list[str] = []


@dataclass(frozen=True)
class TrainedAdapter:
    result: TrainResult
    config: RunConfig
    mlflow_run_id: str


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
