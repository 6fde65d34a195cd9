"""Box IoU and the per-image box F1 that detection and segmentation scoring share."""

from __future__ import annotations

import pytest

from evaluation.boxes import box_f1, box_iou
from evaluation.metrics import f1_score
from evaluation.segmentation_metrics import box_iou as segmentation_box_iou


def test_box_iou_ignores_the_label_and_gives_no_area_to_an_inverted_box() -> None:
    assert box_iou([0, 0, 4, 4, "cat"], [2, 0, 6, 4, "dog"]) == pytest.approx(8 / 24)
    assert box_iou([4, 4, 0, 0], [0, 0, 4, 4]) == 0.0
    assert box_iou([1, 1, 1, 1], [1, 1, 1, 1]) == 0.0  # no union: IoU 0, not 0/0
    assert segmentation_box_iou is box_iou


def test_box_f1_needs_the_label_and_iou_one_half() -> None:
    target = [(0, 0, 10, 10, "cat"), (20, 20, 30, 30, "dog")]
    assert box_f1(target, target) == 1.0
    assert box_f1([(0, 0, 10, 10, "dog")], target) == 0.0  # right box, wrong label
    assert box_f1([(0, 0, 10, 5, "cat")], target) == pytest.approx(2 / 3)  # IoU exactly 0.5 counts
    assert box_f1([(0, 0, 10, 4, "cat")], target) == 0.0  # IoU 0.4 does not


def test_box_f1_matches_each_target_once() -> None:
    target = [(0, 0, 10, 10, "cat")]
    assert box_f1([(0, 0, 10, 10, "cat"), (0, 0, 10, 10, "cat")], target) == pytest.approx(2 / 3)


def test_box_f1_of_an_image_without_objects() -> None:
    assert box_f1([], []) == 1.0
    assert box_f1([(0, 0, 1, 1, "cat")], []) == 0.0
    assert box_f1([], [(0, 0, 1, 1, "cat")]) == 0.0


def test_f1_score_from_counts() -> None:
    assert f1_score(3, 1, 2) == pytest.approx(6 / 9)
    assert f1_score(0, 0, 4) == 0.0
    with pytest.raises(ValueError, match="undefined"):
        f1_score(0, 0, 0)
