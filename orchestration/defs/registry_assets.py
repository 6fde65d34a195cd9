"""Registry stage: the new model version and the champion alias."""

from datetime import timedelta
from typing import TYPE_CHECKING

from dagster import AssetExecutionContext, Config, FreshnessPolicy, MetadataValue, Output
from pydantic import Field, create_model

from data.tasks import get_task
from data.versioning import DatasetVersion
from orchestration.defs.evaluation_assets import Evaluation
from orchestration.defs.partitions import task_asset
from orchestration.defs.resources import MlflowResource, WorkspaceResource
from orchestration.defs.retries import TRANSIENT
from orchestration.defs.training_assets import TrainedAdapter
from registry.challenge import champion_scorer
from registry.lineage import version_tags
from registry.models import CHALLENGER, RegisteredVersion, register_adapter
from registry.promotion import PromotionPolicy, policy_gates, run_promotion
from registry.tracking import run_tags


def _promotion_config() -> type[Config]:
    """The ``champion`` asset's config: one field per gate of ``PromotionPolicy``, with its
    default and help text, so the gates are declared once (there)."""
    fields = {gate.name: (gate.type, Field(default=gate.default, description=gate.help)) for gate in policy_gates()}
    doc = "The promotion gates (``registry.promotion.PromotionPolicy``)."
    return create_model("PromotionConfig", __base__=Config, __doc__=doc, **fields)  # type: ignore[call-overload]


if TYPE_CHECKING:
    PromotionConfig = Config
else:
    PromotionConfig = _promotion_config()


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
    tags = version_tags(run_tags(client, run.mlflow_run_id), evaluation_report.finetuned.metrics)
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
            "alias": CHALLENGER,
            "dataset_hash": dataset_version.hash,
            "uri": f"models:/{version.name}/{version.version}",
            "mlflow_run": MetadataValue.url(mlflow.run_url(layout, run.mlflow_run_id)),
        },
    )


# The weekly schedule settles every task's champion (moved or kept) each Monday: eight days
# without that means the scheduled retrain has stopped succeeding, and the UI says so.
CHAMPION_FRESHNESS = FreshnessPolicy.time_window(fail_window=timedelta(days=8), warn_window=timedelta(days=7, hours=12))


@task_asset(
    group="registry",
    kinds={"mlflow"},
    code_version="2",
    retry_policy=TRANSIENT,
    freshness_policy=CHAMPION_FRESHNESS,
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
    score_champion = champion_scorer(client, dataset_version.path, layout.models, announce=context.log.info)
    decision, holder = run_promotion(
        client,
        model_version.name,
        model_version.version,
        evaluation_report.finetuned,
        evaluation_report.untrained,
        score_champion,
        policy=PromotionPolicy.from_gates(config.model_dump()),
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
