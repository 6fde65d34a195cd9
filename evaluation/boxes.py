"""Box geometry that detection and segmentation scoring share: IoU and one image's box F1."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evaluation.metrics import f1_score

MATCH_IOU = 0.5  # the PASCAL VOC threshold, COCO's AP50


def box_iou(pred: Sequence[Any], target: Sequence[Any]) -> float:
    """IoU of two ``(x0, y0, x1, y1, ...)`` boxes in the same units; a label after them is ignored.

    big_vision's ``_area``: a negative side counts 0, so an inverted box has no area; two
    boxes without area (a union of 0) have IoU 0.
    """

    def area(x0: float, y0: float, x1: float, y1: float) -> float:
        return max(x1 - x0, 0.0) * max(y1 - y0, 0.0)

    inter = area(max(pred[0], target[0]), max(pred[1], target[1]), min(pred[2], target[2]), min(pred[3], target[3]))
    union = area(*pred[:4]) + area(*target[:4]) - inter
    return inter / union if union > 0 else 0.0


def box_f1(predicted: Sequence[Sequence[Any]], target: Sequence[Sequence[Any]]) -> float:
    """F1 of one image's ``(x0, y0, x1, y1, label)`` boxes at IoU 0.5 with the right label.

    Predictions are taken in order, each matched to the first unmatched target of its label
    that it overlaps with IoU >= 0.5, so every target is matched once. A sortable per-image
    number, not an official metric (COCO AP is defined over a set of images only): an image
    without objects scores 1.0 when nothing is predicted there (nothing to find, nothing
    wrongly found), else 0.0.
    """
    unmatched = list(target)
    hits = 0
    for box in predicted:
        match = next((t for t in unmatched if t[4] == box[4] and box_iou(box, t) >= MATCH_IOU), None)
        if match is not None:
            unmatched.remove(match)
            hits += 1
    false_positives, false_negatives = len(predicted) - hits, len(target) - hits
    if hits + false_positives + false_negatives == 0:
        return 1.0
    return f1_score(hits, false_positives, false_negatives)
