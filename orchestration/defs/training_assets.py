"""Training stage: the fine-tuned adapter, trained in its own process launched through Pipes."""

import json
from dataclasses import dataclass
from pathlib import Path

from dagster import AssetCheckResult, AssetCheckSpec, AssetExecutionContext, Config, MaterializeResult, MetadataValue

from data.tasks import get_task
from data.workspace import HOME_ENV
from orchestration.defs.dataset_assets import dataset_version, read_dataset_version
from orchestration.defs.partitions import task_asset
from orchestration.defs.resources import PROJECT_ROOT, MlflowResource, TrainingLauncher, WorkspaceResource
from orchestration.defs.retries import TRANSIENT, final_on_bad_input
from orchestration.defs.upstream import upstream_metadata
from registry.lineage import lineage_tags
from registry.tracking import open_run
from training.config import ConfigError, load_config
from training.pipes_report import PREFLIGHT_CHECK
from training.train import RUN_INFO_FILE, TrainResult


class FinetuneConfig(Config):
    """Which run config trains the partition's task, and overrides of its fields."""

    config: str = ""  # empty: the task's default run config (data.tasks, Task.config)
    overrides: list[str] = []


def _config_path(config: FinetuneConfig, task: str) -> Path:
    chosen = Path(config.config or get_task(task).config)
    return chosen if chosen.is_absolute() or chosen.is_file() else PROJECT_ROOT / chosen


@task_asset(
    group="training",
    kinds={"pytorch", "accelerate"},
    code_version="3",
    retry_policy=TRANSIENT,
    deps=[dataset_version],
    check_specs=[
        AssetCheckSpec(
            PREFLIGHT_CHECK,
            asset="finetuned_adapter",
            blocking=True,
            description="The first training batch can teach something: suffix labels, token types, image tokens.",
        )
    ],
)
def finetuned_adapter(
    context: AssetExecutionContext,
    config: FinetuneConfig,
    workspace: WorkspaceResource,
    mlflow: MlflowResource,
    launcher: TrainingLauncher,
) -> MaterializeResult:
    """The task's run config trained on the dataset version's train split, by
    ``accelerate launch -m training.train`` in its own process (Dagster Pipes), logging into
    an MLflow run opened here with the lineage tags. Resumes from the run's last checkpoint
    when a retry of the same Dagster run starts it again."""
    task, layout = context.partition_key, workspace.layout
    version = read_dataset_version(context)
    config_path = _config_path(config, task)
    # Dagster run and task name the output folder: a retry of this run resumes it.
    output_dir = f"runs/{task}-{context.run.run_id}"
    args = [*config.overrides, f"dataset={version.path}", f"output_dir={output_dir}"]
    with final_on_bad_input():
        run_config = load_config(config_path, args)
        if run_config.task != task:
            raise ConfigError(f"{config_path}: task: is {run_config.task!r}, but this partition is {task!r}")
    client = mlflow.client(layout)
    tags = lineage_tags(
        dataset_hash=version.hash,
        base_model=run_config.base_model,
        config_hash=run_config.fingerprint(),
        task=task,
        dagster_run_id=context.run.run_id,
        repo=PROJECT_ROOT,
    )
    run_id = open_run(
        client, mlflow.experiment, layout.mlflow_artifacts, run_name=f"{task}-{context.run.run_id[:8]}", tags=tags
    )
    env = {HOME_ENV: str(layout.root), "MLFLOW_TRACKING_URI": mlflow.uri(layout), "MLFLOW_RUN_ID": run_id}
    invocation = launcher.launch(
        context, ["--config", str(config_path), *args], env, extras={"task": task, "dataset_hash": version.hash}
    )
    reported, checks = {}, []
    for result in invocation.get_results():
        if isinstance(result, AssetCheckResult):
            checks.append(result)
        else:
            reported = dict(result.metadata or {})
    trained = read_train_result(layout.resolve(output_dir) / "adapter")
    return MaterializeResult(
        metadata={
            **{k: v for k, v in reported.items() if k != "run_info"},
            "adapter": MetadataValue.path(str(trained.adapter_dir)),
            "base_model": trained.base_model,
            "mlflow_run_id": run_id,
            "final_loss": trained.final_loss,
            "steps": trained.steps,
            "trainable_params": trained.trainable_params,
            "method": run_config.method.value,
            "config": MetadataValue.path(str(config_path)),
            "mlflow_run": MetadataValue.url(mlflow.run_url(layout, run_id)),
        },
        check_results=checks,
    )


def read_train_result(adapter_dir: Path) -> TrainResult:
    """What training wrote beside the adapter (``RUN_INFO_FILE``): base model, dataset hash,
    loss, steps, MLflow run."""
    info = json.loads((adapter_dir / RUN_INFO_FILE).read_text())
    return TrainResult(
        adapter_dir=adapter_dir,
        base_model=info["base_model"],
        dataset_hash=info["dataset_hash"],
        final_loss=info["final_loss"],
        steps=info["steps"],
        trainable_params=info["trainable_params"],
        mlflow_run_id=info["mlflow_run_id"],
        resumed_from_step=info.get("resumed_from_step", 0),
    )


@dataclass(frozen=True)
class TrainedAdapter:
    """What the later stages use of a training run: the adapter folder, the base it applies
    to, and the MLflow run that evaluation and registration log into."""

    adapter_dir: Path
    base_model: str
    mlflow_run_id: str


def read_finetuned_adapter(context: AssetExecutionContext) -> TrainedAdapter:
    """The adapter the partition's ``finetuned_adapter`` last trained (``upstream_metadata``)."""
    recorded = upstream_metadata(context, "finetuned_adapter")
    return TrainedAdapter(Path(recorded["adapter"]), str(recorded["base_model"]), str(recorded["mlflow_run_id"]))
