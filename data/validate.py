"""Check a dataset folder against the data contract and report every problem at once.

``data.schema.read_split`` stops at the first bad line, which is right for loading; before a
dataset is versioned, a person wants the whole list, each problem located by file, line and
field. See DESIGN.md "Data contract". Nothing here writes to disk.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageFile

from data.schema import REQUIRED_FIELDS, SPLITS, DataError, Example
from data.tasks import TASKS, ImageSize, get_task

ALLOWED_FIELDS = frozenset(Example.__dataclass_fields__)
EVAL_SPLITS = tuple(split for split in SPLITS if split != "train")
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk every complete PNG ends with


@dataclass(frozen=True)
class Problem:
    """One problem, located by file (the split's JSONL), 1-based line and JSON field."""

    file: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line is not None else "")
        return f"{where}: {self.field + ': ' if self.field else ''}{self.message}"


class InvalidDatasetError(DataError):
    """A dataset with problems; ``problems`` holds them all, the message one per line."""

    def __init__(self, root: Path, problems: list[Problem]):
        self.problems = list(problems)
        listing = "\n".join(str(problem) for problem in problems)
        super().__init__(root, None, None, f"{len(problems)} problem(s); fix them and validate again:\n{listing}")


@dataclass
class ValidationReport:
    """What ``validate_dataset`` found: problems, and examples that parsed per split and task."""

    root: Path
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_invalid(self) -> None:
        """Raises ``InvalidDatasetError`` (a ``DataError``) listing every problem, if any."""
        if self.problems:
            raise InvalidDatasetError(self.root, self.problems)


@dataclass(frozen=True)
class _ImageInfo:
    size: ImageSize | None  # None when the image cannot be used
    digest: str | None  # sha256 of the file's bytes, for the leakage check
    error: str | None


def validate_dataset(
    root: Path, *, max_image_pixels: int = 50_000_000, max_image_bytes: int = 50 * 2**20
) -> ValidationReport:
    """Check ``root/{train,val,test}.jsonl`` and the images they name; never stops early.

    Args:
        root: the dataset folder.
        max_image_pixels: width * height above which an image is refused without decoding it
            (decompression bombs).
        max_image_bytes: file size above which an image is refused without reading it.

    Returns:
        A report holding every problem found and, per split and task, how many lines parsed
        as a JSON object with a known task. Call ``raise_if_invalid`` to fail loudly.
    """
    checker = _Checker(Path(root), max_image_pixels, max_image_bytes)
    with _strict_pil():
        for split in SPLITS:
            checker.check_split(split)
    return checker.report


@contextmanager
def _strict_pil() -> Iterator[None]:
    """Decode with PIL refusing truncated files and bombs, whatever another module set."""
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved


def _inspect_image(path: Path, max_pixels: int, max_bytes: int) -> _ImageInfo:
    """Read the image file once: its size in pixels, its hash, or what is wrong with it."""
    if not path.is_file():
        return _ImageInfo(None, None, "file not found; add it under the dataset root or fix the path")
    try:
        nbytes = path.stat().st_size
        if nbytes == 0:
            return _ImageInfo(None, None, "file is empty (0 bytes); re-export the image")
        if nbytes > max_bytes:
            return _ImageInfo(None, None, f"file is {nbytes} bytes, over the limit of {max_bytes}; downscale it")
        data = path.read_bytes()
    except OSError as err:
        return _ImageInfo(None, None, f"cannot be read ({err.strerror})")
    digest = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:  # checked on the header, before any pixel is decoded
                return _ImageInfo(
                    None, digest, f"{width}x{height} pixels, over the limit of {max_pixels}; downscale it"
                )
            image_format = image.format
            image.verify()  # chunk checksums: catches a PNG cut after its pixel data
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        return _ImageInfo(None, digest, f"possible decompression bomb ({err}); downscale it")
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, EOFError... on corrupt data
        return _ImageInfo(None, digest, f"not a readable image ({type(err).__name__}: {err}); re-export it")
    if image_format == "PNG" and not data.endswith(_PNG_END):
        return _ImageInfo(None, digest, "truncated PNG (does not end with its IEND chunk); re-export it")
    return _ImageInfo(ImageSize(width, height), digest, None)


