"""Bar charts with their values printed on the bars: chart question answering."""

from __future__ import annotations

import random

from PIL import Image, ImageDraw

from data.synthetic.common import Sample, SyntheticGenerator, dark_ink, draw_text, fit_font, light_background
from data.tasks import get_task

BAR_LABELS = ("A", "B", "C")
BAR_COLOURS = ((200, 40, 40), (30, 140, 60), (40, 70, 210), (130, 50, 160), (220, 120, 20))
MAX_VALUE = 9


def draw_bar_chart(rng: random.Random, size: int, values: dict[str, int]) -> Image.Image:
    """A ``size`` x ``size`` chart: one bar per label, its value above it, its label below.

    Bar heights are proportional to the values (1..9), so the chart can be read either way.
    """
    image = light_background(rng, size)
    draw = ImageDraw.Draw(image)
    ink, bar_colour = dark_ink(rng), rng.choice(BAR_COLOURS)
    margin = max(1, size // 32)
    slot = (size - 2 * margin) / len(values)
    face = fit_font(["9"], int(slot), size // 5, largest=size // 4)
    cap = -face.getbbox("9", anchor="ls")[1]  # digit height above the baseline
    axis = size - margin - cap - max(2, size // 16)  # the bars stand on this line
    top = margin + cap + max(2, size // 32)  # highest bar top: leaves room for its value
    unit = (axis - top) / MAX_VALUE
    for i, (label, value) in enumerate(values.items()):
        centre = margin + slot * (i + 0.5)
        half = slot * 0.3
        bar_top = axis - round(unit * value)
        draw.rectangle((round(centre - half), bar_top, round(centre + half) - 1, axis - 1), fill=bar_colour)
        draw_text(draw, (centre, bar_top - max(1, size // 32)), str(value), face, ink, anchor="ms")
        draw_text(draw, (centre, size - margin), label, face, ink, anchor="ms")
    draw.line((margin, axis, size - margin - 1, axis), fill=ink, width=1)
    return image


def draw_chartqa(rng: random.Random, size: int) -> Sample:
    """A three-bar chart (A, B, C, values 1-9); asks "what is the value of B?" -> "7"."""
    values = {label: rng.randint(1, MAX_VALUE) for label in BAR_LABELS}
    image = draw_bar_chart(rng, size, values)
    label = rng.choice(BAR_LABELS)
    answer = str(values[label])
    task = get_task("chartqa")
    return Sample(
        image,
        task.prefix(question=f"what is the value of {label}?"),
        task.render_suffix(answer),
        answers=[answer],
    )


CHARTS_QA = SyntheticGenerator("bar-chartqa", "chartqa", draw_chartqa)
