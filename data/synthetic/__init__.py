"""Synthetic datasets rendered locally with PIL: the embedded default for demo and tests.

One generator per task, named by the task table's entry (``Task.generator``) and resolved
here (``generator_of``, ``GENERATORS``); ``write_synthetic(task, out_dir)`` renders any of
them. Deterministic: the same task, seed and sizes give the same bytes (images, JSONL and
manifest), hence the same DVC hash. No two images of a dataset are the same bytes, so no
evaluation image leaks from train.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from data.synthetic.common import DEFAULT_SIZES, Sample, SplitSizes, SyntheticGenerator, write_dataset
from data.synthetic.shapes import COLOURS, SHAPES, render_shapes_vqa_example, write_shapes_vqa
from data.tasks import TASKS, Task


def generator_of(task: Task) -> SyntheticGenerator:
    """The synthetic generator ``task``'s entry names (``Task.generator``, ``module:attribute``).

    The table names it rather than holding it because the generator modules import the
    table (prefixes, codecs): the module is imported here, when the generator is asked for.

    Raises:
        ValueError: the entry does not name a ``SyntheticGenerator`` of this task (not
            ``module:attribute``, no such module or attribute, another type or task).
    """
    module_name, _, attribute = task.generator.partition(":")
    where = f"task {task.name!r}: generator {task.generator!r}"
    if not module_name or not attribute:
        raise ValueError(f"{where}: expected 'module:attribute'")
    try:
        generator = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"{where}: {err}") from None
    if not isinstance(generator, SyntheticGenerator):
        raise ValueError(f"{where}: is a {type(generator).__name__}, not a SyntheticGenerator")
    if generator.task != task.name:
        raise ValueError(f"{where}: draws examples of task {generator.task!r}")
    return generator


GENERATORS: dict[str, SyntheticGenerator] = {name: generator_of(task) for name, task in TASKS.items()}


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
    "generator_of",
    "write_shapes_vqa",
    "write_synthetic",
]
