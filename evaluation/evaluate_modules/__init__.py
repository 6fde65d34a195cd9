"""palitune's metrics as Hugging Face ``evaluate`` modules, loadable offline from this folder.

Each sub-folder is one module (``<name>/<name>.py`` plus its metric card, ``README.md``)::

    import evaluate
    from evaluation.evaluate_modules import module_path

    anls = evaluate.load(module_path("anls"))
    anls.compute(predictions=["12.5"], references=[["12.50"]])  # {'anls': 0.8}

A bare name (``evaluate.load("anls")``) would go to the hub; a folder path loads locally.
The modules delegate to ``evaluation.score.score_records``, so they give palitune's numbers by
construction; ``evaluate`` copies a module's file into its modules cache and runs it there,
so they work where palitune is installed (``pip install 'palitune[evaluate]'``). This file
imports no ``evaluate``, and no core module imports this package.
"""

from __future__ import annotations

from pathlib import Path

NAMES = ("vqa_accuracy", "anls", "relaxed_accuracy", "ocr", "field_f1", "caption", "coco_map", "segmentation")
"""The shipped modules, one per metric family of the task table."""


def module_path(name: str) -> str:
    """The folder of module ``name``, to pass to ``evaluate.load``.

    Raises:
        KeyError: ``name`` is not one of ``NAMES``.
    """
    if name not in NAMES:
        raise KeyError(f"no evaluate module {name!r}; expected one of {', '.join(NAMES)}")
    return str(Path(__file__).resolve().parent / name)


__all__ = ["NAMES", "module_path"]
