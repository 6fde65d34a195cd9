"""What every synthetic generator shares: split sizes, one drawn sample, the dataset writer
and the text drawing helpers.

A generator is a function ``draw(rng, image_size) -> Sample``; the writer calls it once per
example with a ``random.Random`` seeded from the dataset seed, the task and the split, so the
same seed and sizes give the same bytes (images, JSONL, manifest), hence the same DVC hash.
"""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from data.atomic import staged_dir
from data.schema import SPLITS, Example, write_manifest, write_split

MAX_DRAWS = 1000  # tries per example to draw an image unlike every one already in the dataset


@dataclass(frozen=True)
class SplitSizes:
    """How many examples each split holds."""

    train: int = 2000
    val: int = 100
    test: int = 200

    def of(self, split: str) -> int:
        return int(getattr(self, split))


DEFAULT_SIZES = SplitSizes()


@dataclass(frozen=True)
class Sample:
    """One drawn example: the image and its targets, before it gets a file name and an id."""

    image: Image.Image
    prefix: str
    suffix: str
    answers: list[str] = field(default_factory=list)
    boxes: list[list[Any]] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    masks: list[dict[str, Any]] = field(default_factory=list)


Draw = Callable[[random.Random, int], Sample]


@dataclass(frozen=True)
class SyntheticGenerator:
    """A named way to draw examples of one task.

    Attributes:
        name: recorded as ``source.generator`` in the manifest, e.g. ``shapes-caption``.
        task: the task table entry every example belongs to.
        draw: ``(rng, image_size) -> Sample``.
        legacy_seeding: shapes VQA predates per-task seeds and distinct images: it seeds each
            split with ``"{seed}-{split_index}"`` and keeps every draw, so datasets versioned
            before keep their bytes and their hash.
    """

    name: str
    task: str
    draw: Draw
    legacy_seeding: bool = False

    def rng(self, seed: int, split: str) -> random.Random:
        """The random source of one split; no other randomness is used."""
        if self.legacy_seeding:
            return random.Random(f"{seed}-{SPLITS.index(split)}")
        return random.Random(f"{seed}-{self.task}-{split}")


def write_dataset(
    generator: SyntheticGenerator,
    out_dir: Path,
    *,
    seed: int = 0,
    sizes: SplitSizes = DEFAULT_SIZES,
    image_size: int = 64,
) -> Path:
    """Render ``generator``'s dataset into ``out_dir``.

    The folder is rendered beside ``out_dir`` and swapped in when complete, so a failure
    leaves the previous dataset as it was.

    Returns:
        ``out_dir``, holding ``images/``, ``train/val/test.jsonl`` and ``manifest.json``.

    Raises:
        RuntimeError: the generator cannot draw enough distinct images for ``sizes``.
    """
    with staged_dir(out_dir) as tmp:
        (tmp / "images").mkdir(parents=True)
        seen: set[str] = set()  # sha256 of every image written: no image repeats, within or across splits
        for split in SPLITS:
            rng = generator.rng(seed, split)
            examples = [_write_example(generator, rng, tmp, split, i, image_size, seen) for i in range(sizes.of(split))]
            write_split(tmp, split, examples)
        write_manifest(tmp, source={"generator": generator.name, "seed": seed, "image_size": image_size})
    return Path(out_dir)


def _write_example(
    generator: SyntheticGenerator, rng: random.Random, root: Path, split: str, index: int, size: int, seen: set[str]
) -> Example:
    """Draw one example (again, while its image repeats an earlier one) and save its image."""
    for _ in range(MAX_DRAWS):
        sample = generator.draw(rng, size)
        buffer = io.BytesIO()
        sample.image.save(buffer, format="PNG", optimize=False)
        digest = hashlib.sha256(buffer.getvalue()).hexdigest()
        if generator.legacy_seeding or digest not in seen:
            break
    else:
        raise RuntimeError(
            f"{generator.name}: no distinct image for {split} example {index} after {MAX_DRAWS} draws; "
            "the generator has too few distinct images for these split sizes, ask for fewer examples"
        )
    seen.add(digest)
    name = f"images/{split}-{index:05d}.png"
    (root / name).write_bytes(buffer.getvalue())
    return Example(
        image=name,
        prefix=sample.prefix,
        suffix=sample.suffix,
        task=generator.task,
        id=f"{split}-{index:05d}",
        answers=sample.answers,
        boxes=sample.boxes,
        fields=sample.fields,
        masks=sample.masks,
    )


def light_background(rng: random.Random, size: int, lightest: int = 255) -> Image.Image:
    """A square image of a random light grey (it also keeps otherwise equal images apart)."""
    grey = rng.randint(lightest - 30, lightest)
    return Image.new("RGB", (size, size), (grey, grey, grey))


def dark_ink(rng: random.Random) -> tuple[int, int, int]:
    """A random near-black for text."""
    grey = rng.randint(0, 60)
    return (grey, grey, grey)


@lru_cache(maxsize=64)
def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's built-in scalable font (Aileron) at ``size`` pixels.

    System fonts differ between machines; this one ships inside Pillow, so the same Pillow
    draws the same glyphs everywhere.

    Raises:
        RuntimeError: Pillow was built without FreeType and has no scalable font.
    """
    loaded = ImageFont.load_default(size=size)
    if not isinstance(loaded, ImageFont.FreeTypeFont):
        raise RuntimeError("Pillow was built without FreeType; install a Pillow wheel from PyPI to draw text")
    return loaded


def stroke_for(size: int) -> int:
    """Outline width that thickens the thin built-in font; none below 20 px, where it would fill the
    gaps inside small glyphs (3 against 8, 6 against 8)."""
    return size // 20


def fit_font(lines: Sequence[str], width: int, height: int, *, largest: int) -> ImageFont.FreeTypeFont:
    """The largest font, up to ``largest`` pixels, in which ``lines`` stacked fit ``width x height``."""
    for size in range(largest, 5, -1):
        face = font(size)
        stroke = stroke_for(size)
        widest = max(face.getbbox(line, stroke_width=stroke)[2] for line in lines)
        if widest <= width and line_pitch(face) * len(lines) <= height:
            return face
    raise ValueError(f"text {list(lines)} does not fit {width}x{height} pixels even at the smallest font")


def cap_height(face: ImageFont.FreeTypeFont) -> int:
    """Height of a capital letter (or a digit) above the baseline, in pixels."""
    return int(-face.getbbox("H", anchor="ls")[1])


def line_pitch(face: ImageFont.FreeTypeFont) -> int:
    """Vertical distance between the baselines of two lines of capitals and digits."""
    return cap_height(face) + max(2, int(face.size) // 4)


def text_box(face: ImageFont.FreeTypeFont, text: str) -> tuple[int, int, int, int]:
    """Pixels ``text`` covers when drawn by ``draw_text`` at (0, 0) on its baseline."""
    left, top, right, bottom = face.getbbox(text, anchor="ls", stroke_width=stroke_for(int(face.size)))
    return int(left), int(top), int(right), int(bottom)


def draw_text(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    face: ImageFont.FreeTypeFont,
    fill: tuple[int, int, int],
    anchor: str = "ls",
) -> None:
    """Draw ``text`` in bold (an outline of its own colour) at ``xy``, placed by ``anchor``."""
    stroke = stroke_for(int(face.size))
    draw.text(xy, text, font=face, fill=fill, anchor=anchor, stroke_width=stroke, stroke_fill=fill)
