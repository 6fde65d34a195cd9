"""What the ``evaluate`` modules share: evaluate's columns as palitune records, and results back.

A module turns the ``predictions`` and ``references`` columns that ``evaluate`` hands its
``_compute`` into the records ``evaluation.score.score_records`` reads, and returns that
function's metrics unchanged. Nothing is scored here. Imports no ``evaluate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import datasets

from evaluation.score import ScoreResult


def answer_features() -> datasets.Features:
    """One generated text and its accepted answers (a list, even of one) per example."""
    return datasets.Features(
        {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
    )


def answer_records(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> list[dict[str, Any]]:
    """One ``{"prediction", "answers"}`` record per example, in input order.

    Raises:
        ValueError: when the two columns differ in length.
    """
    _same_length(predictions, references)
    return [{"prediction": p, "answers": list(a)} for p, a in zip(predictions, references, strict=True)]


def caption_records(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> list[dict[str, Any]]:
    """One ``{"prediction", "references"}`` record per image, in input order.

    Raises:
        ValueError: when the two columns differ in length.
    """
    _same_length(predictions, references)
    return [{"prediction": p, "references": list(r)} for p, r in zip(predictions, references, strict=True)]


def detection_features() -> datasets.Features:
    """PaliGemma's detection text per image, and that image's boxes (pixels), labels and size."""
    box = datasets.Sequence(datasets.Value("float64"), length=4)
    target = {
        "boxes": datasets.Sequence(box),
        "labels": datasets.Sequence(datasets.Value("string")),
        "width": datasets.Value("int64"),
        "height": datasets.Value("int64"),
    }
    return datasets.Features({"predictions": datasets.Value("string"), "references": target})


def detection_records(predictions: Sequence[str], references: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One ``{"prediction", "boxes", "width", "height"}`` record per image, boxes as
    ``[x0, y0, x1, y1, label]`` in pixels.

    Raises:
        ValueError: when the columns differ in length, or an image has more boxes than labels or
            fewer (named by its 1-based index).
    """
    _same_length(predictions, references)
    records = []
    for number, (prediction, target) in enumerate(zip(predictions, references, strict=True), start=1):
        boxes, labels = target["boxes"], target["labels"]
        if len(boxes) != len(labels):
            raise ValueError(f"reference {number}: {len(boxes)} boxes but {len(labels)} labels: expected one each")
        records.append(
            {
                "prediction": prediction,
                "boxes": [[*box, label] for box, label in zip(boxes, labels, strict=True)],
                "width": target["width"],
                "height": target["height"],
            }
        )
    return records


def metric_outputs(result: ScoreResult, *, return_details: bool) -> dict[str, Any]:
    """The metrics of ``result`` (primary first); with ``return_details``, also ``scores`` (one per
    example, in input order) and ``details`` (rule counts, per-class AP, tokenizer, ...)."""
    outputs: dict[str, Any] = dict(result.metrics)
    if return_details:
        outputs["scores"] = list(result.scores)
        outputs["details"] = dict(result.details)
    return outputs


def _same_length(predictions: Sequence[Any], references: Sequence[Any]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references: expected one each")


__all__ = [
    "answer_features",
    "answer_records",
    "caption_records",
    "detection_features",
    "detection_records",
    "metric_outputs",
]