def _shorten(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


class _Checker:
    """Walks the splits in order (train first, for the leakage check), collecting problems."""

    def __init__(self, root: Path, max_pixels: int, max_bytes: int):
        self.root, self.resolved_root = root, root.resolve()
        self.max_pixels, self.max_bytes = max_pixels, max_bytes
        self.report = ValidationReport(root)
        self.images: dict[Path, _ImageInfo] = {}
        self.ids: dict[str, str] = {}  # id -> "file:line" of its first use
        self.train_digests: dict[str, str] = {}  # image sha256 -> "file:line" of its first train use

    def add(self, file: Path, line: int | None, name: str | None, message: str) -> None:
        self.report.problems.append(Problem(str(file), line, name, message))

    def check_split(self, split: str) -> None:
        path = self.root / f"{split}.jsonl"
        if not path.is_file():
            self.add(path, None, None, f"split file not found (a dataset has {', '.join(SPLITS)})")
            return
        try:
            lines = path.read_bytes().splitlines()
        except OSError as err:
            self.add(path, None, None, f"cannot be read ({err.strerror})")
            return
        counts = self.report.counts.setdefault(split, {})
        for lineno, raw in enumerate(lines, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                self.add(path, lineno, None, f"not UTF-8 ({err.reason} at byte {err.start}); save the file as UTF-8")
                continue
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as err:
                self.add(path, lineno, None, f"invalid JSON ({err.msg} at column {err.colno})")
                continue
            if not isinstance(record, dict):
                self.add(path, lineno, None, f"expected a JSON object, got {type(record).__name__}")
                continue
            if record.get("task") in TASKS:
                counts[record["task"]] = counts.get(record["task"], 0) + 1
            self.check_record(split, path, lineno, record)

    def check_record(self, split: str, path: Path, lineno: int, record: dict[str, Any]) -> None:
        """Fields, image, boxes and canonical suffix of one example, then cross-line checks."""
        for name in sorted(set(record) - ALLOWED_FIELDS):
            self.add(path, lineno, name, f"unknown field; allowed: {', '.join(sorted(ALLOWED_FIELDS))}")
        for name in REQUIRED_FIELDS:
            value = record.get(name)
            if name not in record:
                self.add(path, lineno, name, "missing (every example needs " + ", ".join(REQUIRED_FIELDS) + ")")
            elif not isinstance(value, str):
                self.add(path, lineno, name, f"must be a string, got {type(value).__name__}")
            elif not value.strip():
                self.add(path, lineno, name, "is empty or whitespace only")
        task = record.get("task")
        if isinstance(task, str) and task.strip() and task not in TASKS:
            self.add(path, lineno, "task", f"unknown task {task!r}; known tasks: {', '.join(sorted(TASKS))}")
        answers = record.get("answers", [])
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            self.add(path, lineno, "answers", "must be a list of strings")
        fields = record.get("fields", {})
        if not isinstance(fields, dict):
            self.add(path, lineno, "fields", "must be a JSON object")
        elif task == "extract" and not fields:
            self.add(path, lineno, "fields", "required for task 'extract': the field names and values to read")
        info = self.check_image(path, lineno, record.get("image"))
        size = info.size if info else None
        boxes_ok = self.check_boxes(path, lineno, task, record.get("boxes", []), size)
        self.check_suffix(path, lineno, record, size if boxes_ok else None)
        self.check_id(path, lineno, record.get("id"))
        if info and info.digest:
            self.check_leakage(split, path, lineno, info.digest)

    def check_image(self, path: Path, lineno: int, image: Any) -> _ImageInfo | None:
        """The image's info (read once per file), or None when its path is unusable."""
        if not isinstance(image, str) or not image.strip():
            return None  # already reported as a required field
        if Path(image).is_absolute():
            self.add(path, lineno, "image", f"path {image!r} is absolute; make it relative to the dataset root")
            return None
        try:
            resolved = (self.resolved_root / image).resolve()
        except (OSError, RuntimeError) as err:  # symlink loops
            self.add(path, lineno, "image", f"path {image!r} cannot be resolved ({err})")
            return None
        if not resolved.is_relative_to(self.resolved_root):
            self.add(path, lineno, "image", f"path {image!r} escapes the dataset root {self.resolved_root}")
            return None
        if resolved not in self.images:
            self.images[resolved] = _inspect_image(resolved, self.max_pixels, self.max_bytes)
        info = self.images[resolved]
        if info.error:
            self.add(path, lineno, "image", f"{image}: {info.error}")
        return info

    def check_boxes(self, path: Path, lineno: int, task: Any, boxes: Any, size: ImageSize | None) -> bool:
        """Report bad boxes; True when every box is well formed (bounds checked if ``size``)."""
        if not isinstance(boxes, list):
            self.add(path, lineno, "boxes", "must be a list of [x0, y0, x1, y1, label]")
            return False
        if task == "detect" and not boxes:
            self.add(path, lineno, "boxes", "required for task 'detect': [[x0, y0, x1, y1, label], ...] in pixels")
        problems_before = len(self.report.problems)
        for i, box in enumerate(boxes):
            name = f"boxes[{i}]"
            if not isinstance(box, list) or len(box) != 5:
                self.add(path, lineno, name, f"must be [x0, y0, x1, y1, label], got {_shorten(json.dumps(box))}")
                continue
            x0, y0, x1, y1, label = box
            if not isinstance(label, str) or not label.strip():
                self.add(path, lineno, name, f"label must be a non-empty string, got {json.dumps(label)}")
            if not all(_is_number(v) for v in (x0, y0, x1, y1)):
                self.add(path, lineno, name, f"coordinates must be finite numbers, got {box[:4]!r}")
                continue
            if not (x0 < x1 and y0 < y1):
                self.add(path, lineno, name, f"inverted or empty box {box[:4]}: need x0 < x1 and y0 < y1")
            elif size and not (0 <= x0 and 0 <= y0 and x1 <= size.width and y1 <= size.height):
                self.add(path, lineno, name, f"box {box[:4]} outside the {size.width}x{size.height} image")
        return len(self.report.problems) == problems_before

    def check_suffix(self, path: Path, lineno: int, record: dict[str, Any], size: ImageSize | None) -> None:
        """The suffix of detect and extract examples must be the canonical rendering of the target."""
        task, suffix = record.get("task"), record.get("suffix")
        if not isinstance(suffix, str):
            return
        if task == "extract" and isinstance(record.get("fields"), dict) and record["fields"]:
            expected = get_task("extract").render_suffix(record["fields"])
        elif task == "detect" and size is not None and record.get("boxes"):
            expected = get_task("detect").render_suffix(record["boxes"], size)
        else:
            return
        if suffix != expected:
            self.add(
                path, lineno, "suffix", f"is {_shorten(suffix)} but the {task} target renders as {_shorten(expected)}"
            )

    def check_id(self, path: Path, lineno: int, example_id: Any) -> None:
        if not isinstance(example_id, str) or not example_id.strip():
            return
        first = self.ids.setdefault(example_id, f"{path}:{lineno}")
        if first != f"{path}:{lineno}":
            self.add(path, lineno, "id", f"duplicate id {example_id!r}, first used at {first}; ids must be unique")

    def check_leakage(self, split: str, path: Path, lineno: int, digest: str) -> None:
        if split == "train":
            self.train_digests.setdefault(digest, f"{path}:{lineno}")
        elif split in EVAL_SPLITS and digest in self.train_digests:
            self.add(
                path,
                lineno,
                "image",
                f"same image bytes as train example at {self.train_digests[digest]}; remove it from {split} or train",
            )
