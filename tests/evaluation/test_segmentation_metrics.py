"""big_vision-style per-example mIoU and box accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.segmentation_metrics import box_iou, mask_iou, segmentation_scores


def _square(x0: int, y0: int, x1: int, y1: int, size: int = 16) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_box_iou() -> None:
    assert box_iou([0, 0, 4, 4], [0, 0, 4, 4]) == 1.0
    assert box_iou([0, 0, 4, 4], [2, 0, 6, 4]) == pytest.approx(8 / 24)
    assert box_iou([0, 0, 1, 1], [5, 5, 6, 6]) == 0.0


def test_mask_iou_union_covers_the_whole_target() -> None:
    target = _square(0, 0, 8, 8)
    assert mask_iou(target, target) == 1.0
    assert mask_iou(_square(0, 0, 4, 8), target) == pytest.approx(0.5)
    assert mask_iou(None, target) == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        mask_iou(np.zeros((2, 2), bool), target)


def test_scores_count_invalid_as_zero() -> None:
    target = (_square(0, 0, 8, 8), [0, 0, 8, 8])
    scores = segmentation_scores([target, None], [target, target])
    assert scores == {"miou": 0.5, "invalid": 1.0, "boxacc/0.5": 0.5}


def test_target_codes_through_text_score_their_own_decoded_mask_perfectly() -> None:
    """A target's codes rendered as text, parsed and decoded score 1.0 against the same
    decoded mask; against the raw mask the codec's reconstruction limits the IoU."""
    from data.mask_codec import load_codec
    from data.seg_tokens import decode_objects, encode_objects

    codec = load_codec()
    raw, box = _square(8, 8, 40, 40, size=64), [8.0, 8.0, 40.0, 40.0]
    codes = codec.mask_to_codes(raw, box)
    decoded = codec.codes_to_mask(codes, box, (64, 64))
    (obj,), dropped = decode_objects(encode_objects([[*box, "square", codes]], 64, 64), 64, 64)
    parsed = codec.codes_to_mask(obj.codes, obj[:4], (64, 64))
    assert dropped == 0
    assert mask_iou(parsed, decoded) == 1.0
    assert mask_iou(parsed, raw) >= 0.85
