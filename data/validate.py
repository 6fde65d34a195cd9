"""Check a dataset folder against the data contract and report every problem at once.

``data.schema.read_split`` stops at the first bad line, which is right for loading; before a
dataset is versioned, a person wants the whole list, each problem located by file, line and
field. Both apply the one set of record rules in ``data.example``; this module adds what
needs more than a record: the image files, unique ids, no train/test leakage. See DESIGN.md
"Data contract". Nothing here writes to disk.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageFile

from data.example import RecordError, confine_image, parse_record, record_problems
from data.progress import Progress, tracked
from data.schema import SPLITS, DataError, split_lines
from data.tasks import TASKS, ImageSize

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
    root: Path,
    *,
    max_image_pixels: int = 50_000_000,
    max_image_bytes: int = 50 * 2**20,
    progress: Progress | None = None,
) -> ValidationReport:
    """Check ``root/{train,val,test}.jsonl`` and the images they name; never stops early.

    Args:
        root: the dataset folder.
        max_image_pixels: width * height above which an image is refused without decoding it
            (decompression bombs).
        max_image_bytes: file size above which an image is refused without reading it.
        progress: reports each split's lines as they are checked (``validate <split>``).

    Returns:
        A report holding every problem found and, per split and task, how many lines parsed
        as a JSON object with a known task. Call ``raise_if_invalid`` to fail loudly.
    """
    checker = _Checker(Path(root), max_image_pixels, max_image_bytes, progress)
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


class _Checker:
    """Walks the splits in order (train first, for the leakage check), collecting problems."""

    def __init__(self, root: Path, max_pixels: int, max_bytes: int, progress: Progress | None = None):
        self.root, self.progress = root, progress
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
            lines = list(split_lines(path))
        except OSError as err:
            self.add(path, None, None, f"cannot be read ({err.strerror})")
            return
        counts = self.report.counts.setdefault(split, {})
        for lineno, raw in tracked(lines, self.progress, f"validate {split}", unit="line"):
            try:
                record = parse_record(raw)
            except RecordError as err:
                self.add(path, lineno, None, str(err))
                continue
            if record is None:
                continue
            if record.get("task") in TASKS:
                counts[record["task"]] = counts.get(record["task"], 0) + 1
            self.check_record(split, path, lineno, record)

    def check_record(self, split: str, path: Path, lineno: int, record: dict[str, Any]) -> None:
        """The rules of ``data.example`` (with the image's size, so box bounds and detection
        suffixes are checked too), the image file, then the checks across lines."""
        info = self.inspect(record.get("image"))
        for name, message in record_problems(record, self.root, info.size if info else None):
            self.add(path, lineno, name, message)
        if info and info.error:
            self.add(path, lineno, "image", f"{record['image']}: {info.error}")
        self.check_id(path, lineno, record.get("id"))
        if info and info.digest:
            self.check_leakage(split, path, lineno, info.digest)

    def inspect(self, image: Any) -> _ImageInfo | None:
        """The image's info (read once per file), or None when its path breaks the rules."""
        if not isinstance(image, str) or not image.strip():
            return None
        try:
            resolved = confine_image(self.root, image)
        except ValueError:
            return None  # reported by record_problems
        if resolved not in self.images:
            self.images[resolved] = _inspect_image(resolved, self.max_pixels, self.max_bytes)
        return self.images[resolved]

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
