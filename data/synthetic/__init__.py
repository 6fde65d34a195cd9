"""Synthetic datasets rendered locally with PIL: the embedded default for demo and tests.

One generator per task (``GENERATORS``); ``write_synthetic(task, out_dir)`` renders any of
them. Deterministic: the same task, seed and sizes give the same bytes (images, JSONL and
manifest), hence the same DVC hash. No two images of a dataset are the same bytes, so no
evaluation image leaks from train.
"""

from __future__ import annotations

from pathlib import Path

from data.synthetic.charts import CHARTS_QA
from data.synthetic.common import DEFAULT_SIZES, Sample, SplitSizes, SyntheticGenerator, write_dataset
from data.synthetic.documents import RECEIPT_DOCVQA, RECEIPT_EXTRACT, WORD_OCR
from data.synthetic.shapes import (
    COLOURS,
    SHAPES,
    SHAPES_CAPTION,
    SHAPES_DETECT,
    SHAPES_VQA,
    render_shapes_vqa_example,
    write_shapes_vqa,
)

GENERATORS: dict[str, SyntheticGenerator] = {
    generator.task: generator
    for generator in (
        SHAPES_CAPTION,
        SHAPES_VQA,
        RECEIPT_DOCVQA,
        CHARTS_QA,
        WORD_OCR,
        SHAPES_DETECT,
        RECEIPT_EXTRACT,
    )
}


def write_synthetic(
    task: str, out_dir: Path, *, seed: int = 0, sizes: SplitSizes = DEFAULT_SIZES, image_size: int = 64
) -> Path:
    """Render the synthetic dataset of ``task`` into ``out_dir`` (swapped in when complete).

    Args:
        task: a task of the task table, e.g. ``vqa``, ``detect``, ``extract``.
        out_dir: the dataset folder; a previous one there is replaced only on success.
        seed: every random choice derives from it.
        sizes: examples per split.
        image_size: width and height of every image, in pixels.

    Returns:
        ``out_dir``, holding ``images/``, ``train/val/test.jsonl`` and ``manifest.json``
        (its ``source`` names the generator, seed and image size).

    Raises:
        KeyError: no generator for ``task``; the message lists those there are.
    """
    try:
        generator = GENERATORS[task]
    except KeyError:
        raise KeyError(f"no synthetic generator for task {task!r}; there are: {', '.join(GENERATORS)}") from None
    return write_dataset(generator, out_dir, seed=seed, sizes=sizes, image_size=image_size)


__all__ = [
    "COLOURS",
    "GENERATORS",
    "SHAPES",
    "Sample",
    "SplitSizes",
    "SyntheticGenerator",
    "render_shapes_vqa_example",
    "write_shapes_vqa",
    "write_synthetic",
]
