"""Convert datasets in common formats into a palitune dataset folder (DESIGN.md "Data contract").

``ingest`` reads one of ``FORMATS`` from a local folder and writes ``images/``,
``train/val/test.jsonl`` and ``manifest.json``, staged beside the destination and swapped in
when complete, so a failure leaves any previous dataset untouched.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from data.atomic import staged_dir
from data.schema import SPLITS, DataError, Example, write_manifest, write_split
from data.sources.coco import read_coco
from data.sources.common import ImageStore
from data.sources.hf import read_hf
from data.sources.paligemma_jsonl import read_paligemma_jsonl
from data.tasks import get_task

FORMATS = ("paligemma-jsonl", "hf", "coco")


def ingest(
    fmt: str,
    src: Path,
    out: Path,
    *,
    task: str | None = None,
    columns: dict[str, str] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> Path:
    """Convert the dataset at ``src`` (in format ``fmt``) into a palitune dataset at ``out``.

    When the source has no validation examples, ``val_fraction`` of the training images
    move to val, chosen by a seeded hash of their content so the choice is stable; every
    example of an image goes to the same split. Images are named by content.

    Args:
        fmt: one of ``FORMATS``.
        src: the source folder.
        out: the dataset folder to write; replaced only when the conversion succeeds.
        task: the task of the examples; ``None`` infers it (see each format's module).
        columns: role -> column name, for the ``hf`` format only (see ``data.sources.hf``).
        val_fraction: share of train images carved into val when the source has no val split.
        seed: seed of that carving.

    Returns:
        ``out``.

    Raises:
        DataError: bad input, located by file, line (or row) and field.
        ValueError: an unknown format or task, or arguments that do not fit together.
    """
    src, out = Path(src), Path(out)
    _check_arguments(fmt, src, out, task, columns, val_fraction)
    with staged_dir(out) as tmp:
        store = ImageStore(tmp)
        if fmt == "paligemma-jsonl":
            converted = read_paligemma_jsonl(src, store, task=task)
        elif fmt == "hf":
            converted = read_hf(src, store, task=task, columns=columns)
        else:
            converted = read_coco(src, store, task=task)
        if not converted.splits.get("train"):
            raise DataError(src, None, None, "the source has no training examples")
        splits, carved = carve_val(converted.splits, val_fraction, seed)
        for split in SPLITS:
            write_split(tmp, split, splits.get(split, []))
        source: dict[str, Any] = {"format": fmt, "path": str(src), **converted.info}
        if carved:
            source.update(val_carved_from_train=carved, val_fraction=val_fraction, seed=seed)
        write_manifest(tmp, source=source)
    return out


def _check_arguments(
    fmt: str, src: Path, out: Path, task: str | None, columns: dict[str, str] | None, val_fraction: float
) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; formats are {', '.join(FORMATS)}")
    if task is not None:
        try:
            get_task(task)
        except KeyError as err:
            raise ValueError(err.args[0]) from None
    if columns and fmt != "hf":
        raise ValueError(f"columns apply to the hf format only, not {fmt!r}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if not src.is_dir():
        raise DataError(src, None, None, "source folder not found")
    if src.resolve().is_relative_to(out.resolve()):
        raise ValueError(f"the output {out} would replace the source {src}; write it elsewhere")


def carve_val(splits: dict[str, list[Example]], fraction: float, seed: int) -> tuple[dict[str, list[Example]], int]:
    """Move ``fraction`` of the train images (with all their examples) to val when val is
    empty; returns the new splits and how many examples moved.

    Images are ranked by ``sha256(seed, image name)``, and names are content hashes, so the
    same source and seed always give the same val split whatever the example order.
    """
    train = splits.get("train", [])
    images = sorted({example.image for example in train})
    if splits.get("val") or fraction <= 0 or len(images) < 2:
        return splits, 0
    count = min(len(images) - 1, max(1, round(fraction * len(images))))
    ranked = sorted(images, key=lambda name: hashlib.sha256(f"{seed}:{name}".encode()).hexdigest())
    chosen = set(ranked[:count])
    val = [example for example in train if example.image in chosen]
    new = {**splits, "train": [e for e in train if e.image not in chosen], "val": val}
    return new, len(val)


__all__ = ["FORMATS", "carve_val", "ingest"]
