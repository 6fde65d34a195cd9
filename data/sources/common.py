"""Pieces every source reader shares: confined paths, split names, the image store, and the
progress hook of the long loops."""

from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from data.schema import DataError, Example

IMAGES_DIR = "images"
_SPLIT_NAME = re.compile(r"^(train|training|val|valid|validation|dev|test|testing)(\d{4})?$")
_SPLIT_ALIASES = {"training": "train", "valid": "val", "validation": "val", "dev": "val", "testing": "test"}
_PNG_MODES = {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"}


@dataclass
class Converted:
    """What a reader produces: examples per palitune split, facts for the manifest, and the
    rows it set apart for having no label (``dropped``: split -> reason -> count)."""

    splits: dict[str, list[Example]]
    info: dict[str, Any] = field(default_factory=dict)
    unlabelled: list[Example] = field(default_factory=list)  # suffix "": for prediction only
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)


def canonical_split(name: str) -> str | None:
    """``train``/``val``/``test`` for a source split name (``validation``, ``val2017``, ...);
    ``None`` when the name is not one of them."""
    match = _SPLIT_NAME.match(name.strip().lower())
    if match is None:
        return None
    return _SPLIT_ALIASES.get(match.group(1), match.group(1))


def confined_path(root: Path, relative: Any, *, file: Path | str, line: int | None, field: str) -> Path:
    """``root / relative``, refusing absolute paths, ``..`` and symlinks that lead out of ``root``.

    Raises:
        DataError: located at ``file``/``line``/``field`` when the path is not a plain relative
            path inside ``root``.
    """
    if not isinstance(relative, str) or not relative.strip():
        raise DataError(file, line, field, "missing or not a non-empty string path")
    parts = re.split(r"[\\/]", relative)
    if os.path.isabs(relative) or relative.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", relative):
        raise DataError(file, line, field, f"absolute path {relative!r} refused; give a path relative to {root}")
    if ".." in parts:
        raise DataError(file, line, field, f"path {relative!r} refused: '..' may lead out of {root}")
    path = Path(root) / relative
    if not path.resolve().is_relative_to(Path(root).resolve()):
        raise DataError(file, line, field, f"path {relative!r} leads out of {root} through a symlink")
    return path


def _image_suffix(image: Image.Image) -> str:
    fmt = (image.format or "").lower()
    return {"jpeg": ".jpg", "tiff": ".tif"}.get(fmt, f".{fmt}")


class ImageStore:
    """Images of the dataset being written, named by content (``images/<sha256[:20]>.<ext>``).

    Naming by content never reuses a user's path, and an image shared by several examples
    (several questions about one page) is stored once.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
        self._by_source: dict[Path, tuple[str, tuple[int, int]]] = {}

    def _store(self, data: bytes, suffix: str) -> str:
        name = f"{IMAGES_DIR}/{hashlib.sha256(data).hexdigest()[:20]}{suffix}"
        target = self.root / name
        if not target.exists():
            target.write_bytes(data)
        return name

    def add_file(self, path: Path, *, file: Path | str, line: int | None, field: str) -> tuple[str, tuple[int, int]]:
        """Copy the image at ``path`` in; returns its dataset-relative name and (width, height).

        Raises:
            DataError: when the file is missing or not an image PIL can read.
        """
        if path in self._by_source:
            return self._by_source[path]
        if not path.is_file():
            raise DataError(file, line, field, f"image file not found: {path}")
        try:
            with Image.open(path) as image:  # reads the header only
                size, suffix = image.size, _image_suffix(image)
        except (UnidentifiedImageError, OSError) as err:
            raise DataError(file, line, field, f"not a readable image: {path} ({err})") from None
        name = self._store(path.read_bytes(), suffix)
        self._by_source[path] = (name, size)
        return name, size

    def add_image(self, value: Any, *, file: Path | str, line: int | None, field: str) -> tuple[str, tuple[int, int]]:
        """Encode an in-memory image as PNG; returns its dataset-relative name and (width, height).

        ``value`` is what a Hugging Face column holds: a PIL image (an ``Image`` feature that
        decodes), ``{"bytes": ..., "path": ...}`` (an ``Image`` feature read with
        ``decode=False``), or raw PNG/JPEG bytes (a ``binary`` column, as in ahmed-masry/ChartQA).

        Raises:
            DataError: when the value is anything else, or its bytes are not an image PIL reads.
        """
        if isinstance(value, dict) and value.get("bytes") is None and value.get("path"):
            raise DataError(file, line, field, f"the image is stored by path only ({value['path']!r}), not its bytes")
        data = value.get("bytes") if isinstance(value, dict) else value
        if isinstance(data, bytes | bytearray | memoryview):
            try:
                value = Image.open(io.BytesIO(bytes(data)))
                value.load()
            except (UnidentifiedImageError, OSError) as err:
                raise DataError(file, line, field, f"image bytes do not decode ({err})") from None
        if not isinstance(value, Image.Image):
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            message = f"expected an image (an Image feature or PNG/JPEG bytes), got {type(value).__name__} {shown}"
            raise DataError(file, line, field, message)
        image = value if value.mode in _PNG_MODES else value.convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return self._store(buffer.getvalue(), ".png"), image.size
