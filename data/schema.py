"""One example is one JSON line; a dataset version is a folder of such lines and images.

The first three fields (``image``, ``prefix``, ``suffix``) are the PaliGemma JSONL
convention, so datasets exported that way load as they are. An example's fields and the
rules one line must follow are in ``data.example``; this module reads and writes split files
and the manifest. See DESIGN.md "Data contract".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from data.example import REQUIRED_FIELDS as REQUIRED_FIELDS  # re-exported: an example's fields and rules live there
from data.example import Example, RecordError, confine_image, parse_record, record_problems

SCHEMA_VERSION = 1
SPLITS = ("train", "val", "test")
MANIFEST_FILE = "manifest.json"


class DataError(ValueError):
    """A problem in a dataset, located by file, line and field."""

    def __init__(self, file: Path | str, line: int | None, field: str | None, message: str):
        self.file, self.line, self.field = str(file), line, field
        where = self.file + (f":{line}" if line is not None else "")
        super().__init__(f"{where}: {field + ': ' if field else ''}{message}")


def split_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """The lines of a split file with their 1-based numbers, split on newlines only.

    ``str.splitlines`` and ``bytes.splitlines`` also break at carriage returns (and the str
    one at U+2028 and friends), which JSON may carry between tokens or inside a string; a
    newline byte never occurs inside a UTF-8 character.

    Raises:
        OSError: the file cannot be read.
    """
    yield from enumerate(path.read_bytes().split(b"\n"), start=1)


def resolve_image(root: Path, image: str, *, file: Path, line: int) -> Path:
    """The image's path inside ``root``; a path escaping the dataset root is refused.

    Raises:
        DataError: at ``file:line``, field ``image``, for an absolute path or one leading out
            of the root (directly or through a symlink).
    """
    try:
        return confine_image(root, image)
    except ValueError as err:
        raise DataError(file, line, "image", str(err)) from None


def read_split(root: Path, split: str) -> list[Example]:
    """Read ``root/<split>.jsonl`` under the rules of ``data.example``.

    The image files are not opened (``data.validate`` does that), so box bounds and the
    suffix of a detection are checked there only.

    Raises:
        DataError: for a missing split file, or at the first bad line, located by file, line
            and field.
    """
    path = Path(root) / f"{split}.jsonl"
    if not path.is_file():
        raise DataError(path, None, None, f"split file not found (a dataset has {', '.join(SPLITS)})")
    examples = []
    for lineno, raw in split_lines(path):
        try:
            record = parse_record(raw)
        except RecordError as err:
            raise DataError(path, lineno, None, str(err)) from None
        if record is None:
            continue
        problems = record_problems(record, Path(root))
        if problems:
            raise DataError(path, lineno, *problems[0])
        examples.append(Example(**record))
    return examples


def write_split(root: Path, split: str, examples: Iterable[Example]) -> int:
    """Write examples to ``root/<split>.jsonl``; returns how many were written."""
    lines = [example.to_json() for example in examples]
    (Path(root) / f"{split}.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(lines)


def iter_dataset(root: Path) -> Iterator[tuple[str, Example]]:
    """Every example of every split, with its split name."""
    for split in SPLITS:
        for example in read_split(root, split):
            yield split, example


def _image_stats(root: Path, images: set[str]) -> dict[str, Any]:
    from PIL import Image

    sizes, total = [], 0
    for name in sorted(images):
        path = Path(root) / name
        total += path.stat().st_size
        with Image.open(path) as image:  # reads the header only
            sizes.append(image.size)
    if not sizes:
        return {"count": 0, "bytes": 0}
    widths, heights = [w for w, _ in sizes], [h for _, h in sizes]
    return {
        "count": len(sizes),
        "bytes": total,
        "width": [min(widths), max(widths)],
        "height": [min(heights), max(heights)],
    }


def write_manifest(root: Path, **fields: Any) -> dict[str, Any]:
    """Write ``manifest.json``: schema version, counts per split and task, image statistics
    (count, bytes, width and height ranges) plus the given fields (e.g. ``source``). A dataset
    with masks records the mask codec that encoded them (``mask_codec``: name and SHA-256)."""
    counts: dict[str, dict[str, int]] = {}
    images: set[str] = set()
    has_masks = False
    for split, example in iter_dataset(root):
        per_task = counts.setdefault(split, {})
        per_task[example.task] = per_task.get(example.task, 0) + 1
        images.add(example.image)
        has_masks = has_masks or bool(example.masks)
    manifest = {"schema_version": SCHEMA_VERSION, "counts": counts, "images": _image_stats(root, images), **fields}
    if has_masks and "mask_codec" not in manifest:
        from data.segment_target import codec_record

        manifest["mask_codec"] = codec_record()
    (Path(root) / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest
