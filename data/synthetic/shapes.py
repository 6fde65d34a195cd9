"""Coloured shapes on a light background: VQA, captions and detection."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

from data.synthetic.common import DEFAULT_SIZES, Sample, SplitSizes, SyntheticGenerator, light_background, write_dataset
from data.tasks import ImageSize, detect_prefix, get_task

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
NUMBER_WORDS = ("zero", "one", "two", "three")

Box = tuple[int, int, int, int]


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: Box, fill: tuple[int, int, int] | int) -> None:
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


def layout(rng: random.Random, size: int, count: int, gap: int = 2, min_side: int | None = None) -> list[Box]:
    """``count`` squares apart from each other by ``gap`` pixels, each inside the image, with
    sides from ``min_side`` (default a sixth of the image) to a third of it.

    A box covers pixels ``x0..x1`` inclusive (PIL's convention when drawing), so the pixels
    of a shape drawn in it lie in ``[x0, x1 + 1)``, never past ``size``.
    """
    for _ in range(100):
        boxes: list[Box] = []
        for _ in range(count):
            side = rng.randint(min_side or size // 6, size // 3)
            x0, y0 = rng.randint(0, size - side), rng.randint(0, size - side)
            box = (x0, y0, x0 + side - 1, y0 + side - 1)
            if any(not _apart(box, other, gap) for other in boxes):
                break
            boxes.append(box)
        if len(boxes) == count:
            return boxes
    raise RuntimeError(f"cannot place {count} shapes apart in a {size}x{size} image; use a larger image_size")


def located_min_side(size: int) -> int:
    """The smallest shape the tasks that place objects (detect, segment) draw: a quarter of the
    image, 16 px at 64 px, one patch of the vision tower. Below a patch the tiny model placed
    boxes well but told circles from squares badly (a third of 10-13 px shapes mislabelled)."""
    return size // 4


def _apart(a: Box, b: Box, gap: int) -> bool:
    return a[2] + gap < b[0] or b[2] + gap < a[0] or a[3] + gap < b[1] or b[3] + gap < a[1]


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
        draw_shape(draw, shape, _place(rng, size, []), COLOURS[colour])
        return image, f"what colour is the {shape}?", colour
    count, colour = rng.randint(1, 4), rng.choice(list(COLOURS))
    taken: list[tuple[int, int, int, int]] = []
    for _ in range(count):
        taken.append(_place(rng, size, taken))
        draw_shape(draw, rng.choice(SHAPES), taken[-1], COLOURS[colour])
    return image, "how many shapes are there?", str(count)


def draw_shapes_vqa(rng: random.Random, size: int) -> Sample:
    """A shapes VQA example (see ``render_shapes_vqa_example``), answered by ten annotators."""
    task = get_task("vqa")
    image, question, answer = render_shapes_vqa_example(rng, size)
    return Sample(image, task.prefix(question=question), task.render_suffix(answer), answers=[answer] * VQA_ANNOTATORS)


def caption_phrasings(count: int, colour: str, shape: str) -> list[str]:
    """Equivalent captions of ``count`` shapes of one colour; the first is the target.

    ``(1, "orange", "circle")`` -> ``["an orange circle", "one orange circle", "a single orange circle"]``;
    ``(2, "blue", "square")`` -> ``["two blue squares", "2 blue squares", "two squares, all blue"]``.
    """
    if count == 1:
        article = "an" if colour[0] in "aeiou" else "a"
        return [f"{article} {colour} {shape}", f"one {colour} {shape}", f"a single {colour} {shape}"]
    word = NUMBER_WORDS[count]
    return [f"{word} {colour} {shape}s", f"{count} {colour} {shape}s", f"{word} {shape}s, all {colour}"]


def draw_shapes_caption(rng: random.Random, size: int) -> Sample:
    """One to three shapes of one kind and one colour, captioned "two blue squares"."""
    image = light_background(rng, size)
    draw = ImageDraw.Draw(image)
    count, colour, shape = rng.randint(1, 3), rng.choice(list(COLOURS)), rng.choice(SHAPES)
    for box in layout(rng, size, count):
        draw_shape(draw, shape, box, COLOURS[colour])
    captions = caption_phrasings(count, colour, shape)
    task = get_task("caption")
    return Sample(image, task.prefix(), task.render_suffix(captions[0]), answers=captions)


def draw_shapes_detect(rng: random.Random, size: int) -> Sample:
    """One to three shapes of any kind and colour, each with its tight box in pixels.

    The prefix always asks for every shape name, so absent classes are part of the task.
    Boxes are listed top to bottom, then left to right: one order for the model to learn.
    """
    image = light_background(rng, size)
    draw = ImageDraw.Draw(image)
    placed: list[tuple[int, int, int, int, str]] = []
    for box in layout(rng, size, rng.randint(1, 3), min_side=located_min_side(size)):
        shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
        draw_shape(draw, shape, box, COLOURS[colour])
        mask = Image.new("L", (size, size), 0)
        draw_shape(ImageDraw.Draw(mask), shape, box, 255)
        x0, y0, x1, y1 = mask.getbbox() or box  # the pixels the shape covers, right and bottom exclusive
        placed.append((x0, y0, x1, y1, shape))
    boxes: list[list[int | str]] = [list(b) for b in sorted(placed, key=lambda b: (b[1], b[0]))]
    suffix = get_task("detect").render_suffix(boxes, ImageSize(*image.size))
    return Sample(image, detect_prefix(SHAPES), suffix, boxes=boxes)


SHAPES_VQA = SyntheticGenerator("shapes-vqa", "vqa", draw_shapes_vqa, legacy_seeding=True)
SHAPES_CAPTION = SyntheticGenerator("shapes-caption", "caption", draw_shapes_caption)
SHAPES_DETECT = SyntheticGenerator("shapes-detect", "detect", draw_shapes_detect)


def write_shapes_vqa(out_dir: Path, *, seed: int = 0, sizes: SplitSizes = DEFAULT_SIZES, image_size: int = 64) -> Path:
    """Render the shapes VQA dataset into ``out_dir``.

    The folder is rendered beside ``out_dir`` and swapped in when complete, so a failure
    leaves the previous dataset as it was.

    Returns:
        ``out_dir``, holding ``images/``, ``train/val/test.jsonl`` and ``manifest.json``.
    """
    return write_dataset(SHAPES_VQA, out_dir, seed=seed, sizes=sizes, image_size=image_size)
