"""Per-example segmentation metrics as big_vision computes them.

Follows ``big_vision/evaluators/proj/paligemma/transfers/segmentation.py`` (``Evaluator.run``):
one predicted object per example; its mask, decoded and pasted into its predicted box, is
compared with the full ground-truth mask (the union covers the whole ground-truth area, not
only the box); an invalid or missing prediction scores IoU 0 and is counted; box accuracy
is the share of examples whose predicted box has IoU >= threshold with the ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evaluation.boxes import box_iou


def mask_iou(pred: np.ndarray | None, target: np.ndarray) -> float:
    """IoU of a full-size predicted mask (``None``: invalid output, scores 0) with the target.

    Raises:
        ValueError: the masks differ in shape.
    """
    if pred is None:
        return 0.0
    if pred.shape != target.shape:
        raise ValueError(f"predicted mask {pred.shape} and target mask {target.shape} differ in shape")
    pred, target = pred.astype(bool), target.astype(bool)
    inter = int((pred & target).sum())
    union = int(target.sum()) + int(pred.sum()) - inter
    return inter / union if union > 0 else 0.0


def segmentation_scores(
    preds: Sequence[tuple[np.ndarray, Sequence[float]] | None],
    targets: Sequence[tuple[np.ndarray, Sequence[float]]],
    thresholds: Sequence[float] = (0.5,),
) -> dict[str, float]:
    """``miou``, ``boxacc/<t>`` and ``invalid`` over examples, as big_vision yields them.

    Args:
        preds: per example, the (full-size mask, box) of the first valid predicted object,
            or ``None`` when the output held none.
        targets: per example, the ground-truth (full-size mask, box).
    """
    if len(preds) != len(targets):
        raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
    if not targets:
        raise ValueError("no examples to score")
    ious = [mask_iou(p[0] if p else None, t[0]) for p, t in zip(preds, targets, strict=True)]
    scores = {"miou": float(np.mean(ious)), "invalid": float(sum(p is None for p in preds))}
    for threshold in thresholds:
        hits = [p is not None and box_iou(p[1], t[1]) >= threshold for p, t in zip(preds, targets, strict=True)]
        scores[f"boxacc/{threshold}"] = float(np.mean(hits))
    return scores


__all__ = ["box_iou", "mask_iou", "segmentation_scores"]
