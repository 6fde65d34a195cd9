"""What every scorer shares: the result type, where records came from, the scorer type and
the image size a record states."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data.schema import DataError, Example
from data.tasks import ImageSize, Task

Record = dict[str, Any]


@dataclass
class ScoreResult:
    """Aggregate metrics (primary first) and one score per example, in input order."""

    task: str
    metrics: dict[str, float]
    scores: list[float]
    details: dict[str, Any] = field(default_factory=dict)  # per-class AP, caption tokenizer, VQA rule counts, ...

    @property
    def primary_metric(self) -> str:
        return next(iter(self.metrics))


@dataclass
class Where:
    """Where records came from, so that an error names the file, the line and the field."""

    source: Path | None
    records: Sequence[Record]

    @property
    def file(self) -> Path:
        return self.source or Path("<predictions>")

    def error(self, index: int, field_name: str, message: str) -> DataError:
        return DataError(self.file, self.records[index].get("_line", index + 1), field_name, message)


def no_targets(root: Path, example: Example) -> Record:
    return {}


@dataclass(frozen=True)
class Scorer:
    """How one metric scores records.

    Attributes:
        score: ``(task, records, where) -> ScoreResult``; raises ``DataError`` for a record
            whose metric cannot be computed.
        targets: ``(dataset root, example) -> fields`` the scorer reads beyond ``prediction``
            and ``answers``.
    """

    score: Callable[[Task, Sequence[Record], Where], ScoreResult]
    targets: Callable[[Path, Example], Record] = no_targets


def image_size(record: Record, where: Where, index: int) -> ImageSize:
    if "image_size" in record:  # [width, height]
        size = record["image_size"]
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            raise where.error(index, "image_size", "expected [width, height] in pixels, positive integers")
        return ImageSize(size[0], size[1])
    for name in ("width", "height"):
        if not isinstance(record.get(name), int) or record[name] <= 0:
            raise where.error(index, name, "missing or not a positive integer (the image size in pixels)")
    return ImageSize(record["width"], record["height"])
