"""Registry stage: the new model version and the champion alias."""

from pathlib import Path

from dagster import Config, Output, asset

from data.versioning import DatasetVersion
from evaluation.generate import max_new_tokens_for
from evaluation.report import EvaluationReport
from evaluation.run import evaluate
from orchestration.defs.evaluation_assets import Evaluation
from orchestration.defs.resources import MlflowResource, WorkspaceResource
from orchestration.defs.training_assets import TrainedAdapter
from registry.models import RegisteredVersion, download_adapter, register_adapter
from registry.promotion import PromotionPolicy, run_promotion
from registry.tracking import run_url
from training.model_loading import resolve_base


class PromotionConfig(Config):
    """The promotion gates (``registry.promotion.PromotionPolicy``)."""

    margin: float = 0.0
    slice_tolerance: float = 0.05
    min_slice_examples: int = 20
    floors: dict[str, float] = {}


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
    examples = evaluation_report.finetuned.predictions
    version = register_adapter(
        client,
        run.mlflow_run_id,
        run.result.adapter_dir,
        mlflow.model_name(run.config.task),
        tags,
        prompt=examples[0].prefix if examples else "caption en",
        max_new_tokens=max_new_tokens_for(run.config.task),
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
    (or, for the first version, the untrained base) on the same test set: the paired-bootstrap
    lower bound of its gain above the margin, no slice regressing, every floor held."""
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
