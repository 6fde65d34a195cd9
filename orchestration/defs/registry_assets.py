"""Registry stage: the new model version and the champion alias."""

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from dagster import AssetExecutionContext, Config, FreshnessPolicy, MaterializeResult, MetadataValue
from pydantic import Field, create_model

from data.tasks import get_task
from orchestration.defs.dataset_assets import dataset_version, read_dataset_version
from orchestration.defs.evaluation_assets import evaluation_report, read_evaluation
from orchestration.defs.partitions import task_asset
from orchestration.defs.resources import MlflowResource, WorkspaceResource
from orchestration.defs.retries import TRANSIENT
from orchestration.defs.training_assets import finetuned_adapter, read_finetuned_adapter
from orchestration.defs.upstream import upstream_metadata
from registry.challenge import champion_scorer
from registry.lineage import version_tags
from registry.models import CHALLENGER, RegisteredVersion, register_adapter
from registry.promotion import Decision, PromotionPolicy, policy_gates, run_promotion
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
    code_version="3",
    retry_policy=TRANSIENT,
    deps=[finetuned_adapter, evaluation_report, dataset_version],
)
def model_version(
    context: AssetExecutionContext, workspace: WorkspaceResource, mlflow: MlflowResource
) -> MaterializeResult:
    """The adapter registered as a new version of ``<prefix>-<task>`` (``palitune-vqa``), alias
    ``challenger``: an MLflow pyfunc model with the lineage, metrics and promotion as tags."""
    layout, task, trained = workspace.layout, context.partition_key, read_finetuned_adapter(context)
    finetuned = read_evaluation(context).finetuned
    client = mlflow.client(layout)
    tags = version_tags(run_tags(client, trained.mlflow_run_id), finetuned.metrics)
    examples = finetuned.predictions
    version = register_adapter(
        client,
        trained.mlflow_run_id,
        trained.adapter_dir,
        mlflow.model_name(task),
        tags,
        prompt=examples[0].prefix if examples else "caption en",
        max_new_tokens=get_task(task).max_new_tokens,
        models_dir=layout.models,
    )
    return MaterializeResult(
        metadata={
            "model": version.name,
            "version": version.version,
            "alias": CHALLENGER,
            "dataset_hash": read_dataset_version(context).hash,
            "uri": version.uri,
            "mlflow_run_id": version.run_id,
            "source": version.source,
            "version_page": MetadataValue.url(mlflow.model_version_url(layout, version.name, version.version)),
            "mlflow_run": MetadataValue.url(mlflow.run_url(layout, trained.mlflow_run_id)),
        },
    )


def read_model_version(context: AssetExecutionContext) -> RegisteredVersion:
    """The version the partition's ``model_version`` last registered."""
    recorded = upstream_metadata(context, "model_version")
    return RegisteredVersion(
        name=str(recorded["model"]),
        version=str(recorded["version"]),
        run_id=str(recorded["mlflow_run_id"]),
        source=str(recorded["source"]),
    )


def champion_metadata(
    decision: Decision, challenger: RegisteredVersion, holder: str | None, version_url: Callable[[str], str]
) -> dict[str, Any]:
    """What the ``champion`` materialization shows: which version holds the alias afterwards
    and the challenger, each with its ``models:/`` URI and MLflow page (``version_url(version)``),
    and the decision against a named baseline (``champion vN`` or ``untrained base``)."""
    name = challenger.name
    held: dict[str, Any] = {"champion_version": "none"}
    if holder is not None:
        held = {
            "champion_version": str(holder),
            "champion_uri": f"models:/{name}/{holder}",
            "champion_page": MetadataValue.url(version_url(str(holder))),
        }
    return {
        "model": name,
        **held,
        "promoted": decision.promote,
        "reason": decision.reason,
        "challenger_version": challenger.version,
        "challenger_uri": challenger.uri,
        "challenger_page": MetadataValue.url(version_url(challenger.version)),
        "metric": decision.metric,
        "challenger_score": decision.challenger,
        "baseline": decision.baseline_kind,
        "baseline_score": decision.baseline,
        "gain_ci": [round(decision.ci_low, 4), round(decision.ci_high, 4)],
        "p_value": decision.p_value_text,
    }


# The weekly schedule settles every task's champion (moved or kept) each Monday: eight days
# without that means the scheduled retrain has stopped succeeding, and the UI says so.
CHAMPION_FRESHNESS = FreshnessPolicy.time_window(fail_window=timedelta(days=8), warn_window=timedelta(days=7, hours=12))


@task_asset(
    group="registry",
    kinds={"mlflow"},
    code_version="3",
    retry_policy=TRANSIENT,
    freshness_policy=CHAMPION_FRESHNESS,
    deps=[model_version, evaluation_report, dataset_version],
)
def champion(
    context: AssetExecutionContext, config: PromotionConfig, workspace: WorkspaceResource, mlflow: MlflowResource
) -> MaterializeResult:
    """Alias ``champion``: moves to the new version only if it beats the current champion
    (or, for the first version, the untrained base) on the same test set: the paired-bootstrap
    lower bound of its gain above the margin, no slice regressing, every floor held."""
    layout, version, reports = workspace.layout, read_model_version(context), read_evaluation(context)
    client = mlflow.client(layout)
    dataset = read_dataset_version(context)
    score_champion = champion_scorer(client, dataset.path, layout.models, announce=context.log.info)
    decision, holder = run_promotion(
        client,
        version.name,
        version.version,
        reports.finetuned,
        reports.untrained,
        score_champion,
        policy=PromotionPolicy.from_gates(config.model_dump()),
    )
    page = lambda number: mlflow.model_version_url(layout, version.name, number)  # noqa: E731
    return MaterializeResult(metadata=champion_metadata(decision, version, holder, page))
