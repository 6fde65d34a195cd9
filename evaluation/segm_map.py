"""COCO mask AP/AR (``iouType="segm"``) of predicted object masks, by the COCO API itself.

The ground truth and the results are built in memory as COCO datasets with compressed RLE
``segmentation`` fields and fed to faster-coco-eval (``COCOeval_faster``) or pycocotools
(``COCOeval``); both give the same numbers. A result record carries no ``bbox`` key: the
COCO API's ``loadRes`` would otherwise take the box for the object and replace its mask by
the box's rectangle. PaliGemma emits no confidence, so every object scores 1.0 (one
operating point, ranked stably in image then output order), as for boxes
(``evaluation.coco_metrics.detection_metrics``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Backend = Literal["faster", "pycocotools"]
MaskObject = tuple[Mapping[str, Any], str]
"""``(rle, label)``: a compressed COCO RLE of the full image and the object's label."""

_AR_100 = 8


@dataclass(frozen=True)
class MaskScores:
    """COCO mask metrics over a set of images (all in [0, 1]).

    Attributes:
        map: AP over IoU 0.50:0.05:0.95, all areas, 100 detections (``stats[0]``).
        ap50, ap75: AP at IoU 0.50 and 0.75 (``stats[1]``, ``stats[2]``).
        ar: AR@100 (``stats[8]``).
        detections: predicted objects scored (after dropping unknown labels).
        unknown_labels: predicted objects dropped because their label is in no target.
    """

    map: float
    ap50: float
    ap75: float
    ar: float
    detections: int
    unknown_labels: int


def _rle(value: Mapping[str, Any]) -> dict[str, Any]:
    counts = value["counts"]
    return {"size": [int(v) for v in value["size"]], "counts": counts.decode() if isinstance(counts, bytes) else counts}


def _coco(
    predictions: Sequence[Sequence[MaskObject]],
    targets: Sequence[Sequence[MaskObject]],
    sizes: Sequence[tuple[int, int]],
) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    from pycocotools import mask as coco_mask

    if not len(predictions) == len(targets) == len(sizes):
        raise ValueError(
            f"one entry per image: {len(predictions)} predictions, {len(targets)} targets, {len(sizes)} sizes"
        )
    labels = sorted({label for objects in targets for _, label in objects})
    if not labels:
        raise ValueError("no ground-truth mask: COCO mask AP is undefined without ground truth")
    category = {label: i for i, label in enumerate(labels, start=1)}
    images = [{"id": i, "width": int(w), "height": int(h)} for i, (w, h) in enumerate(sizes, start=1)]
    annotations: list[dict[str, Any]] = []
    for image, objects in enumerate(targets, start=1):
        for rle, label in objects:
            area = float(coco_mask.area({**_rle(rle), "counts": _rle(rle)["counts"].encode()}))
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image, "category_id": category[label],
                 "segmentation": _rle(rle), "area": area, "iscrowd": 0}
            )  # fmt: skip
    results, unknown = [], 0
    for image, objects in enumerate(predictions, start=1):
        for rle, label in objects:
            if label not in category:
                unknown += 1
                continue
            results.append({"image_id": image, "category_id": category[label], "segmentation": _rle(rle), "score": 1.0})
    ground_truth = {"images": images, "annotations": annotations,
                    "categories": [{"id": i, "name": label} for label, i in category.items()]}  # fmt: skip
    return ground_truth, results, unknown


def _evaluate(ground_truth: dict[str, Any], results: list[dict[str, Any]], backend: Backend) -> np.ndarray:
    from evaluation.coco_metrics import run_coco_eval

    return np.asarray(run_coco_eval(ground_truth, results, "segm", backend).stats, dtype=float)


def mask_metrics(
    predictions: Sequence[Sequence[MaskObject]],
    targets: Sequence[Sequence[MaskObject]],
    sizes: Sequence[tuple[int, int]],
    *,
    backend: Backend = "faster",
) -> MaskScores:
    """COCO mask AP/AR (cocodataset.org detection evaluation, ``iouType="segm"``).

    Args:
        predictions: per image, the predicted ``(rle, label)`` objects (full-image masks).
        targets: per image, the ground-truth ``(rle, label)`` objects.
        sizes: per image, ``(width, height)``.
        backend: ``"faster"`` (faster-coco-eval) or ``"pycocotools"``.

    With no scored prediction at all every metric is 0.0 (what COCO gives categories with
    ground truth and no detections; pycocotools' ``loadRes`` cannot take an empty list).

    Raises:
        ValueError: no ground-truth mask at all, or the sequences differ in length.
    """
    if backend not in ("faster", "pycocotools"):
        raise ValueError(f"unknown backend {backend!r}; expected 'faster' or 'pycocotools'")
    ground_truth, results, unknown = _coco(predictions, targets, sizes)
    if not results:
        return MaskScores(0.0, 0.0, 0.0, 0.0, detections=0, unknown_labels=unknown)
    stats = _evaluate(ground_truth, results, backend)
    return MaskScores(
        map=float(stats[0]), ap50=float(stats[1]), ap75=float(stats[2]), ar=float(stats[_AR_100]),
        detections=len(results), unknown_labels=unknown,
    )  # fmt: skip
