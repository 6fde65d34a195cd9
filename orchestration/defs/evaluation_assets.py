"""Evaluation stage: the fine-tuned and the untrained model scored on the test split."""

from dataclasses import dataclass

from dagster import MetadataValue, Output, asset

from data.versioning import DatasetVersion
from evaluation.pictures import write_pictures
from evaluation.report import EvaluationReport
from evaluation.run import evaluate
from orchestration.defs.resources import MlflowResource, WorkspaceResource
from orchestration.defs.training_assets import TrainedAdapter
from registry.tracking import log_evaluation


@dataclass(frozen=True)
class Evaluation:
    finetuned: EvaluationReport
    untrained: EvaluationReport


def _preview(report: EvaluationReport, rows: int = 8) -> MetadataValue:
    lines = ["| prompt | prediction | answer | score |", "|---|---|---|---|"]
    for p in report.predictions[:rows]:
        lines.append(f"| {p.prefix} | {p.prediction or '(empty)'} | {p.answers[0]} | {p.score:.2f} |")
    return MetadataValue.md("\n".join(lines))


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
    write_pictures(finetuned, dataset_version.path, reports_dir / "finetuned")
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
