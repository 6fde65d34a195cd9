"""COCO mask AP: the same numbers from faster-coco-eval and pycocotools, masks not boxes."""

from dataclasses import asdict

import numpy as np
import pytest

from data.masks import encode_rle
from evaluation.segm_map import mask_metrics


def _blob(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    y, x = rng.integers(0, height - 8), rng.integers(0, width - 8)
    mask[y : y + rng.integers(3, 9), x : x + rng.integers(3, 9)] = True
    return mask


def _random_set(seed: int) -> tuple[list, list, list]:
    rng = np.random.default_rng(seed)
    predictions, targets, sizes = [], [], []
    for _ in range(25):
        masks = [_blob(rng, 40, 50) for _ in range(rng.integers(1, 4))]
        labels = [str(rng.choice(["cat", "dog"])) for _ in masks]
        targets.append([(encode_rle(m), label) for m, label in zip(masks, labels, strict=True)])
        found = [(np.roll(m, rng.integers(-2, 3), axis=1), label) for m, label in zip(masks, labels, strict=True)]
        predictions.append([(encode_rle(m), label if rng.random() < 0.9 else "bird") for m, label in found[:2]])
        sizes.append((50, 40))
    return predictions, targets, sizes


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_both_coco_backends_agree(seed: int) -> None:
    predictions, targets, sizes = _random_set(seed)
    faster = mask_metrics(predictions, targets, sizes)
    reference = mask_metrics(predictions, targets, sizes, backend="pycocotools")
    assert asdict(faster) == pytest.approx(asdict(reference), abs=1e-12)  # the last bit may differ
    assert 0.0 < faster.map < 1.0 and faster.unknown_labels > 0


def test_masks_are_scored_not_their_boxes() -> None:
    """An L-shaped object predicted exactly scores 1; its bounding rectangle would not."""
    mask = np.zeros((20, 20), bool)
    mask[2:18, 2:6] = True
    mask[14:18, 2:18] = True
    box = np.zeros_like(mask)
    box[2:18, 2:18] = True
    target = [[(encode_rle(mask), "ell")]]
    assert mask_metrics(target, target, [(20, 20)]).map == 1.0
    assert mask_metrics([[(encode_rle(box), "ell")]], target, [(20, 20)]).ap50 == 0.0


def test_nothing_predicted_scores_zero_and_no_ground_truth_raises() -> None:
    _, targets, sizes = _random_set(0)
    assert mask_metrics([[] for _ in targets], targets, sizes).map == 0.0
    with pytest.raises(ValueError, match="no ground-truth mask"):
        mask_metrics([[]], [[]], [(5, 5)])
