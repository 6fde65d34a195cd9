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
- ``box_acc50``: box accuracy at IoU 0.5, big_vision's ``boxacc/0.5``: per example, 1 when
  the IoU of the first predicted object's box with the target box is at least 0.5 (``>=``),
  else 0, averaged over examples; an invalid output scores 0, and labels are not compared
  (big_vision's refcoco prompt is a referring expression). Its IoU is taken in normalised
  coordinates, which scale both axes uniformly and so give the pixel IoU computed here.
  Where an example has several target objects, each is matched in turn to the unused
  predicted object of its label with the highest box IoU, and the example scores the
  fraction matched at 0.5 or more; with one object each this is big_vision's rule exactly.
  (Named ``box_acc50``, not ``boxacc/0.5``: a metric's key is ``task/split/name``.)
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
from evaluation.boxes import box_iou
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


def _target_objects(record: Record, where: Where, index: int, width: int, height: int) -> list[tuple[Any, str, Any]]:
    """``(full-size mask, label, box)`` of each target object of one record."""
    objects = record.get("masks")
    if not isinstance(objects, list) or not objects:
        raise where.error(index, "masks", 'expected [{"box": [x0, y0, x1, y1], "label": ..., "mask": COCO RLE}, ...]')
    found = []
    for j, value in enumerate(objects):
        box = value.get("box") if isinstance(value, dict) else None
        if (
            not isinstance(value, dict)
            or not isinstance(value.get("label"), str)
            or "mask" not in value
            or not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, int | float) for v in box))
        ):
            raise where.error(index, f"masks[{j}]", 'expected {"box": [x0, y0, x1, y1], "label": ..., "mask": ...}')
        try:
            found.append((decode_mask(value["mask"], height, width), value["label"].strip(), [float(v) for v in box]))
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
    """``(full-size mask, label, box)`` of each valid predicted object, in output order, and how
    many were dropped."""
    if "_line" in record and (malformed := malformed_locations(record["prediction"])):
        shown = ", ".join(malformed[:3])
        raise where.error(index, "prediction", f"malformed location token(s) {shown}: expected <loc0000>..<loc1023>")
    objects, dropped = parse_segments(record["prediction"], *size)
    empty = [o for o in objects if not (o.x0 < o.x1 and o.y0 < o.y1)]  # a box of no area holds no mask
    codec = current_codec()
    masks = [
        (codec.codes_to_mask(o.codes, box, size), o.label, box)
        for o in objects
        if o not in empty
        for box in [(o.x0, o.y0, o.x1, o.y1)]
    ]
    return masks, dropped + len(empty)


BOX_IOU = 0.5  # big_vision's first detection threshold (``det_ious=(0.5, 0.75)``)


def box_hits(predicted: Sequence[tuple[Sequence[float], str]], targets: Sequence[tuple[Sequence[float], str]]) -> float:
    """One example's box accuracy at ``BOX_IOU`` (see the module doc): ``predicted`` and
    ``targets`` are ``(box, label)`` pairs, the predictions in output order."""
    if not targets or not predicted:
        return 0.0
    if len(targets) == 1:
        return float(box_iou(predicted[0][0], targets[0][0]) >= BOX_IOU)
    unused, hits = list(predicted), 0
    for box, label in targets:
        candidates = [(box_iou(p, box), k) for k, (p, lab) in enumerate(unused) if lab == label]
        if candidates:
            best, k = max(candidates)
            if best >= BOX_IOU:
                hits += 1
                unused.pop(k)
    return hits / len(targets)


def score_segments(task: Task, records: Sequence[Record], where: Where) -> ScoreResult:
    """``miou`` first, then ``invalid`` and COCO mask AP/AR; see the module doc."""
    from evaluation.segm_map import mask_metrics

    ious, boxes, invalid, dropped = [], [], 0, 0
    coco_predictions, coco_targets, sizes = [], [], []
    for i, record in enumerate(records):
        size = image_size(record, where, i)
        targets = _target_objects(record, where, i, size.width, size.height)
        predicted, lost = _predicted_objects(task, record, where, i, (size.width, size.height))
        dropped += lost
        invalid += not predicted
        union = np.logical_or.reduce([m for m, _, _ in predicted]) if predicted else None
        ious.append(_iou(union, np.logical_or.reduce([m for m, _, _ in targets])))
        boxes.append(box_hits([(b, label) for _, label, b in predicted], [(b, label) for _, label, b in targets]))
        coco_predictions.append([(encode_rle(m), label) for m, label, _ in predicted])
        coco_targets.append([(encode_rle(m), label) for m, label, _ in targets])
        sizes.append((size.width, size.height))
    if not records:
        raise DataError(where.file, None, "masks", "no records to score")
    coco = mask_metrics(coco_predictions, coco_targets, sizes)
    metrics = {
        "miou": float(np.mean(ious)),
        "invalid": float(invalid),
        "box_acc50": float(np.mean(boxes)),
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
