"""COCO RLE and polygon masks: round trips with pycocotools, and every bad value refused."""

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from data.masks import MaskFormatError, decode_mask, encode_rle, mask_box, mask_problem, polygons_rle, string_runs


def _uncompressed(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed counts: run lengths of the column-major pixels, from a 0 run."""
    runs, current, length = [], False, 0
    for value in mask.flatten(order="F"):
        if bool(value) != current:
            runs.append(length)
            current, length = bool(value), 0
        length += 1
    return [*runs, length]


def test_random_masks_round_trip_in_both_rle_forms() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        height, width = (int(v) for v in rng.integers(1, 40, 2))
        mask = rng.random((height, width)) < rng.random()
        rle = encode_rle(mask)
        assert rle["size"] == [height, width] and isinstance(rle["counts"], str)
        assert sum(string_runs(rle["counts"])) == height * width
        assert (decode_mask(rle, height, width) == mask).all()
        uncompressed = {"size": [height, width], "counts": _uncompressed(mask)}
        assert (decode_mask(uncompressed, height, width) == mask).all()


def test_string_runs_match_pycocotools_encoding() -> None:
    mask = np.zeros((5, 7), bool)
    mask[1:3, 2:6] = True
    counts = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"]
    assert string_runs(counts) == _uncompressed(mask)


def test_polygons_are_read_as_coco_does() -> None:
    polygon = [1.0, 1.0, 5.0, 1.0, 5.0, 4.0, 1.0, 4.0]
    expected = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects([polygon], 6, 8))).astype(bool)
    assert (decode_mask([polygon], 6, 8) == expected).all() and expected.any()
    assert coco_mask.area(polygons_rle([polygon], 6, 8)) == expected.sum()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"size": [5, 7], "counts": "0"}, "cover 0 pixels, not the 7x5 image's 35"),
        ({"size": [5, 7], "counts": ";2300000"}, "cover 28 pixels"),
        ({"size": [5, 7], "counts": "ab!c"}, "outside the COCO RLE alphabet"),
        ({"size": [4, 7], "counts": ";23000004"}, "RLE size [4, 7] is not the image's [height, width] [5, 7]"),
        ({"size": [5, 7], "counts": [3, 2]}, "summing to 35"),
        ({"size": [5, 7]}, "'counts' must be a string or a list"),
        ({"counts": "abc"}, "'size' must be [height, width]"),
        ([[1, 1, 2, 2]], "3 points or more"),
        ("abc", "a mask is a COCO RLE"),
        ({"size": [5, 7], "counts": [35]}, "the mask is empty"),
    ],
)
def test_bad_masks_say_what_is_wrong(value: object, message: str) -> None:
    problem = mask_problem(value, 5, 7)
    assert problem is not None and message in problem


def test_a_good_mask_has_no_problem_and_a_tight_box() -> None:
    mask = np.zeros((5, 7), bool)
    mask[1:3, 2:6] = True
    assert mask_problem(encode_rle(mask), 5, 7) is None
    assert mask_box(mask) == (2.0, 1.0, 6.0, 3.0)
    with pytest.raises(MaskFormatError, match="empty"):
        mask_box(np.zeros((3, 3), bool))
