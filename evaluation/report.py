"""Evaluation reports: aggregate metrics plus one scored prediction per example."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPORT_FILE = "report.json"
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.jsonl"
# The pictures ``evaluation.pictures`` draws into a report's folder: the example grid, box
# overlays (a boxes target) and mask overlays (a masks target). ``report.json`` lists those
# present, so a reader of the report (or of its MLflow artifacts) knows which to open.
EXAMPLES_PICTURE, DETECTIONS_PICTURE, MASKS_PICTURE = "examples.png", "detections.png", "masks.png"
PICTURE_FILES = (EXAMPLES_PICTURE, DETECTIONS_PICTURE, MASKS_PICTURE)


@dataclass
class ScoredPrediction:
    id: str
    prefix: str
    prediction: str
    answers: list[str]
    score: float
    tags: dict[str, str] = field(default_factory=dict)  # slices of the data: {"source": "scan"}, ...


@dataclass
class EvaluationReport:
    """What one model scored on one split of one dataset version."""

    task: str
    split: str
    model: str  # what was evaluated: a base reference, or base + adapter folder
    dataset_hash: str | None
    metrics: dict[str, float]  # named task/split/metric, e.g. "vqa/test/vqa_accuracy"
    predictions: list[ScoredPrediction] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # non-numeric results: per-class AP, tokenizer, ...

    @property
    def primary_metric(self) -> str:
        return next(iter(self.metrics))

    @property
    def primary_value(self) -> float:
        return self.metrics[self.primary_metric]

    def floor_failures(self, floors: dict[str, float]) -> list[str]:
        """Each absolute floor (``{"vqa_accuracy": 0.5}``) the metrics miss; a floor names a
        metric by the last part of its key (``vqa/test/vqa_accuracy``)."""
        failures = []
        for name, floor in sorted(floors.items()):
            values = [v for key, v in self.metrics.items() if key.rsplit("/", 1)[-1] == name]
            if not values:
                known = ", ".join(sorted(self.metrics))
                failures.append(f"floor {name}: the report has no such metric (it has {known})")
            elif values[0] < floor:
                failures.append(f"floor {name}: {values[0]:.4f} < {floor}")
        return failures

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("predictions")
        return {**data, "examples": len(self.predictions)}

    def write(self, folder: Path) -> Path:
        """Write ``report.json`` (summary, and the ``pictures`` already drawn in ``folder``),
        ``metrics.json`` and ``predictions.jsonl`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        pictures = [name for name in PICTURE_FILES if (folder / name).is_file()]
        summary = {**self.summary(), "pictures": pictures}
        (folder / REPORT_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        (folder / METRICS_FILE).write_text(json.dumps(self.metrics, indent=2) + "\n")
        lines = (json.dumps(asdict(p), ensure_ascii=False) + "\n" for p in self.predictions)
        (folder / PREDICTIONS_FILE).write_text("".join(lines), encoding="utf-8")
        return folder

    @classmethod
    def read(cls, folder: Path) -> EvaluationReport:
        folder = Path(folder)
        summary = json.loads((folder / REPORT_FILE).read_text())
        summary.pop("examples", None)
        summary.pop("pictures", None)
        lines = (folder / PREDICTIONS_FILE).read_text(encoding="utf-8").splitlines()
        predictions = [ScoredPrediction(**json.loads(line)) for line in lines if line.strip()]
        return cls(**summary, predictions=predictions)
