"""Synthetic datasets rendered locally with PIL: the embedded default for demo and tests.

Deterministic: the same seed and sizes give the same bytes (images and JSONL), hence the
same DVC hash.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from data.atomic import staged_dir
from data.schema import SPLITS, Example, write_manifest, write_split
from data.tasks import get_task

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (240, 210, 20),
    "purple": (140, 50, 170),
    "orange": (250, 140, 20),
}
SHAPES = ("circle", "square", "triangle")
VQA_ANNOTATORS = 10  # VQAv2 keeps ten human answers per question; VQA accuracy expects them


@dataclass(frozen=True)
class SplitSizes:
    train: int = 2000
    val: int = 100
    test: int = 200

    def of(self, split: str) -> int:
        return int(getattr(self, split))


Box = tuple[int, int, int, int]


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: Box, fill: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=fill)


def _place(rng: random.Random, size: int, taken: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    """A box of random size that does not overlap boxes already placed (best effort)."""
    for _ in range(50):
        side = rng.randint(size // 6, size // 3)
        x0, y0 = rng.randint(0, size - side), rng.randint(0, size - side)
        box = (x0, y0, x0 + side, y0 + side)
        if all(box[2] < t[0] or t[2] < box[0] or box[3] < t[1] or t[3] < box[1] for t in taken):
            return box
    return box


def render_shapes_vqa_example(rng: random.Random, size: int) -> tuple[Image.Image, str, str]:
    """One image with its question and answer.

    Half the questions ask the colour of the only shape ("what colour is the circle?"),
    half count shapes of one colour ("how many shapes are there?", 1-4).
    """
    grey = rng.randint(235, 255)
    image = Image.new("RGB", (size, size), (grey, grey, grey))
    draw = ImageDraw.Draw(image)
    if rng.random() < 0.5:
        shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
        _draw_shape(draw, shape, _place(rng, size, []), COLOURS[colour])
        return image, f"what colour is the {shape}?", colour
    count, colour = rng.randint(1, 4), rng.choice(list(COLOURS))
    taken: list[tuple[int, int, int, int]] = []
    for _ in range(count):
        taken.append(_place(rng, size, taken))
        _draw_shape(draw, rng.choice(SHAPES), taken[-1], COLOURS[colour])
    return image, "how many shapes are there?", str(count)


def write_shapes_vqa(out_dir: Path, *, seed: int = 0, sizes: SplitSizes = SplitSizes(), image_size: int = 64) -> Path:
    """Render the shapes VQA dataset into ``out_dir``.

    The folder is rendered beside ``out_dir`` and swapped in when complete, so a failure
    leaves the previous dataset as it was.

    Returns:
        ``out_dir``, holding ``images/``, ``train/val/test.jsonl`` and ``manifest.json``.
    """
    with staged_dir(out_dir) as tmp:
        _render_shapes_vqa(tmp, seed=seed, sizes=sizes, image_size=image_size)
    return Path(out_dir)


def _render_shapes_vqa(out_dir: Path, *, seed: int, sizes: SplitSizes, image_size: int) -> None:
    task = get_task("vqa")
    (out_dir / "images").mkdir(parents=True)
    for split_index, split in enumerate(SPLITS):
        rng = random.Random(f"{seed}-{split_index}")
        examples = []
        for i in range(sizes.of(split)):
            image, question, answer = render_shapes_vqa_example(rng, image_size)
            name = f"images/{split}-{i:05d}.png"
            image.save(out_dir / name, format="PNG", optimize=False)
            examples.append(
                Example(
                    image=name,
                    prefix=task.prefix(question=question),
                    suffix=task.render_suffix(answer),
                    task=task.name,
                    id=f"{split}-{i:05d}",
                    answers=[answer] * VQA_ANNOTATORS,
                )
            )
        write_split(out_dir, split, examples)
    write_manifest(out_dir, source={"generator": "shapes-vqa", "seed": seed, "image_size": image_size})
