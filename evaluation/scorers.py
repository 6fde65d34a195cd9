"""One scorer per metric name of the task table (``Task.metric``): records in, a ``ScoreResult`` out.

A scorer says which targets of an example it reads (``Scorer.targets``, what
``evaluation.score.example_record`` adds beside the prediction and the answers) and how it
scores a set of records (``Scorer.score``). ``evaluation.score`` documents the record format
and each task's metrics; the metrics themselves live in ``evaluation.metrics``,
``evaluation.vqa_metrics``, ``evaluation.coco_metrics`` and ``evaluation.boxes``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from data.loc_tokens import malformed_locations
from data.schema import DataError, Example
from data.tasks import OutputParseError, Task
from evaluation.boxes import box_f1
from evaluation.metrics import METRICS, corpus_cer, counts_f1, extraction_counts, field_prf
from evaluation.scoring_types import Record, Scorer, ScoreResult, Where, image_size
from evaluation.segment_scoring import score_segments, segment_targets
from evaluation.vqa_metrics import vqa_rule_counts


def _answers_field(record: Record) -> str:
    return "answers" if "answers" in record else "answer"


def _answers(record: Record, where: Where, index: int) -> list[str]:
    for name in ("answers", "answer"):
        if name in record:
            value = record[name]
            values = value if isinstance(value, list) else [value]
            if not values or not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in values):
                raise where.error(index, name, "expected a non-empty text or list of texts")
            return [str(v) for v in values]
    raise where.error(index, "answers", "missing (the accepted answers: 'answers' or 'answer')")


def _mean(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("no scores to average")
    return sum(values) / len(values)


def _score_answers(task: Task, records: Sequence[Record], where: Where) -> tuple[ScoreResult, list[list[str]]]:
    """The task's per-example answer metric (``evaluation.metrics.METRICS``), and the answers read."""
    answers = [_answers(record, where, i) for i, record in enumerate(records)]
    metric = METRICS[task.metric]
    scores = []
    for i, (record, accepted) in enumerate(zip(records, answers, strict=True)):
        try:
            scores.append(metric(record["prediction"], accepted))
        except ValueError as err:
            raise where.error(i, _answers_field(record), str(err)) from None
    return ScoreResult(task.name, {task.metric: _mean(scores)}, scores, {}), answers


def _score_answer_metric(task: Task, records: Sequence[Record], where: Where) -> ScoreResult:
    return _score_answers(task, records, where)[0]


def _score_vqa(task: Task, records: Sequence[Record], where: Where) -> ScoreResult:
    result, answers = _score_answers(task, records, where)
    result.details["vqa_rule_counts"] = vqa_rule_counts(answers)
    return result


def _score_ocr(task: Task, records: Sequence[Record], where: Where) -> ScoreResult:
    """Exact match per example, and the corpus CER against each record's first answer."""
    result, answers = _score_answers(task, records, where)
    if empty := [i for i, accepted in enumerate(answers) if not accepted[0]]:
        message = "empty reference: its CER is undefined (no characters to divide by)"
        raise where.error(empty[0], _answers_field(records[empty[0]]), message)
    result.metrics["cer"] = corpus_cer([r["prediction"].strip() for r in records], [a[0] for a in answers])
    return result


def _extraction_targets(root: Path, example: Example) -> Record:
    return {"fields": example.fields} if example.fields else {}


def _score_extraction(task: Task, records: Sequence[Record], where: Where) -> ScoreResult:
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
    return ScoreResult(task.name, {**metrics, "json_validity": prf["json_validity"]}, scores)


def _caption_targets(root: Path, example: Example) -> Record:
    return {"references": example.answers or [example.suffix]}


def _score_captions(task: Task, records: Sequence[Record], where: Where) -> ScoreResult:
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
    return ScoreResult(task.name, metrics, [result.per_example_cider[k] for k in keys], details)


def _detection_targets(root: Path, example: Example) -> Record:
    with Image.open(Path(root) / example.image) as image:
        width, height = image.size
    return {"width": width, "height": height, "boxes": [list(box) for box in example.boxes]}


def _score_detection(task: Task, records: Sequence[Record], where: Where) -> ScoreResult:
    from evaluation.coco_metrics import detection_metrics

    predictions, targets, sizes, unparsed = [], [], [], 0
    for i, record in enumerate(records):
        size = image_size(record, where, i)
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
    per_example = [box_f1(p, t) for p, t in zip(predictions, targets, strict=True)]
    metrics = {"coco_map": scores.map, "ap50": scores.ap50, "ap75": scores.ap75, "ar": scores.ar}
    details = {"per_class_ap": scores.per_class_ap, "unknown_labels": scores.unknown_labels, "unparsed": unparsed}
    return ScoreResult(task.name, metrics, per_example, details)


def _target_boxes(record: Record, where: Where, index: int) -> list[Any]:
    boxes = record.get("boxes")
    if not isinstance(boxes, list) or not all(isinstance(b, list) and len(b) == 5 for b in boxes):
        raise where.error(index, "boxes", "expected [[x0, y0, x1, y1, label], ...] in pixels")
    for box in boxes:
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box[:4]):
            raise where.error(index, "boxes", f"box {box}: expected [[x0, y0, x1, y1, label], ...] in pixels")
        if box[2] < box[0] or box[3] < box[1]:
            raise where.error(index, "boxes", f"inverted box {box}: expected x0 <= x1 and y0 <= y1")
    return boxes


SCORERS: dict[str, Scorer] = {  # by the task table's metric names
    "vqa_accuracy": Scorer(_score_vqa),
    "anls": Scorer(_score_answer_metric),
    "relaxed_accuracy": Scorer(_score_answer_metric),
    "ocr_exact_match": Scorer(_score_ocr),
    "field_f1": Scorer(_score_extraction, _extraction_targets),
    "cider": Scorer(_score_captions, _caption_targets),
    "coco_map": Scorer(_score_detection, _detection_targets),
    "miou": Scorer(score_segments, segment_targets),
}


def scorer_of(task: Task) -> Scorer:
    """The scorer of ``task``'s metric.

    Raises:
        KeyError: the task table names a metric no scorer has; the message lists those there are.
    """
    try:
        return SCORERS[task.metric]
    except KeyError:
        raise KeyError(
            f"task {task.name!r}: no scorer for metric {task.metric!r}; there are: {', '.join(SCORERS)}"
        ) from None


__all__ = ["SCORERS", "ScoreResult", "Scorer", "Where", "scorer_of"]
