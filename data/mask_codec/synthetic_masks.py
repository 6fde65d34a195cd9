"""Synthetic object masks for training and checking the embedded mask codec.

Each object is drawn with PIL on a canvas of random size: an ellipse, a rotated rectangle, a
polygon, a smooth blob, a union of two or three of those, or one with a hole; objects may run
off the canvas edge. Its box is the mask's tight box, loosened on about half of the objects
(annotated boxes are rarely tight), and the codec's 64x64 target is made from it exactly as
``mask_to_codes`` makes it (see ``data.mask_codec.resize``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from data.mask_codec.resize import PixelBox, crop_to_codec, pixel_box

Polygon = list[tuple[float, float]]
_KINDS = ("ellipse", "rectangle", "polygon", "blob")


def _outline(rng: np.random.Generator, kind: str, cx: float, cy: float, r: float) -> Polygon:
    """The outline of one primitive centred near (cx, cy) with radius about r."""
    angle = rng.uniform(0, math.pi)
    if kind == "rectangle":
        w, h = r * rng.uniform(0.3, 1.0), r * rng.uniform(0.3, 1.0)
        corners = [(-w, -h), (w, -h), (w, h), (-w, h)]
        return [_rotate(x, y, angle, cx, cy) for x, y in corners]
    if kind == "ellipse":
        a, b = r, r * rng.uniform(0.25, 1.0)
        t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        return [_rotate(a * math.cos(s), b * math.sin(s), angle, cx, cy) for s in t]
    if kind == "polygon":
        n = int(rng.integers(3, 9))
        t = np.sort(rng.uniform(0, 2 * math.pi, n))
        radii = r * rng.uniform(0.4, 1.0, n)
    else:  # blob: a radius that varies smoothly with the angle
        t = np.linspace(0, 2 * math.pi, 64, endpoint=False)
        radii = np.ones_like(t)
        for k in (2, 3, 4):
            radii += rng.uniform(0, 0.35 / k * 2) * np.cos(k * t + rng.uniform(0, 2 * math.pi))
        radii = r * np.clip(radii, 0.2, None) / radii.max()
    return [(cx + q * math.cos(s), cy + q * math.sin(s)) for q, s in zip(radii, t, strict=True)]


def _rotate(x: float, y: float, angle: float, cx: float, cy: float) -> tuple[float, float]:
    c, s = math.cos(angle), math.sin(angle)
    return cx + c * x - s * y, cy + s * x + c * y


def draw_object(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """One random object mask on a ``height x width`` canvas (boolean; possibly empty if off-canvas)."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    r = min(width, height) * rng.uniform(0.15, 0.45)
    cx, cy = width * rng.uniform(0.2, 0.8), height * rng.uniform(0.2, 0.8)
    style = rng.uniform()
    parts = 1 if style < 0.6 else int(rng.integers(2, 4))
    for i in range(parts):
        kind = _KINDS[int(rng.integers(len(_KINDS)))]
        dx, dy = (0.0, 0.0) if i == 0 else tuple(rng.uniform(-1.2, 1.2, 2) * r)
        draw.polygon(_outline(rng, kind, cx + dx, cy + dy, r * (1.0 if i == 0 else rng.uniform(0.4, 0.9))), fill=255)
    if 0.45 < style < 0.6:  # a hole, large enough to survive the 64x64 view
        hole = _KINDS[int(rng.integers(len(_KINDS)))]
        draw.polygon(_outline(rng, hole, cx, cy, r * rng.uniform(0.25, 0.5)), fill=0)
    return np.asarray(canvas) > 127


def annotation_box(rng: np.random.Generator, mask: np.ndarray) -> PixelBox:
    """The mask's tight box, loosened by up to 15% of its size per side on half of the objects."""
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = float(xs.min()), float(xs.max() + 1), float(ys.min()), float(ys.max() + 1)
    if rng.uniform() < 0.5:
        w, h = x1 - x0, y1 - y0
        pads = rng.uniform(0, 0.15, 4)
        x0, y0, x1, y1 = x0 - pads[0] * w, y0 - pads[1] * h, x1 + pads[2] * w, y1 + pads[3] * h
    height, width = mask.shape
    return pixel_box((x0, y0, x1, y1), width, height)


def synthetic_object(rng: np.random.Generator) -> tuple[np.ndarray, PixelBox]:
    """A full-size object mask (at least 16 pixels) on a random canvas, and its annotation box."""
    while True:
        width, height = (int(v) for v in rng.integers(96, 257, 2))
        mask = draw_object(rng, width, height)
        if mask.sum() >= 16:
            return mask, annotation_box(rng, mask)


def synthetic_targets(count: int, seed: int | Sequence[int]) -> np.ndarray:
    """``count`` codec targets, (count, 64, 64) float32 in [0, 1], reproducible from ``seed``.

    ``seed`` is anything ``numpy.random.default_rng`` takes, e.g. ``(run_seed, step)``.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((count, 64, 64), dtype=np.float32)
    for i in range(count):
        mask, box = synthetic_object(rng)
        out[i] = crop_to_codec(mask, box)
    return out
