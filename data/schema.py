"""One example is one JSON line; a dataset version is a folder of such lines and images.

The first three fields (``image``, ``prefix``, ``suffix``) are the PaliGemma JSONL
convention, so datasets exported that way load as they are. See DESIGN.md "Data contract".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
SPLITS = ("train", "val", "test")
MANIFEST_FILE = "manifest.json"
REQUIRED_FIELDS = ("image", "prefix", "suffix", "task", "id")


class DataError(ValueError):
    """A problem in a dataset, located by file, line and field."""

    def __init__(self, file: Path | str, line: int | None, field: str | None, message: str):
        self.file, self.line, self.field = str(file), line, field
        where = self.file + (f":{line}" if line is not None else "")
        super().__init__(f"{where}: {field + ': ' if field else ''}{message}")


@dataclass
class Example:
    """One training or evaluation example."""

    image: str
    prefix: str
    suffix: str
    task: str
    id: str
    answers: list[str] = field(default_factory=list)
    boxes: list[list[Any]] = field(default_factory=list)  # [[x0, y0, x1, y1, "label"], ...] in pixels
    fields: dict[str, Any] = field(default_factory=dict)  # extraction targets

    def to_json(self) -> str:
        record = {k: v for k, v in asdict(self).items() if v not in ([], {}, None)}
        return json.dumps(record, ensure_ascii=False, sort_keys=False)


def _parse_line(path: Path, lineno: int, line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(path, lineno, None, f"invalid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(record, dict):
        raise DataError(path, lineno, None, "expected a JSON object")
    for name in REQUIRED_FIELDS:
        if not isinstance(record.get(name), str) or not record[name]:
            raise DataError(path, lineno, name, "missing or not a non-empty string")
    answers = record.get("answers", [])
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise DataError(path, lineno, "answers", "must be a list of strings")
    if not isinstance(record.get("boxes", []), list):
        raise DataError(path, lineno, "boxes", "must be a list of [x0, y0, x1, y1, label]")
    if not isinstance(record.get("fields", {}), dict):
        raise DataError(path, lineno, "fields", "must be a JSON object")
    return record


def resolve_image(root: Path, image: str, *, file: Path, line: int) -> Path:
    """The image's path inside ``root``; a path escaping the dataset root is refused."""
    root = root.resolve()
    path = (root / image).resolve()
    if not path.is_relative_to(root):
        raise DataError(file, line, "image", f"path {image!r} escapes the dataset root {root}")
    return path


def read_split(root: Path, split: str) -> list[Example]:
    """Read ``root/<split>.jsonl``; the first bad line raises a located ``DataError``."""
    path = Path(root) / f"{split}.jsonl"
    if not path.is_file():
        raise DataError(path, None, None, f"split file not found (a dataset has {', '.join(SPLITS)})")
    examples = []
    # split on newlines only: str.splitlines also breaks at U+2028 and friends, which JSON may
    # carry inside a string; a newline byte never occurs inside a UTF-8 character
    for lineno, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(path, lineno, None, f"not UTF-8 ({err.reason} at byte {err.start})") from None
        if not line.strip():
            continue
        record = _parse_line(path, lineno, line)
        resolve_image(Path(root), record["image"], file=path, line=lineno)
        examples.append(Example(**{k: record[k] for k in Example.__dataclass_fields__ if k in record}))
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
    (count, bytes, width and height ranges) plus the given fields (e.g. ``source``)."""
    counts: dict[str, dict[str, int]] = {}
    images: set[str] = set()
    for split, example in iter_dataset(root):
        per_task = counts.setdefault(split, {})
        per_task[example.task] = per_task.get(example.task, 0) + 1
        images.add(example.image)
    manifest = {"schema_version": SCHEMA_VERSION, "counts": counts, "images": _image_stats(root, images), **fields}
    (Path(root) / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest
