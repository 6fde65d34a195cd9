"""Registry stage: the new model version and the champion alias."""

from pathlib import Path

from dagster import AssetExecutionContext, Config, MetadataValue, Output

from data.tasks import get_task
from data.versioning import DatasetVersion
from evaluation.report import EvaluationReport
from orchestration.defs.evaluation_assets import Evaluation
from orchestration.defs.partitions import task_asset
from orchestration.defs.resources import MlflowResource, WorkspaceResource
from orchestration.defs.retries import TRANSIENT
from orchestration.defs.training_assets import TrainedAdapter
from palitune.promote import score_version
from registry.models import RegisteredVersion, register_adapter
from registry.promotion import PromotionPolicy, run_promotion


class PromotionConfig(Config):
    """The promotion gates (``registry.promotion.PromotionPolicy``)."""

    margin: float = 0.0
    slice_tolerance: float = 0.05
    min_slice_examples: int = 20
    floors: dict[str, float] = {}


@task_asset(
    group="registry",
    kinds={"mlflow"},
    code_version="2",
    retry_policy=TRANSIENT,
)
def model_version(
    finetuned_adapter: TrainedAdapter,
    evaluation_report: Evaluation,
    dataset_version: DatasetVersion,
    workspace: WorkspaceResource,
    mlflow: MlflowResource,
) -> Output[RegisteredVersion]:
    """The adapter registered as a new version of ``<prefix>-<task>`` (``palitune-vqa``), alias
    ``challenger``: an MLflow pyfunc model with the lineage, metrics and promotion as tags."""
    layout, run = workspace.layout, finetuned_adapter
    client = mlflow.client(layout)
    tags = {
        **client.get_run(run.mlflow_run_id).data.tags,
        **{f"palitune.metric.{k}": f"{v:.6g}" for k, v in evaluation_report.finetuned.metrics.items()},
    }
    tags = {k: v for k, v in tags.items() if k.startswith("palitune.")}
    examples = evaluation_report.finetuned.predictions
    version = register_adapter(
        client,
        run.mlflow_run_id,
        run.result.adapter_dir,
        mlflow.model_name(run.config.task),
        tags,
        prompt=examples[0].prefix if examples else "caption en",
        max_new_tokens=get_task(run.config.task).max_new_tokens,
    )
    return Output(
        version,
        metadata={
            "model": version.name,
            "version": version.version,
            "alias": "challenger",
            "dataset_hash": dataset_version.hash,
            "uri": f"models:/{version.name}/{version.version}",
            "mlflow_run": MetadataValue.url(mlflow.run_url(layout, run.mlflow_run_id)),
        },
    )


@task_asset(
    group="registry",
    kinds={"mlflow"},
    code_version="2",
    retry_policy=TRANSIENT,
)
def champion(
    context: AssetExecutionContext,
    model_version: RegisteredVersion,
    evaluation_report: Evaluation,
    dataset_version: DatasetVersion,
    config: PromotionConfig,
    workspace: WorkspaceResource,
    mlflow: MlflowResource,
) -> Output[dict]:
    """Alias ``champion``: moves to the new version only if it beats the current champion
    (or, for the first version, the untrained base) on the same test set: the paired-bootstrap
    lower bound of its gain above the margin, no slice regressing, every floor held."""
    layout = workspace.layout
    client = mlflow.client(layout)

    def score_champion(version, scratch: Path) -> EvaluationReport:
        context.log.info(f"re-scoring champion v{version.version} on dataset {dataset_version.hash}")
        return score_version(client, version, dataset_version.path, layout.models, scratch)

    decision, holder = run_promotion(
        client,
        model_version.name,
        model_version.version,
        evaluation_report.finetuned,
        evaluation_report.untrained,
        score_champion,
        policy=PromotionPolicy(
            margin=config.margin,
            slice_tolerance=config.slice_tolerance,
            min_slice_examples=config.min_slice_examples,
            floors=dict(config.floors),
        ),
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
            "gain_ci": [decision.ci_low, decision.ci_high],
            "p_value": decision.p_value,
        },
    )
