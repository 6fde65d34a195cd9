"""One example: its fields, and the rules a JSON record must follow to be one.

These rules are the one definition both readers use: ``data.schema.read_split`` raises at a
record's first problem, ``data.validate.validate_dataset`` reports every problem of every
record. A problem is a ``(field, message)`` pair; the reader adds the file and the line. See
DESIGN.md "Data contract".

What needs more than the record (the image file itself, ids across lines, train/test
leakage) is checked by ``data.validate`` only.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from data.tasks import TASKS, ImageSize, Task

REQUIRED_FIELDS = ("image", "prefix", "suffix", "task", "id")


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
    masks: list[dict[str, Any]] = field(default_factory=list)  # [{"box", "label", "mask": COCO RLE}, ...]

    def to_json(self) -> str:
        record = {k: v for k, v in asdict(self).items() if v not in ([], {}, None)}
        return json.dumps(record, ensure_ascii=False, sort_keys=False)


ALLOWED_FIELDS = frozenset(Example.__dataclass_fields__)
# What a target field holds, said where an example of a task targeting it lacks it. Keyed by
# field, not task: which task targets which field is the task table's (``Task.target``).
TARGET_SHAPES = {
    "boxes": "[[x0, y0, x1, y1, label], ...] in pixels",
    "fields": "the field names and values to read",
    "masks": '[{"box": [x0, y0, x1, y1], "label": ..., "mask": COCO RLE}, ...] in pixels',
}
PIXEL_TARGETS = frozenset({"boxes", "masks"})  # targets in pixels: rendering them needs the image size
# How far (pixels, each side) an object's mask may reach past its annotated box. COCO boxes are
# floats and polygons rasterise to the pixels they touch, so a mask's tight box can spill past
# its box by a pixel at an edge; more than that is a box that does not frame its mask, and the
# codec, which only sees the crop inside the box, would learn a cut mask.
MASK_BOX_TOLERANCE = 2.0

FieldProblem = tuple[str, str]  # (field, message)


class RecordError(ValueError):
    """A line of a split that is not a JSON object; the message says why."""


def parse_record(raw: bytes) -> dict[str, Any] | None:
    """One line of a split file as its JSON object.

    Args:
        raw: the line's bytes, without its newline.

    Returns:
        The record, or None for a blank line.

    Raises:
        RecordError: the line is not UTF-8, not JSON, or not a JSON object.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RecordError(f"not UTF-8 ({err.reason} at byte {err.start}); save the file as UTF-8") from None
    if not text.strip():
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise RecordError(f"invalid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(record, dict):
        raise RecordError(f"expected a JSON object, got {type(record).__name__}")
    return record


def confine_image(root: Path, image: str) -> Path:
    """The resolved path of ``image`` (relative to the dataset ``root``), kept inside ``root``.

    Raises:
        ValueError: the path is absolute, cannot be resolved (a symlink loop) or leads out of
            the root, directly or through a symlink; the message says which.
    """
    if Path(image).is_absolute():
        raise ValueError(f"path {image!r} is absolute; make it relative to the dataset root")
    resolved_root = Path(root).resolve()
    try:
        path = (resolved_root / image).resolve()
    except (OSError, RuntimeError) as err:  # symlink loops
        raise ValueError(f"path {image!r} cannot be resolved ({err})") from None
    if not path.is_relative_to(resolved_root):
        raise ValueError(f"path {image!r} escapes the dataset root {resolved_root}")
    return path


def record_problems(record: dict[str, Any], root: Path, size: ImageSize | None = None) -> list[FieldProblem]:
    """Every problem of one example's record, in a fixed order (the first is what a reader raises).

    Checks the fields (known, required, typed), the task, the image path (inside ``root``),
    the boxes, the masks (``_mask_problems``), and for a task whose target is not the suffix,
    that the target is there and the suffix is its rendering.

    Args:
        record: the line's JSON object.
        root: the dataset folder the image path is relative to.
        size: the image's size when known; without it, box bounds and the suffix of a
            target in pixels are not checked.

    Returns:
        ``(field, message)`` pairs, empty for a valid record.
    """
    problems = _field_problems(record)
    image = record.get("image")
    if isinstance(image, str) and image.strip():
        try:
            confine_image(root, image)
        except ValueError as err:
            problems.append(("image", str(err)))
    problems += _box_problems(record.get("boxes", []), size)
    problems += _mask_problems(record.get("masks", []), size)
    task = TASKS.get(record["task"]) if isinstance(record.get("task"), str) else None
    if task is not None and task.target != "suffix":
        problems += _target_problems(record, task, size, problems)
    return problems


def _field_problems(record: dict[str, Any]) -> list[FieldProblem]:
    problems = [
        (name, f"unknown field; allowed: {', '.join(sorted(ALLOWED_FIELDS))}")
        for name in sorted(set(record) - ALLOWED_FIELDS)
    ]
    for name in REQUIRED_FIELDS:
        value = record.get(name)
        if name not in record:
            problems.append((name, "missing (every example needs " + ", ".join(REQUIRED_FIELDS) + ")"))
        elif not isinstance(value, str):
            problems.append((name, f"must be a string, got {type(value).__name__}"))
        elif not value.strip():
            problems.append((name, "is empty or whitespace only"))
    task = record.get("task")
    if isinstance(task, str) and task.strip() and task not in TASKS:
        problems.append(("task", f"unknown task {task!r}; known tasks: {', '.join(sorted(TASKS))}"))
    answers = record.get("answers", [])
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        problems.append(("answers", "must be a list of strings"))
    if not isinstance(record.get("fields", {}), dict):
        problems.append(("fields", "must be a JSON object"))
    return problems


def _box_problems(boxes: Any, size: ImageSize | None) -> list[FieldProblem]:
    """Each box is ``[x0, y0, x1, y1, label]``, not inverted, and inside the image if ``size``."""
    if not isinstance(boxes, list):
        return [("boxes", "must be a list of [x0, y0, x1, y1, label]")]
    problems: list[FieldProblem] = []
    for i, box in enumerate(boxes):
        name = f"boxes[{i}]"
        if not isinstance(box, list) or len(box) != 5:
            problems.append((name, f"must be [x0, y0, x1, y1, label], got {shorten(json.dumps(box))}"))
            continue
        x0, y0, x1, y1, label = box
        if not isinstance(label, str) or not label.strip():
            problems.append((name, f"label must be a non-empty string, got {json.dumps(label)}"))
        if not all(_is_number(v) for v in (x0, y0, x1, y1)):
            problems.append((name, f"coordinates must be finite numbers, got {box[:4]!r}"))
        elif not (x0 < x1 and y0 < y1):
            problems.append((name, f"inverted or empty box {box[:4]}: need x0 < x1 and y0 < y1"))
        elif size and not (0 <= x0 and 0 <= y0 and x1 <= size.width and y1 <= size.height):
            problems.append((name, f"box {box[:4]} outside the {size.width}x{size.height} image"))
    return problems


def _mask_problems(objects: Any, size: ImageSize | None) -> list[FieldProblem]:
    """Each object is ``{"box", "label", "mask"}`` with a valid box and label; with ``size``, the
    box is inside the image and the mask is a COCO RLE (or polygons) of the image, not empty,
    and framed by its box: the mask's tight box lies within the box grown by
    ``MASK_BOX_TOLERANCE`` pixels on each side. Problems are located at ``masks[i].<field>``."""
    if not isinstance(objects, list):
        return [("masks", 'must be a list of {"box": [x0, y0, x1, y1], "label": ..., "mask": COCO RLE}')]
    problems: list[FieldProblem] = []
    for i, value in enumerate(objects):
        name = f"masks[{i}]"
        if not isinstance(value, dict) or set(value) != {"box", "label", "mask"}:
            shown = shorten(json.dumps(value, default=str))
            problems.append((name, f'must be {{"box": [x0, y0, x1, y1], "label": ..., "mask": COCO RLE}}, got {shown}'))
            continue
        box, label = value["box"], value["label"]
        if not isinstance(label, str) or not label.strip() or ";" in label:
            problems.append((f"{name}.label", f"must be a non-empty string without ';', got {json.dumps(label)}"))
        if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
            problems.append((f"{name}.box", f"must be [x0, y0, x1, y1] of finite numbers in pixels, got {box!r}"))
            continue
        x0, y0, x1, y1 = box
        if not (x0 < x1 and y0 < y1):
            problems.append((f"{name}.box", f"inverted or empty box {box}: need x0 < x1 and y0 < y1"))
        elif size is not None:
            problems += _mask_in_image(name, box, value["mask"], size)
    return problems


def _mask_in_image(name: str, box: list[float], mask: Any, size: ImageSize) -> list[FieldProblem]:
    """The image-size checks of one object: its box inside the image, its mask usable and framed by the box."""
    from data.masks import MaskFormatError, decode_mask, mask_box

    x0, y0, x1, y1 = box
    if not (0 <= x0 and 0 <= y0 and x1 <= size.width and y1 <= size.height):
        return [(f"{name}.box", f"box {box} outside the {size.width}x{size.height} image")]
    try:
        pixels = decode_mask(mask, size.height, size.width)
    except MaskFormatError as err:
        return [(f"{name}.mask", str(err))]
    if not pixels.any():
        return [(f"{name}.mask", "the mask is empty (no pixel inside)")]
    tight = mask_box(pixels)
    tol = MASK_BOX_TOLERANCE
    if tight[0] < x0 - tol or tight[1] < y0 - tol or tight[2] > x1 + tol or tight[3] > y1 + tol:
        shown = [round(v, 2) for v in tight]
        return [
            (
                f"{name}.mask",
                f"reaches past its box {box}: the mask's pixels span {shown} (x0, y0, x1, y1, edges), "
                f"more than {tol:g} pixels outside; give the object's box around its whole mask",
            )
        ]
    return []


def _target_problems(
    record: dict[str, Any], task: Task, size: ImageSize | None, found: list[FieldProblem]
) -> list[FieldProblem]:
    """The task's target field is present and the suffix renders from it (``found``: the
    record's problems so far; a target or suffix already at fault is not checked further)."""
    target, suffix = task.target, record.get("suffix")
    at_fault = {name.split("[")[0] for name, _ in found}
    if target in at_fault:
        return []
    if not record.get(target):
        shape = TARGET_SHAPES.get(target, f"a non-empty {target}")
        return [(target, f"required for task {task.name!r}: {shape}")]
    if "suffix" in at_fault or not isinstance(suffix, str) or (size is None and target in PIXEL_TARGETS):
        return []
    try:
        expected = task.render_suffix(record[target], size)
    except ValueError as err:
        return [(target, f"cannot be rendered as the {task.name} suffix ({err})")]
    if suffix != expected:
        return [("suffix", f"is {shorten(suffix)} but the {task.name} target renders as {shorten(expected)}")]
    return []


def shorten(text: str, limit: int = 80) -> str:
    """``text`` quoted, cut to ``limit`` characters with ``...`` when longer."""
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
