"""Coloured shapes with their masks: the synthetic ``segment`` task.

One or two shapes of any kind and colour per image, apart from each other; each object is
its tight box, its shape name and its mask as a COCO RLE, listed top to bottom then left to
right. The prefix asks for every shape name, as detection's does.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from data.masks import encode_rle
from data.synthetic.common import Sample, SyntheticGenerator, light_background
from data.synthetic.shapes import COLOURS, SHAPES, draw_shape, layout, located_min_side
from data.tasks import ImageSize, get_task, segment_prefix


def draw_shapes_segment(rng: random.Random, size: int) -> Sample:
    """One or two shapes, each with its box and its mask (see the module doc)."""
    image = light_background(rng, size)
    draw = ImageDraw.Draw(image)
    objects: list[dict[str, Any]] = []
    for box in layout(rng, size, rng.randint(1, 2), min_side=located_min_side(size)):
        shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
        draw_shape(draw, shape, box, COLOURS[colour])
        canvas = Image.new("L", (size, size), 0)
        draw_shape(ImageDraw.Draw(canvas), shape, box, 255)
        x0, y0, x1, y1 = canvas.getbbox() or (box[0], box[1], box[2] + 1, box[3] + 1)
        mask = np.asarray(canvas) > 0
        objects.append({"box": [x0, y0, x1, y1], "label": shape, "mask": encode_rle(mask)})
    objects.sort(key=lambda o: (o["box"][1], o["box"][0]))
    suffix = get_task("segment").render_suffix(objects, ImageSize(*image.size))
    return Sample(image, segment_prefix(SHAPES), suffix, masks=objects)


SHAPES_SEGMENT = SyntheticGenerator("shapes-segment", "segment", draw_shapes_segment)
