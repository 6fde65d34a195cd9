"""PaliGemma's segmentation text: ``<locY0><locX0><locY1><locX1><segNNN>x16 label``.

The format is big_vision's (``big_vision/pp/proj/paligemma/segmentation.py`` and the
evaluator ``big_vision/evaluators/proj/paligemma/transfers/segmentation.py``): each object
is four location tokens, then exactly 16 mask codes ``<seg000>``..``<seg127>``, then its
label; objects are joined by `` ; ``. Location tokens use detection's rule from
``data.loc_tokens`` (``floor(v / size * 1024)``, decoded as ``bin * size / 1024``) so one
rule holds for both tasks in both directions and no detect dataset's hash changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from data.loc_tokens import BINS, to_bin

SEG_CODES = 16  # big_vision: a 4x4 grid of VQ-VAE codes per object
SEG_VOCAB = 128  # <seg000>..<seg127>
_OBJECT = re.compile(r"((?:<loc\d{4}>\s*){4})((?:<seg\d{3}>\s*)*)([^;<]*)")
_LOC = re.compile(r"<loc(\d{4})>")
_SEG = re.compile(r"<seg(\d{3})>")


class SegmentedObject(NamedTuple):
    """An object in pixels: left, top, right, bottom, its label and its 16 mask codes."""

    x0: float
    y0: float
    x1: float
    y1: float
    label: str
    codes: tuple[int, ...]


def encode_objects(objects: Iterable[Sequence[Any]], width: float, height: float) -> str:
    """``[[x0, y0, x1, y1, label, codes], ...]`` in pixels -> PaliGemma segmentation text.

    Raises:
        ValueError: an object does not have exactly 16 codes in 0..127.
    """
    parts = []
    for x0, y0, x1, y1, label, codes in objects:
        codes = [int(c) for c in codes]
        if len(codes) != SEG_CODES or not all(0 <= c < SEG_VOCAB for c in codes):
            raise ValueError(f"an object needs {SEG_CODES} mask codes in 0..{SEG_VOCAB - 1}, got {codes}")
        bins = (
            to_bin(float(y0), height),
            to_bin(float(x0), width),
            to_bin(float(y1), height),
            to_bin(float(x1), width),
        )
        locs = "".join(f"<loc{b:04d}>" for b in bins)
        parts.append(locs + "".join(f"<seg{c:03d}>" for c in codes) + f" {str(label).strip()}")
    return " ; ".join(parts)


def decode_objects(
    text: str, width: float, height: float, labels: Iterable[str] | None = None
) -> tuple[list[SegmentedObject], int]:
    """PaliGemma segmentation text -> (objects in pixels, how many objects were dropped).

    Tolerant as ``data.loc_tokens.decode_boxes`` is: whitespace between the blocks is
    accepted; objects with other than 16 seg tokens (big_vision's evaluator counts them as
    invalid), inverted boxes, labels outside ``labels`` (when given) and exact repeats are
    dropped and counted; order is kept. Codes outside 0..127 cannot match ``<segNNN>``'s
    vocabulary and drop their object.
    """
    known = {label.strip() for label in labels} if labels is not None else None
    objects: list[SegmentedObject] = []
    seen: set[SegmentedObject] = set()
    dropped = 0
    for match in _OBJECT.finditer(text):
        y0, x0, y1, x1 = (int(b) for b in _LOC.findall(match.group(1)))
        codes = tuple(int(c) for c in _SEG.findall(match.group(2)))
        label = match.group(3).strip()
        bad_codes = len(codes) != SEG_CODES or any(c >= SEG_VOCAB for c in codes)
        if bad_codes or y1 < y0 or x1 < x0 or (known is not None and label not in known):
            dropped += 1
            continue
        obj = SegmentedObject(
            x0 / BINS * width, y0 / BINS * height, x1 / BINS * width, y1 / BINS * height, label, codes
        )
        if obj in seen:
            dropped += 1
            continue
        seen.add(obj)
        objects.append(obj)
    return objects, dropped
