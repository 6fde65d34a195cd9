"""Convert datasets in common layouts into a palitune dataset folder (DESIGN.md "Data contract").

``ingest`` reads one of ``FORMATS`` from a local folder (told by ``--format`` or detected from
its files, ``data.sources.detect``) and writes ``images/``, ``train/val/test.jsonl`` and
``manifest.json``, staged beside the destination and swapped in when complete, so a failure
leaves any previous dataset untouched. Splits the source lacks are carved from the ones it has
(``data.sources.carve``); the manifest's ``source`` block says what was read, dropped and carved.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data.atomic import staged_dir
from data.progress import Progress
from data.schema import SPLITS, DataError, Example, write_manifest, write_split
from data.sources.carve import DEFAULT_RATIOS, SplitRatios, all_to_test, carve_splits
from data.sources.coco import read_coco, read_roboflow_coco
from data.sources.common import Converted, ImageStore
from data.sources.detect import LAYOUTS, detect_format
from data.sources.hf import read_hf
from data.sources.paligemma_jsonl import read_paligemma_jsonl, read_roboflow_jsonl
from data.tasks import get_task

FORMATS = tuple(LAYOUTS)  # paligemma-jsonl, roboflow-jsonl, roboflow-coco, coco, hf
UNLABELLED_FILE = "unlabelled.jsonl"
_RATIOS = (DEFAULT_RATIOS.train, DEFAULT_RATIOS.val, DEFAULT_RATIOS.test)


def ingest(
    fmt: str | None,
    src: Path,
    out: Path,
    *,
    task: str | None = None,
    columns: dict[str, str] | None = None,
    config: str | None = None,
    split_ratios: Sequence[float] = _RATIOS,
    seed: int = 0,
    eval_only: bool = False,
    keep_unlabelled: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Convert the dataset at ``src`` (in format ``fmt``) into a palitune dataset at ``out``.

    A split the source lacks is carved from the ones it has (``carve_splits``: seeded, grouped
    by image, in proportion to ``split_ratios``; default 0.8 / 0.1 / 0.1). Images are named by
    content.

    Args:
        fmt: one of ``FORMATS``; ``None`` detects it from the folder's files.
        src: the source folder.
        out: the dataset folder to write; replaced only when the conversion succeeds.
        task: the task of the examples; ``None`` infers it (see each format's module).
        columns: role -> column name, for the ``hf`` format only (see ``data.sources.hf``).
        config: the config of a hub dataset folder with several, for the ``hf`` format only.
        split_ratios: train, val and test shares for carving missing splits; they sum to 1.
        seed: seed of that carving.
        eval_only: put every example in ``test`` (an evaluation-only import; train stays empty).
        keep_unlabelled: write rows without a label to ``unlabelled.jsonl`` (for prediction)
            instead of only counting them as dropped.
        progress: wraps each split's loops over rows, lines, annotations or images, with a
            ``desc`` that starts ``ingest <split>``, to show how far they have got (the CLI
            draws a bar on a terminal); ``None`` shows nothing.

    Returns:
        ``out``.

    Raises:
        DataError: bad input, located by file, line (or row) and field; ratios that do not sum
            to 1; a folder whose layout is none of ``FORMATS``; a source with no training
            examples (unless ``eval_only``).
        ValueError: an unknown format or task, or arguments that do not fit together.
    """
    src, out = Path(src), Path(out)
    ratios = _check_arguments(fmt, src, out, task, columns, config, split_ratios)
    detected = fmt is None
    fmt = fmt or detect_format(src)
    for flag, value in (("--column", columns), ("--config", config)):
        if value and fmt != "hf":
            raise DataError(src, None, flag, f"applies to the hf format only, and this folder is {fmt}")
    with staged_dir(out) as tmp:
        converted = _read(fmt, src, ImageStore(tmp), task, columns, config, keep_unlabelled, progress)
        read = {split: len(converted.splits.get(split, [])) for split in SPLITS}
        if not any(read.values()):
            raise DataError(src, None, None, f"the source has no labelled examples (dropped: {converted.dropped})")
        carved: dict[str, Any] = {}
        if eval_only:
            splits = all_to_test(converted.splits)
        else:
            splits, carved = carve_splits(converted.splits, ratios, seed)
        if not splits.get("train") and not eval_only:
            message = "the source has no training examples; pass --eval-only to import it all into test"
            raise DataError(src, None, None, message)
        for split in SPLITS:
            write_split(tmp, split, splits.get(split, []))
        source: dict[str, Any] = {"format": fmt, "format_detected": detected, "path": str(src), **converted.info}
        source.update(read=read, dropped=converted.dropped, eval_only=eval_only, carved=carved)
        if carved:
            source.update(split_ratios=[ratios.train, ratios.val, ratios.test], seed=seed)
        if converted.unlabelled:
            source["unlabelled"] = {"file": UNLABELLED_FILE, "examples": _write_unlabelled(tmp, converted.unlabelled)}
        write_manifest(tmp, source=source)
    return out


def _read(
    fmt: str,
    src: Path,
    store: ImageStore,
    task: str | None,
    columns: dict[str, str] | None,
    config: str | None,
    keep_unlabelled: bool,
    progress: Progress | None,
) -> Converted:
    if fmt == "paligemma-jsonl":
        return read_paligemma_jsonl(src, store, task=task, progress=progress)
    if fmt == "roboflow-jsonl":
        return read_roboflow_jsonl(src, store, task=task, progress=progress)
    if fmt == "roboflow-coco":
        return read_roboflow_coco(src, store, task=task, progress=progress)
    if fmt == "coco":
        return read_coco(src, store, task=task, progress=progress)
    return read_hf(
        src, store, task=task, columns=columns, config=config, keep_unlabelled=keep_unlabelled, progress=progress
    )


def _write_unlabelled(root: Path, examples: list[Example]) -> int:
    """Rows without a label, as ``image``/``prefix``/``task``/``id`` lines: inputs for prediction."""
    lines = [json.dumps({"image": e.image, "prefix": e.prefix, "task": e.task, "id": e.id}) for e in examples]
    (root / UNLABELLED_FILE).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(lines)


def _check_arguments(
    fmt: str | None,
    src: Path,
    out: Path,
    task: str | None,
    columns: dict[str, str] | None,
    config: str | None,
    split_ratios: Sequence[float],
) -> SplitRatios:
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; formats are {', '.join(FORMATS)}")
    if task is not None:
        try:
            get_task(task)
        except KeyError as err:
            raise ValueError(err.args[0]) from None
    for name, value in (("columns", columns), ("config", config)):
        if value and fmt not in (None, "hf"):
            raise ValueError(f"{name} apply to the hf format only, not {fmt!r}")
    ratios = SplitRatios.of(tuple(split_ratios), where=src)
    if not src.is_dir():
        raise DataError(src, None, None, "source folder not found")
    if src.resolve().is_relative_to(out.resolve()):
        raise ValueError(f"the output {out} would replace the source {src}; write it elsewhere")
    return ratios


__all__ = ["DEFAULT_RATIOS", "FORMATS", "Progress", "SplitRatios", "carve_splits", "detect_format", "ingest"]
