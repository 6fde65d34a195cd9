"""Scoring the ``segment`` task: mask mIoU as big_vision computes it, and COCO mask AP.

A record holds the ``prediction`` text, the target objects ``masks`` (``[{"box", "label",
"mask": COCO RLE}, ...]``, as an example stores them) and ``width`` + ``height`` (or
``image_size``). The predicted objects are parsed from the text (``data.seg_tokens``:
objects without 16 codes, inverted boxes and repeats dropped), their masks decoded by the
mask codec and pasted into their boxes, as big_vision's segmentation evaluator does; an
object whose box has no area (``y0 == y1``) holds no mask and is dropped too.

- ``miou`` (primary; per example the score): the IoU of the predicted mask with the target
  mask, averaged over examples, an example without a valid predicted object scoring 0
  (big_vision's ``Evaluator.run``). Where an example has several objects, the predicted
  mask is the union of the predicted objects' masks and the target the union of the target
  masks; with one object each this is big_vision's rule exactly.
- ``invalid``: examples without any valid predicted object (big_vision counts them too).
- ``segm_map``, ``segm_ap50``, ``segm_ap75``, ``segm_ar``: COCO mask AP/AR over the objects
  with their labels (``evaluation.segm_map``).

The codes mean masks only under the codec that made them: scoring examples of a dataset
checks the dataset's recorded codec against the codec in force and refuses another
(``data.segment_target.require_dataset_codec``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from data.loc_tokens import malformed_locations
from data.masks import decode_mask, encode_rle
from data.schema import MANIFEST_FILE, DataError, Example
from data.segment_target import current_codec, parse_segments, require_dataset_codec
from data.tasks import Task
from evaluation.scoring_types import Record, ScoreResult, Where, image_size


@lru_cache(maxsize=16)
def _require_codec_once(manifest: Path, modified_ns: int, codec_sha256: str) -> None:
    """The manifest's codec check, read once per dataset and codec in force (and again if the
    manifest changes), not once per example."""
    require_dataset_codec(manifest)


def segment_targets(root: Path, example: Example) -> Record:
    """The image size and target objects of ``example``, once the codec is the dataset's."""
    manifest = Path(root) / MANIFEST_FILE
    _require_codec_once(manifest, manifest.stat().st_mtime_ns, current_codec().identity.sha256)
    with Image.open(Path(root) / example.image) as image:
        width, height = image.size
    return {"width": width, "height": height, "masks": example.masks}


def _target_objects(record: Record, where: Where, index: int, width: int, height: int) -> list[tuple[Any, str]]:
    """``(full-size mask, label)`` of each target object of one record."""
    objects = record.get("masks")
    if not isinstance(objects, list) or not objects:
        raise where.error(index, "masks", 'expected [{"box": [x0, y0, x1, y1], "label": ..., "mask": COCO RLE}, ...]')
    found = []
    for j, value in enumerate(objects):
        if not isinstance(value, dict) or not isinstance(value.get("label"), str) or "mask" not in value:
            raise where.error(index, f"masks[{j}]", 'expected {"box": [x0, y0, x1, y1], "label": ..., "mask": ...}')
        try:
            found.append((decode_mask(value["mask"], height, width), value["label"].strip()))
        except ValueError as err:
            raise where.error(index, f"masks[{j}].mask", str(err)) from None
    return found


def _iou(predicted: np.ndarray | None, target: np.ndarray) -> float:
    if predicted is None:
        return 0.0
    inter = int((predicted & target).sum())
    union = int(predicted.sum()) + int(target.sum()) - inter
    return inter / union if union else 0.0


def _predicted_objects(task: Task, record: Record, where: Where, index: int, size: tuple[int, int]) -> tuple[list, int]:
    """``(full-size mask, label)`` of each valid predicted object, and how many were dropped."""
    if "_line" in record and (malformed := malformed_locations(record["prediction"])):
        shown = ", ".join(malformed[:3])
        raise where.error(index, "prediction", f"malformed location token(s) {shown}: expected <loc0000>..<loc1023>")
    objects, dropped = parse_segments(record["prediction"], *size)
    empty = [o for o in objects if not (o.x0 < o.x1 and o.y0 < o.y1)]  # a box of no area holds no mask
    codec = current_codec()
    masks = [(codec.codes_to_mask(o.codes, (o.x0, o.y0, o.x1, o.y1), size), o.label) for o in objects if o not in empty]
    return masks, dropped + len(empty)


def score_segments(task: Task, records: Sequence[Record], where: Where) -> ScoreResult:
    """``miou`` first, then ``invalid`` and COCO mask AP/AR; see the module doc."""
    from evaluation.segm_map import mask_metrics

    ious, invalid, dropped = [], 0, 0
    coco_predictions, coco_targets, sizes = [], [], []
    for i, record in enumerate(records):
        size = image_size(record, where, i)
        targets = _target_objects(record, where, i, size.width, size.height)
        predicted, lost = _predicted_objects(task, record, where, i, (size.width, size.height))
        dropped += lost
        invalid += not predicted
        union = np.logical_or.reduce([m for m, _ in predicted]) if predicted else None
        ious.append(_iou(union, np.logical_or.reduce([m for m, _ in targets])))
        coco_predictions.append([(encode_rle(m), label) for m, label in predicted])
        coco_targets.append([(encode_rle(m), label) for m, label in targets])
        sizes.append((size.width, size.height))
    if not records:
        raise DataError(where.file, None, "masks", "no records to score")
    coco = mask_metrics(coco_predictions, coco_targets, sizes)
    metrics = {
        "miou": float(np.mean(ious)),
        "invalid": float(invalid),
        "segm_map": coco.map,
        "segm_ap50": coco.ap50,
        "segm_ap75": coco.ap75,
        "segm_ar": coco.ar,
    }
    details = {
        "dropped_objects": dropped,
        "unknown_labels": coco.unknown_labels,
        "codec": current_codec().identity.name,
    }
    return ScoreResult(task.name, metrics, ious, details)
