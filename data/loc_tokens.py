"""PaliGemma's location tokens: boxes as ``<locY0><locX0><locY1><locX1> label``.

Coordinates are quantised into 1024 bins over the image height (y) and width (x), in the
order y0 x0 y1 x1; objects are joined by `` ; ``. Decoding multiplies a bin by size / 1024,
as the Hugging Face PaliGemma documentation and Google's demo parser do, so an encode ->
decode round trip lands within one bin (size / 1024 pixels) of the original.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

BINS = 1024
_OBJECT = re.compile(r"((?:<loc\d{4}>){4})\s*([^;<]*)")
_LOC = re.compile(r"<loc(\d{4})>")
_LOC_LIKE = re.compile(r"<loc([^<>\s]*)(>?)")


class Box(NamedTuple):
    """A box in pixels: left, top, right, bottom, and its label."""

    x0: float
    y0: float
    x1: float
    y1: float
    label: str


def to_bin(value: float, size: float) -> int:
    """The bin of a pixel coordinate along an axis of ``size`` pixels (clamped to 0..1023)."""
    if not math.isfinite(value) or size <= 0:
        raise ValueError(f"cannot quantise coordinate {value} on an axis of size {size}")
    return min(BINS - 1, max(0, math.floor(value / size * BINS)))


def encode_boxes(boxes: Iterable[Sequence[float | str]], width: float, height: float) -> str:
    """``[[x0, y0, x1, y1, label], ...]`` in pixels -> PaliGemma detection text."""
    parts = []
    for x0, y0, x1, y1, label in boxes:
        bins = (
            to_bin(float(y0), height),
            to_bin(float(x0), width),
            to_bin(float(y1), height),
            to_bin(float(x1), width),
        )
        parts.append("".join(f"<loc{b:04d}>" for b in bins) + f" {str(label).strip()}")
    return " ; ".join(parts)


def decode_boxes(text: str, width: float, height: float, labels: Iterable[str] | None = None) -> list[Box]:
    """PaliGemma detection text -> boxes in pixels, tolerant of what models really emit.

    Objects with fewer than four location tokens (truncated output), inverted boxes, labels
    outside ``labels`` (when given) and exact repeats (fine-tuned detectors tend to repeat
    their last object until ``max_new_tokens``) are dropped; order is kept.
    """
    known = {label.strip() for label in labels} if labels is not None else None
    boxes: list[Box] = []
    seen: set[Box] = set()
    for match in _OBJECT.finditer(text):
        y0, x0, y1, x1 = (int(b) for b in _LOC.findall(match.group(1)))
        label = match.group(2).strip()
        if y1 < y0 or x1 < x0 or (known is not None and label not in known):
            continue
        box = Box(x0 / BINS * width, y0 / BINS * height, x1 / BINS * width, y1 / BINS * height, label)
        if box not in seen:
            seen.add(box)
            boxes.append(box)
    return boxes


def malformed_locations(text: str) -> list[str]:
    """Location tokens in ``text`` that PaliGemma cannot emit: ``<loc`` not followed by four
    digits and ``>`` (``<loc12>``, ``<loc0012``), or a bin of 1024 or more (``<loc2000>``).

    A model's own output holds only real tokens; such text comes from a converter that wrote
    the tokens by hand, and decoding it would place boxes silently wrong.
    """
    bad = []
    for match in _LOC_LIKE.finditer(text):
        digits, closed = match.groups()
        if not (closed and len(digits) == 4 and digits.isdigit() and int(digits) < BINS):
            bad.append(match.group(0))
    return bad
