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


def _segment_record(target_box: list[float], predicted: list[list[float]], label: str = "square") -> dict:
    """A 64x64 record whose target is a square filling ``target_box`` and whose prediction is
    one object per box in ``predicted``, each with the target's codes."""
    from data.mask_codec import load_codec
    from data.masks import encode_rle
    from data.seg_tokens import encode_objects

    codes = load_codec().mask_to_codes(_square(*map(int, target_box), size=64), target_box)
    text = encode_objects([[*box, label, codes] for box in predicted], 64, 64) if predicted else "no objects"
    target = {"box": target_box, "label": "square", "mask": encode_rle(_square(*map(int, target_box), size=64))}
    return {"prediction": text, "masks": [target], "width": 64, "height": 64}


def test_box_accuracy_at_half_iou_is_big_vision_s_first_object_rule() -> None:
    from evaluation.score import score_records

    box = [8.0, 8.0, 40.0, 40.0]
    records = [
        _segment_record(box, [box]),  # the same box: a hit
        _segment_record(box, [[8.0, 8.0, 40.0, 24.0]]),  # half the box: IoU 0.5, a hit (>=)
        _segment_record(box, [[8.0, 8.0, 40.0, 20.0]]),  # IoU 0.375: a miss
        _segment_record(box, [[30.0, 30.0, 60.0, 60.0], box]),  # only the first object counts: a miss
        _segment_record(box, []),  # invalid: a miss
    ]
    result = score_records("segment", records)
    assert result.metrics["box_acc50"] == pytest.approx(2 / 5)
    assert result.metrics["invalid"] == 1.0
    assert "boxacc/0.5" not in result.metrics, "a metric key has no '/' of its own"


def test_box_accuracy_with_several_objects_matches_each_target_once_by_label() -> None:
    from evaluation.segment_scoring import box_hits

    a, b = [0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]
    assert box_hits([(b, "dog"), (a, "cat")], [(a, "cat"), (b, "dog")]) == 1.0
    assert box_hits([(a, "cat")], [(a, "cat"), (a, "cat")]) == 0.5, "one prediction matches one target"
    assert box_hits([(a, "dog"), (b, "dog")], [(a, "cat"), (b, "dog")]) == 0.5, "labels must agree"
    assert box_hits([], [(a, "cat")]) == 0.0
