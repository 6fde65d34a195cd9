"""Between a full-size mask and the codec's 64x64 view of its box, as big_vision does it.

Encoding follows ``refcoco_mask2str`` in ``big_vision/pp/proj/paligemma/segmentation.py``:
the box is rounded to pixels, the full-resolution mask is cropped to it (the annotation's
box, not the mask's tight box), resized to 64x64 bilinearly with antialiasing and not
thresholded. Decoding follows ``Evaluator.run`` in
``big_vision/evaluators/proj/paligemma/transfers/segmentation.py``: the 64x64 decoder
output is resized to the box with PIL's bilinear filter, then ``> 0`` is the mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from data.mask_codec.vqvae import MASK_SIZE

PixelBox = tuple[int, int, int, int]


def pixel_box(box: Sequence[float], width: int, height: int) -> PixelBox:
    """``(x0, y0, x1, y1)`` in pixels -> integer pixel edges inside the image.

    Edges are rounded as ``refcoco_mask2str`` rounds them (integers pass unchanged); a box
    thinner than a pixel after rounding is widened to one pixel, since the crop needs one.

    Raises:
        ValueError: the box is not four finite numbers with x0 < x1 and y0 < y1, or lies
            outside the image.
    """
    if len(box) != 4 or not all(np.isfinite(float(v)) for v in box):
        raise ValueError(f"a mask box is four finite pixel coordinates (x0, y0, x1, y1), got {box!r}")
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (x0 < x1 and y0 < y1):
        raise ValueError(f"mask box {box!r} is empty or inverted: need x0 < x1 and y0 < y1")
    left, right = _edges(x0, x1, width)
    top, bottom = _edges(y0, y1, height)
    if left >= right or top >= bottom:
        raise ValueError(f"mask box {box!r} lies outside the {width}x{height} image")
    return left, top, right, bottom


def _edges(low: float, high: float, size: int) -> tuple[int, int]:
    a = min(max(round(low), 0), size)
    b = min(max(round(high), 0), size)
    if b <= a and 0 <= low < size:  # sub-pixel box: keep the pixel it starts in
        a, b = min(a, size - 1), min(a, size - 1) + 1
    return a, b


def crop_to_codec(mask: np.ndarray, box: PixelBox) -> np.ndarray:
    """A full-size boolean mask and a pixel box -> the box's crop at 64x64, float32 in [0, 1]."""
    x0, y0, x1, y1 = box
    crop = np.ascontiguousarray(mask[y0:y1, x0:x1], dtype=np.float32)
    # PIL's bilinear filter widens its support when shrinking: the antialiased bilinear resize
    # that tf.image.resize(antialias=True) does in refcoco_mask2str.
    resized = Image.fromarray(crop).resize((MASK_SIZE, MASK_SIZE), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def paste_from_codec(logits: np.ndarray, box: PixelBox, width: int, height: int) -> np.ndarray:
    """64x64 decoder output -> a ``height x width`` boolean mask, ``> 0`` inside ``box``."""
    x0, y0, x1, y1 = box
    in_box = Image.fromarray(np.ascontiguousarray(logits, dtype=np.float32)).resize(
        (x1 - x0, y1 - y0), Image.Resampling.BILINEAR
    )
    full = np.zeros((height, width), dtype=bool)
    full[y0:y1, x0:x1] = np.asarray(in_box) > 0.0
    return full
