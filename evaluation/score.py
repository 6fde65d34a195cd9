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

A detection prediction read from a file (``read_predictions``) may hold only location tokens
PaliGemma can emit (``<loc0000>`` to ``<loc1023>``): ``<loc12>`` or ``<loc2000>`` is a
converter's bug and is refused with its line. A model's own output is scored as it is, an
object that does not parse counting as a miss.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from data.loc_tokens import malformed_locations
from data.schema import DataError, Example
from data.tasks import ImageSize, OutputParseError, get_task
from evaluation.metrics import (
    METRICS,
    character_error_rate,
    corpus_cer,
    counts_f1,
    extraction_counts,
    field_prf,
)
from evaluation.vqa_metrics import vqa_rule_counts


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
    if example.task == "caption":
        record["references"] = record["answers"]
    if example.task == "extract" and example.fields:
        record["fields"] = example.fields
    if example.task == "detect":
        with Image.open(Path(root) / example.image) as image:
            record["width"], record["height"] = image.size
        record["boxes"] = [list(box) for box in example.boxes]
    return record


def score_records(task_name: str, records: Sequence[dict[str, Any]], *, source: Path | None = None) -> ScoreResult:
    """Score ``records`` (``prediction`` plus the task's targets) with ``task_name``'s metrics.

    Raises:
        DataError: no records, or a record lacks its task's targets or its metric cannot be
            computed for it; names ``source``, the line and field.
        KeyError: unknown task.
    """
    task = get_task(task_name)
    where = _Where(source, records)
    if not records:
        raise DataError(where.file, None, None, "no predictions to score")
    if task.name == "detect":
        return _score_detection(records, where)
    if task.name == "caption":
        return _score_captions(records, where)
    if task.name == "extract":
        return _score_extraction(records, where)
    answers = [_answers(record, where, i) for i, record in enumerate(records)]
    metric = METRICS[task.metric]
    scores = []
    for i, (record, accepted) in enumerate(zip(records, answers, strict=True)):
        try:
            scores.append(metric(record["prediction"], accepted))
        except ValueError as err:
            raise where.error(i, _answers_field(record), str(err)) from None
    metrics = {task.metric: _mean(scores)}
    details: dict[str, Any] = {}
    if task.metric == "vqa_accuracy":
        details["vqa_rule_counts"] = vqa_rule_counts(answers)
    if task.name == "ocr":
        if empty := [i for i, accepted in enumerate(answers) if not accepted[0]]:
            message = "empty reference: its CER is undefined (no characters to divide by)"
            raise where.error(empty[0], _answers_field(records[empty[0]]), message)
        metrics["cer"] = corpus_cer([r["prediction"].strip() for r in records], [a[0] for a in answers])
    return ScoreResult(task.name, metrics, scores, details)


@dataclass
class _Where:
    source: Path | None
    records: Sequence[dict[str, Any]]

    @property
    def file(self) -> Path:
        return self.source or Path("<predictions>")

    def error(self, index: int, field_name: str, message: str) -> DataError:
        return DataError(self.file, self.records[index].get("_line", index + 1), field_name, message)


def _answers_field(record: dict[str, Any]) -> str:
    return "answers" if "answers" in record else "answer"


def _answers(record: dict[str, Any], where: _Where, index: int) -> list[str]:
    for name in ("answers", "answer"):
        if name in record:
            value = record[name]
            values = value if isinstance(value, list) else [value]
            if not values or not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in values):
                raise where.error(index, name, "expected a non-empty text or list of texts")
            return [str(v) for v in values]
    raise where.error(index, "answers", "missing (the accepted answers: 'answers' or 'answer')")


def _score_extraction(records: Sequence[dict[str, Any]], where: _Where) -> ScoreResult:
    counts = []
    for i, record in enumerate(records):
        if isinstance(record.get("fields"), dict):
            target = json.dumps(record["fields"], sort_keys=True, ensure_ascii=False)
        else:
            target = _answers(record, where, i)[0]
        try:
            counts.append(extraction_counts(record["prediction"], target))
        except ValueError as err:
            raise where.error(i, "fields", str(err)) from None
    scores = [counts_f1(c) for c in counts]
    prf = field_prf(counts)
    metrics = {"field_f1": prf["f1"], "precision": prf["precision"], "recall": prf["recall"]}
    return ScoreResult("extract", {**metrics, "json_validity": prf["json_validity"]}, scores)


