"""Score predictions of any model with the task's official metrics.

One record per example: the generated ``prediction`` text and the task's targets. This is
what ``palitune evaluate score`` reads (one JSON object per line), so outputs of any model or
API can be scored the way palitune scores its own:

| task | targets | metrics (the first is the task's primary metric) |
|---|---|---|
| vqa | ``answers`` (or ``answer``) | vqa_accuracy |
| docvqa | ``answers`` | anls |
| chartqa | ``answer`` or ``answers`` | relaxed_accuracy |
| ocr | ``answer`` or ``answers`` | ocr_exact_match, cer (against the first answer) |
| extract | ``fields`` (an object) or ``answers`` (its JSON) | field_f1, precision, recall, json_validity |
| caption | ``references`` or ``answers`` | cider, bleu4, rouge_l, meteor (with java) |
| detect | ``boxes`` ([[x0, y0, x1, y1, label], ...], pixels), ``width`` + ``height`` | coco_map, ap50, ap75, ar |

VQA accuracy follows the official evaluator on examples with ten or more answers and exact
match on fewer (``evaluation.vqa_metrics``); ``details["vqa_rule_counts"]`` says how many
examples each rule scored. ChartQA relaxed accuracy is pix2struct's, whitespace included.

Nothing is scored 0 for want of a definition: a record whose metric cannot be computed (no
answers, an empty OCR reference, an extraction target without fields, an inverted box, a
single caption for CIDEr-D, no ground-truth box at all) raises ``DataError`` with its file,
line and field. A 0 is a wrong answer.

Detection also takes the image size as ``image_size: [width, height]``. Per-example scores
are those of the primary metric, except for detection, where COCO AP is
defined over a set of images only: there each example scores the F1 of its boxes at IoU 0.5
(label and box both right), a number a person can sort by.

Each task's metric names its scorer in ``evaluation.scorers``, which also says what targets
of an example the scorer reads (``example_record``).

A detection prediction read from a file (``read_predictions``) may hold only location tokens
PaliGemma can emit (``<loc0000>`` to ``<loc1023>``): ``<loc12>`` or ``<loc2000>`` is a
converter's bug and is refused with its line. A model's own output is scored as it is, an
object that does not parse counting as a miss.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data.schema import DataError, Example
from data.tasks import get_task
from evaluation.metrics import character_error_rate
from evaluation.scorers import ScoreResult, Where, scorer_of


def read_predictions(path: Path) -> list[dict[str, Any]]:
    """Records of a predictions file, one JSON object per line (blank lines skipped).

    Raises:
        DataError: naming the file and line of text that is not UTF-8, invalid JSON, a line
            that is not an object, or a missing or non-text ``prediction``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, None, "predictions file not found")
    records = []
    # split on newlines only (str.splitlines also breaks at U+2028, which JSON strings may hold);
    # a newline byte never occurs inside a UTF-8 character, so each line decodes on its own
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(path, number, None, f"not UTF-8 ({err.reason} at byte {err.start})") from None
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(path, number, None, f"invalid JSON: {err.msg} (column {err.colno})") from None
        if not isinstance(record, dict):
            raise DataError(path, number, None, "expected a JSON object")
        if not isinstance(record.get("prediction"), str):
            raise DataError(path, number, "prediction", "missing or not a string")
        record["_line"] = number
        records.append(record)
    if not records:
        raise DataError(path, None, None, "no predictions")
    return records


def example_record(root: Path, example: Example, output: str) -> dict[str, Any]:
    """What ``score_records`` needs of one example: the output and the example's targets."""
    record: dict[str, Any] = {"prediction": output, "answers": example.answers or [example.suffix]}
    record.update(scorer_of(get_task(example.task)).targets(Path(root), example))
    return record


def score_records(task_name: str, records: Sequence[dict[str, Any]], *, source: Path | None = None) -> ScoreResult:
    """Score ``records`` (``prediction`` plus the task's targets) with ``task_name``'s metrics.

    Raises:
        DataError: no records, or a record lacks its task's targets or its metric cannot be
            computed for it; names ``source``, the line and field.
        KeyError: unknown task.
    """
    task = get_task(task_name)
    where = Where(source, records)
    if not records:
        raise DataError(where.file, None, None, "no predictions to score")
    return scorer_of(task).score(task, records, where)


__all__ = ["ScoreResult", "character_error_rate", "example_record", "read_predictions", "score_records"]
