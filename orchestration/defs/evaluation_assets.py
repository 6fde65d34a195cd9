"""Evaluation stage: the fine-tuned and the untrained model scored on the test split."""

from dataclasses import dataclass

from dagster import AssetCheckResult, AssetCheckSpec, Config, MetadataValue, Output

from data.versioning import DatasetVersion
from evaluation.pictures import write_pictures
from evaluation.report import EvaluationReport
from evaluation.run import evaluate
from orchestration.defs.partitions import task_asset
from orchestration.defs.resources import MlflowResource, WorkspaceResource
from orchestration.defs.training_assets import TrainedAdapter
from registry.tracking import FINETUNED, UNTRAINED, log_evaluation

FLOORS_CHECK = "metric_floors"


@dataclass(frozen=True)
class Evaluation:
    finetuned: EvaluationReport
    untrained: EvaluationReport


class EvaluationConfig(Config):
    """Absolute minimums of the fine-tuned model's metrics, by name (``vqa_accuracy: 0.5``),
    checked before anything is registered."""

    floors: dict[str, float] = {}


def _preview(report: EvaluationReport, rows: int = 8) -> MetadataValue:
    lines = ["| prompt | prediction | answer | score |", "|---|---|---|---|"]
    for p in report.predictions[:rows]:
        cells = [p.prefix, p.prediction or "(empty)", p.answers[0] if p.answers else ""]
        cells = [c.replace("|", "/")[:80] for c in cells]
        lines.append(f"| {' | '.join(cells)} | {p.score:.2f} |")
    return MetadataValue.md("\n".join(lines))


@task_asset(
    group="evaluation",
    kinds={"pytorch"},
    code_version="2",
    check_specs=[
        AssetCheckSpec(
            FLOORS_CHECK,
            asset="evaluation_report",
            blocking=True,
            description="The fine-tuned model meets every metric floor of the run config; else nothing is registered.",
        )
    ],
)
def evaluation_report(
    finetuned_adapter: TrainedAdapter,
    dataset_version: DatasetVersion,
    config: EvaluationConfig,
    workspace: WorkspaceResource,
    mlflow: MlflowResource,
):
    """The fine-tuned and the untrained model, generated and scored on the test split with
    the task's metrics; the reports, predictions and pictures are logged to the MLflow run."""
    layout, result = workspace.layout, finetuned_adapter.result
    finetuned = evaluate(result.base_model, dataset_version.path, adapter_dir=result.adapter_dir)
    untrained = evaluate(result.base_model, dataset_version.path)
    client, run_id = mlflow.client(layout), finetuned_adapter.mlflow_run_id
    reports_dir = result.adapter_dir.parent / "evaluation"
    write_pictures(finetuned, dataset_version.path, reports_dir / FINETUNED)
    log_evaluation(client, run_id, finetuned, reports_dir / FINETUNED, label=FINETUNED)
    log_evaluation(client, run_id, untrained, reports_dir / UNTRAINED, label=UNTRAINED)
    metric = finetuned.primary_metric
    yield Output(
        Evaluation(finetuned, untrained),
        metadata={
            metric: finetuned.primary_value,
            f"untrained {metric}": untrained.primary_value,
            "examples": len(finetuned.predictions),
            "dataset_hash": dataset_version.hash,
            "preview": _preview(finetuned),
            "report": MetadataValue.path(str(reports_dir / FINETUNED)),
        },
    )
    failures = finetuned.floor_failures(dict(config.floors))
    yield AssetCheckResult(
        check_name=FLOORS_CHECK,
        passed=not failures,
        metadata={
            "floors": MetadataValue.json(dict(config.floors)),
            "failures": MetadataValue.text("\n".join(failures) or "none"),
            metric: finetuned.primary_value,
        },
    )