def _score_captions(records: Sequence[dict[str, Any]], where: _Where) -> ScoreResult:
    from evaluation.coco_metrics import caption_metrics

    if len(records) < 2:  # IDF over one image is log(1/1) = 0 for every n-gram: CIDEr-D is 0 whatever the caption
        raise DataError(where.file, None, "references", "CIDEr-D needs the captions of at least two images, got one")
    keys = [str(i) for i in range(len(records))]
    references = {}
    for i, record in enumerate(records):
        name = "references" if "references" in record else "answers"
        refs = record[name] if name == "references" else _answers(record, where, i)
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) and r.strip() for r in refs):
            raise where.error(i, name, "expected a non-empty list of non-empty captions")
        references[keys[i]] = refs
    result = caption_metrics({k: r["prediction"] for k, r in zip(keys, records, strict=True)}, references)
    metrics = {"cider": result.cider, "bleu4": result.bleu4, "rouge_l": result.rouge_l}
    if result.meteor is not None:
        metrics["meteor"] = result.meteor
    details = {"tokenizer": result.tokenizer, "meteor_skipped": result.meteor_skipped}
    return ScoreResult("caption", metrics, [result.per_example_cider[k] for k in keys], details)


def _score_detection(records: Sequence[dict[str, Any]], where: _Where) -> ScoreResult:
    from evaluation.coco_metrics import detection_metrics

    task = get_task("detect")
    predictions, targets, sizes, unparsed = [], [], [], 0
    for i, record in enumerate(records):
        size = _image_size(record, where, i)
        boxes = _target_boxes(record, where, i)
        malformed = malformed_locations(record["prediction"]) if "_line" in record else []
        if malformed:  # a file of predictions: text a PaliGemma could not have generated
            shown = ", ".join(malformed[:3])
            raise where.error(i, "prediction", f"malformed location token(s) {shown}: expected <loc0000>..<loc1023>")
        try:
            predicted = task.parse_output(record["prediction"], size)
        except OutputParseError:
            predicted, unparsed = [], unparsed + 1
        predictions.append([tuple(p) for p in predicted])
        targets.append([tuple(b) for b in boxes])
        sizes.append((size.width, size.height))
    if not any(targets):
        raise DataError(where.file, None, "boxes", "no ground-truth box in any record: COCO AP is undefined")
    scores = detection_metrics(predictions, targets, sizes)
    per_example = [_box_f1(p, t) for p, t in zip(predictions, targets, strict=True)]
    metrics = {"coco_map": scores.map, "ap50": scores.ap50, "ap75": scores.ap75, "ar": scores.ar}
    details = {"per_class_ap": scores.per_class_ap, "unknown_labels": scores.unknown_labels, "unparsed": unparsed}
    return ScoreResult("detect", metrics, per_example, details)


def _target_boxes(record: dict[str, Any], where: _Where, index: int) -> list[Any]:
    boxes = record.get("boxes")
    if not isinstance(boxes, list) or not all(isinstance(b, list) and len(b) == 5 for b in boxes):
        raise where.error(index, "boxes", "expected [[x0, y0, x1, y1, label], ...] in pixels")
    for box in boxes:
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box[:4]):
            raise where.error(index, "boxes", f"box {box}: expected [[x0, y0, x1, y1, label], ...] in pixels")
        if box[2] < box[0] or box[3] < box[1]:
            raise where.error(index, "boxes", f"inverted box {box}: expected x0 <= x1 and y0 <= y1")
    return boxes


def _image_size(record: dict[str, Any], where: _Where, index: int) -> ImageSize:
    if "image_size" in record:  # [width, height]
        size = record["image_size"]
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            raise where.error(index, "image_size", "expected [width, height] in pixels, positive integers")
        return ImageSize(size[0], size[1])
    for name in ("width", "height"):
        if not isinstance(record.get(name), int) or record[name] <= 0:
            raise where.error(index, name, "missing or not a positive integer (the image size in pixels)")
    return ImageSize(record["width"], record["height"])


def _iou(a: Sequence[Any], b: Sequence[Any]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _box_f1(predicted: Sequence[Sequence[Any]], target: Sequence[Sequence[Any]]) -> float:
    """F1 of one image's boxes at IoU 0.5 with the right label, each target matched once.

    A sortable per-image number, not an official metric: an image without objects scores 1.0
    when nothing is predicted there (nothing to find, nothing wrongly found), else 0.0."""
    unmatched = list(target)
    hits = 0
    for box in predicted:
        match = next((t for t in unmatched if t[4] == box[4] and _iou(box, t) >= 0.5), None)
        if match is not None:
            unmatched.remove(match)
            hits += 1
    misses = len(predicted) - hits + len(target) - hits
    return 1.0 if hits + misses == 0 else 2 * hits / (2 * hits + misses)


def _mean(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("no scores to average")
    return sum(values) / len(values)


__all__ = ["ScoreResult", "character_error_rate", "example_record", "read_predictions", "score_records"]
