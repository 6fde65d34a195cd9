"""Evaluation stage: the fine-tuned and the untrained model scored on the test split."""

from dataclasses import dataclass
from pathlib import Path

from dagster import AssetCheckResult, AssetCheckSpec, AssetExecutionContext, Config, MaterializeResult, MetadataValue

from evaluation.pictures import write_pictures
from evaluation.report import EvaluationReport
from evaluation.run import evaluate
from orchestration.defs.dataset_assets import dataset_version, read_dataset_version
from orchestration.defs.partitions import task_asset
from orchestration.defs.resources import MlflowResource, WorkspaceResource
from orchestration.defs.training_assets import finetuned_adapter, read_finetuned_adapter
from orchestration.defs.upstream import upstream_metadata
from registry.tracking import FINETUNED, UNTRAINED, log_evaluation

FLOORS_CHECK = "metric_floors"


@dataclass(frozen=True)
class Evaluation:
    """Both reports of ``evaluation_report``, as it wrote them to disk."""

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
    code_version="3",
    deps=[finetuned_adapter, dataset_version],
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
    context: AssetExecutionContext, config: EvaluationConfig, workspace: WorkspaceResource, mlflow: MlflowResource
) -> MaterializeResult:
    """The fine-tuned and the untrained model, generated and scored on the test split with
    the task's metrics; the reports, predictions and pictures are logged to the MLflow run."""
    layout, result, version = workspace.layout, read_finetuned_adapter(context), read_dataset_version(context)
    finetuned = evaluate(result.base_model, version.path, adapter_dir=result.adapter_dir)
    untrained = evaluate(result.base_model, version.path)
    client, run_id = mlflow.client(layout), result.mlflow_run_id
    reports_dir = result.adapter_dir.parent / "evaluation"
    write_pictures(finetuned, version.path, reports_dir / FINETUNED)
    log_evaluation(client, run_id, finetuned, reports_dir / FINETUNED, label=FINETUNED, dataset_dir=version.path)
    log_evaluation(client, run_id, untrained, reports_dir / UNTRAINED, label=UNTRAINED, dataset_dir=version.path)
    metric = finetuned.primary_metric
    failures = finetuned.floor_failures(dict(config.floors))
    floors = AssetCheckResult(
        check_name=FLOORS_CHECK,
        passed=not failures,
        metadata={
            "floors": MetadataValue.json(dict(config.floors)),
            "failures": MetadataValue.text("\n".join(failures) or "none"),
            metric: finetuned.primary_value,
        },
    )
    return MaterializeResult(
        metadata={
            metric: finetuned.primary_value,
            f"untrained {metric}": untrained.primary_value,
            "examples": len(finetuned.predictions),
            "dataset_hash": version.hash,
            "preview": _preview(finetuned),
            "report": MetadataValue.path(str(reports_dir / FINETUNED)),
            "untrained_report": MetadataValue.path(str(reports_dir / UNTRAINED)),
        },
        check_results=[floors],
    )


def read_evaluation(context: AssetExecutionContext) -> Evaluation:
    """Both reports the partition's ``evaluation_report`` last wrote, read back from their folders."""
    recorded = upstream_metadata(context, "evaluation_report")
    return Evaluation(
        finetuned=EvaluationReport.read(Path(recorded["report"])),
        untrained=EvaluationReport.read(Path(recorded["untrained_report"])),
    )
