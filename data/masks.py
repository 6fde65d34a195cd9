"""Object masks as datasets store them: COCO run-length encoding (RLE) and polygons.

An example's masks are COCO RLE objects ``{"size": [height, width], "counts": "..."}``, the
compressed form ``pycocotools.mask.encode`` writes and COCO's result files use; the
uncompressed form (``counts`` a list of run lengths, COCO's ``iscrowd`` annotations) and
polygons (``[[x0, y0, x1, y1, ...], ...]``) are read too and stored compressed. The
encoding and decoding are pycocotools', so a mask round-trips with what the official COCO
evaluator reads. Masks are boolean ``height x width`` arrays here, ``True`` inside.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


class MaskFormatError(ValueError):
    """A mask value that is neither a COCO RLE of the image's size nor polygons."""


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """A boolean ``H x W`` mask -> compressed COCO RLE ``{"size": [H, W], "counts": str}``."""
    from pycocotools import mask as coco_mask

    array = np.asarray(mask)
    if array.ndim != 2:
        raise MaskFormatError(f"a mask is one H x W array, got shape {array.shape}")
    rle = coco_mask.encode(np.asfortranarray(array.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _compressed(rle: Mapping[str, Any], height: int, width: int) -> dict[str, Any]:
    """A COCO RLE (compressed or not) checked against the image size, as pycocotools takes it."""
    from pycocotools import mask as coco_mask

    size, counts = rle.get("size"), rle.get("counts")
    if not (isinstance(size, Sequence) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        raise MaskFormatError(f"RLE 'size' must be [height, width], got {size!r}")
    if list(size) != [height, width]:
        raise MaskFormatError(f"RLE size {list(size)} is not the image's [height, width] [{height}, {width}]")
    if isinstance(counts, list):
        if not all(isinstance(c, int) and c >= 0 for c in counts) or sum(counts) != height * width:
            raise MaskFormatError(f"uncompressed RLE counts must be run lengths >= 0 summing to {height * width}")
        return coco_mask.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    if isinstance(counts, str | bytes) and counts:
        return {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    raise MaskFormatError(f"RLE 'counts' must be a string or a list of run lengths, got {type(counts).__name__}")


def string_runs(counts: str | bytes) -> list[int]:
    """The run lengths of a compressed COCO RLE string (``rleFrString`` of COCO's maskApi.c).

    Written out because pycocotools decodes a truncated or garbled string into arbitrary
    pixels without a word; with the runs in hand their sum can be checked.

    Raises:
        MaskFormatError: a character outside the encoding's alphabet, or a run cut short.
    """
    text = counts.decode("ascii", "replace") if isinstance(counts, bytes) else counts
    runs: list[int] = []
    position = 0
    while position < len(text):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(text):
                raise MaskFormatError("RLE counts end inside a run length")
            char = ord(text[position]) - 48
            if not 0 <= char < 64:
                raise MaskFormatError(f"RLE counts hold {text[position]!r}, outside the COCO RLE alphabet")
            value |= (char & 0x1F) << (5 * shift)
            more = bool(char & 0x20)
            position, shift = position + 1, shift + 1
            if not more and char & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def _check_runs(rle: Mapping[str, Any], height: int, width: int) -> None:
    runs = string_runs(rle["counts"])
    if any(run < 0 for run in runs) or sum(runs) != height * width:
        raise MaskFormatError(f"RLE counts cover {sum(runs)} pixels, not the {width}x{height} image's {height * width}")


def decode_mask(value: Any, height: int, width: int) -> np.ndarray:
    """A stored mask (compressed or uncompressed RLE, or polygons) -> boolean ``H x W`` array.

    Raises:
        MaskFormatError: the value is none of those, its size is not the image's, or its
            counts do not describe an ``H x W`` mask.
    """
    from pycocotools import mask as coco_mask

    if isinstance(value, Mapping):
        rle = _compressed(value, height, width)
    elif isinstance(value, list) and value and all(isinstance(p, list) for p in value):
        rle = polygons_rle(value, height, width)
    else:
        raise MaskFormatError(
            'a mask is a COCO RLE {"size": [height, width], "counts": ...} or a list of polygons '
            f"[[x0, y0, x1, y1, ...], ...], got {type(value).__name__}"
        )
    _check_runs(rle, height, width)
    decoded = coco_mask.decode(rle)
    if decoded.shape != (height, width):
        raise MaskFormatError(f"RLE decodes to {decoded.shape}, expected ({height}, {width})")
    return decoded.astype(bool)


def polygons_rle(polygons: Sequence[Sequence[float]], height: int, width: int) -> dict[str, Any]:
    """COCO polygons (each ``[x0, y0, x1, y1, ...]`` in pixels, at least three points) -> one
    compressed RLE, their union, as COCO's ``annToRLE`` computes it.

    Raises:
        MaskFormatError: a polygon with fewer than three points or non-numeric coordinates.
    """
    from pycocotools import mask as coco_mask

    for polygon in polygons:
        if len(polygon) < 6 or len(polygon) % 2:
            raise MaskFormatError(f"a polygon is [x0, y0, x1, y1, ...], 3 points or more; got {len(polygon)} values")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) for v in polygon):
            raise MaskFormatError("polygon coordinates must be finite numbers")
    rles = coco_mask.frPyObjects([[float(v) for v in p] for p in polygons], height, width)
    return coco_mask.merge(rles)


def mask_problem(value: Any, height: int, width: int) -> str | None:
    """Why ``value`` is not a usable mask of an ``H x W`` image, or ``None`` when it is one."""
    try:
        mask = decode_mask(value, height, width)
    except MaskFormatError as err:
        return str(err)
    return None if mask.any() else "the mask is empty (no pixel inside)"


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """The tight ``(x0, y0, x1, y1)`` box of a non-empty mask, in pixel edges (x1, y1 exclusive).

    Raises:
        MaskFormatError: the mask is empty.
    """
    rows, cols = np.flatnonzero(np.asarray(mask).any(axis=1)), np.flatnonzero(np.asarray(mask).any(axis=0))
    if not rows.size:
        raise MaskFormatError("the mask is empty (no pixel inside): it has no box")
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)
