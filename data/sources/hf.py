"""Hugging Face datasets from local files: a ``save_to_disk`` folder, parquet files, or an
imagefolder with ``metadata.jsonl``/``metadata.csv``.

Columns map to roles (``image``, ``question``, ``answers``, ``captions``) with defaults per
style, which ``columns`` overrides:

- DocVQA: ``question``, ``answers`` (list of strings), ``image`` -> task docvqa (or vqa);
- ChartQA: ``query``, ``label`` (string or list), ``image`` -> task chartqa;
- COCO captions: ``image``, ``captions`` or ``sentences`` (list) or ``caption`` -> caption.

Parquet and imagefolder sources are streamed, so nothing is copied into the datasets cache.
``datasets`` is imported inside the loaders: it is slow to import.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.schema import DataError, Example
from data.sources.common import Converted, ImageStore, canonical_split, confined_path
from data.tasks import get_task

STYLE_COLUMNS: dict[str, dict[str, str]] = {
    "docvqa": {"image": "image", "question": "question", "answers": "answers"},
    "chartqa": {"image": "image", "question": "query", "answers": "label"},
    "caption": {"image": "image", "captions": "captions"},
}
CAPTION_COLUMNS = ("captions", "sentences", "caption")
TASK_STYLES = {"docvqa": "docvqa", "vqa": "docvqa", "chartqa": "chartqa", "caption": "caption"}
METADATA_FILES = ("metadata.jsonl", "metadata.csv")


@dataclass(frozen=True)
class _Part:
    """Rows of one source split (or one parquet file of it), with where to point errors."""

    split: str  # palitune split
    source_split: str
    label: str  # the file or ``folder[split]`` that errors name; their line is the row index
    columns: list[str]
    rows: Iterable[dict[str, Any]]


def read_hf(
    src: Path, store: ImageStore, *, task: str | None = None, columns: dict[str, str] | None = None
) -> Converted:
    """Read a local Hugging Face dataset, encoding its images into ``store`` as PNG.

    Args:
        task: docvqa, vqa, chartqa or caption; ``None`` chooses from the columns present.
        columns: role -> column name, overriding the style's defaults (``{"question": "q"}``).

    Raises:
        DataError: no dataset found, an unknown split, a missing column or a bad value, located
            by file (or ``folder[split]``), row index and column.
        ValueError: a task or column role the hf format does not handle.
    """
    layout, parts = _load(src)
    if not parts:
        raise DataError(src, None, None, f"the {layout} dataset has no splits")
    task_name, mapping = choose_columns(parts[0].columns, task, columns, label=parts[0].label)
    for part in parts:
        for role, column in mapping.items():
            if column not in part.columns:
                raise DataError(
                    part.label,
                    None,
                    column,
                    f"column not found (the {role}); columns are {part.columns}; map yours with "
                    f"columns={{{role!r}: '<column>'}}",
                )
    splits: dict[str, list[Example]] = {}
    for part in parts:
        examples = splits.setdefault(part.split, [])
        for row_index, row in enumerate(part.rows):
            example_id = f"{part.split}-{len(examples):05d}"
            examples.append(_example(row, task_name, mapping, store, example_id, where=(part.label, row_index)))
    split_names = {part.source_split: part.split for part in parts}
    return Converted(splits, info={"layout": layout, "task": task_name, "columns": mapping, "splits": split_names})


def choose_columns(
    present: list[str], task: str | None, columns: dict[str, str] | None, *, label: str = ""
) -> tuple[str, dict[str, str]]:
    """The task and the role -> column mapping for a dataset with columns ``present``.

    With ``task`` its style's defaults apply; without, the first style (docvqa, chartqa,
    caption) whose columns are all present wins. ``columns`` overrides either.
    """
    overrides = dict(columns or {})
    roles = {role for mapping in STYLE_COLUMNS.values() for role in mapping}
    if unknown := sorted(set(overrides) - roles):
        raise ValueError(f"unknown column roles {unknown}; roles are {sorted(roles)}")
    if task is not None:
        if task not in TASK_STYLES:
            raise ValueError(f"the hf format handles tasks {sorted(TASK_STYLES)}, not {task!r}")
        style = TASK_STYLES[task]
        if extra := sorted(set(overrides) - set(STYLE_COLUMNS[style])):
            raise ValueError(f"task {task!r} has no column roles {extra}; its roles are {list(STYLE_COLUMNS[style])}")
        return task, _mapping(style, present, overrides)
    for style in STYLE_COLUMNS:
        if set(overrides) <= set(STYLE_COLUMNS[style]):
            mapping = _mapping(style, present, overrides)
            if set(mapping.values()) <= set(present):
                return style, mapping
    expected = "; ".join(f"{style}: {sorted(cols.values())}" for style, cols in STYLE_COLUMNS.items())
    message = f"cannot tell the task from columns {present} ({expected}); pass task= and columns="
    raise DataError(label, None, "columns", message)


def _mapping(style: str, present: list[str], overrides: dict[str, str]) -> dict[str, str]:
    defaults = dict(STYLE_COLUMNS[style])
    if style == "caption":
        defaults["captions"] = next((c for c in CAPTION_COLUMNS if c in present), "captions")
    return {role: overrides.get(role, column) for role, column in defaults.items()}


def _example(
    row: dict[str, Any],
    task_name: str,
    mapping: dict[str, str],
    store: ImageStore,
    example_id: str,
    *,
    where: tuple[str, int],
) -> Example:
    label, line = where
    image, _ = store.add_image(row[mapping["image"]], file=label, line=line, field=mapping["image"])
    task = get_task(task_name)
    if "captions" in mapping:
        captions = _strings(row, mapping["captions"], where)
        return Example(image, task.prefix(), task.render_suffix(captions[0]), task.name, example_id, answers=captions)
    question = row[mapping["question"]]
    if not isinstance(question, str) or not question.strip():
        raise DataError(label, line, mapping["question"], f"expected a non-empty string, got {question!r}")
    answers = _strings(row, mapping["answers"], where)
    prefix = task.prefix(question=" ".join(question.split()))
    return Example(image, prefix, task.render_suffix(answers[0]), task.name, example_id, answers=answers)


def _strings(row: dict[str, Any], column: str, where: tuple[str, int]) -> list[str]:
    """A string or a list of strings, as a non-empty list of whitespace-normalised strings."""
    value = row[column]
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise DataError(where[0], where[1], column, f"expected a non-empty string or list of them, got {value!r}")
    return [" ".join(v.split()) for v in values]


def _target_split(name: str, label: str, taken: dict[str, str]) -> str:
    split = canonical_split(name)
    if split is None:
        raise DataError(label, None, "split", f"unknown split {name!r}; expected train, validation/val/valid or test")
    if taken.setdefault(split, name) != name:
        raise DataError(label, None, "split", f"splits {taken[split]!r} and {name!r} both map to {split!r}")
    return split


def _load(src: Path) -> tuple[str, list[_Part]]:
    if (src / "dataset_dict.json").is_file() or (src / "state.json").is_file():
        return "save_to_disk", _load_from_disk(src)
    parquet = sorted(src.glob("*.parquet")) + sorted((src / "data").glob("*.parquet"))
    if parquet:
        return "parquet", _load_parquet(parquet)
    metadata = sorted(path for name in METADATA_FILES for path in src.rglob(name))
    if metadata:
        return "imagefolder", _load_imagefolder(src, metadata)
    raise DataError(
        src,
        None,
        None,
        "no Hugging Face dataset found: expected a save_to_disk folder (dataset_dict.json or state.json), "
        "parquet files (train-*.parquet, data/train-*.parquet) or an imagefolder with metadata.jsonl/metadata.csv",
    )


def _load_from_disk(src: Path) -> list[_Part]:
    from datasets import Dataset, load_from_disk

    loaded = load_from_disk(str(src))
    named = {"train": loaded} if isinstance(loaded, Dataset) else dict(loaded)
    taken: dict[str, str] = {}
    parts = []
    for name, dataset in named.items():
        label = f"{src}[{name}]"
        parts.append(_Part(_target_split(name, label, taken), name, label, list(dataset.column_names), dataset))
    return parts


def _load_parquet(files: list[Path]) -> list[_Part]:
    from datasets import load_dataset

    taken: dict[str, str] = {}
    parts = []
    for path in files:
        name = re.split(r"[-.]", path.name, maxsplit=1)[0]
        split = canonical_split(name)
        if split is None:
            raise DataError(path, None, "split", f"unknown split {name!r} in the file name; name files train-*.parquet")
        if taken.setdefault(split, name) != name:
            raise DataError(path, None, "split", f"splits {taken[split]!r} and {name!r} both map to {split!r}")
        dataset = load_dataset("parquet", data_files=str(path), split="train", streaming=True)
        parts.append(_Part(split, name, str(path), list(dataset.features or {}), dataset))
    return parts


def _load_imagefolder(src: Path, metadata: list[Path]) -> list[_Part]:
    from datasets import load_dataset

    for path in metadata:
        _check_metadata(src, path)
    loaded = load_dataset("imagefolder", data_dir=str(src), streaming=True)
    taken: dict[str, str] = {}
    parts = []
    for name, dataset in loaded.items():
        label = f"{src}[{name}]"
        parts.append(_Part(_target_split(name, label, taken), name, label, list(dataset.features or {}), dataset))
    return parts


def _check_metadata(src: Path, path: Path) -> None:
    """Every ``file_name`` of an imagefolder metadata file names an existing file under ``src``."""
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = [(reader.line_num, row) for row in reader]
    else:
        rows = []
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append((lineno, json.loads(line)))
            except json.JSONDecodeError as err:
                raise DataError(path, lineno, None, f"invalid JSON ({err.msg} at column {err.colno})") from None
    for lineno, row in rows:
        for key, value in row.items() if isinstance(row, dict) else ():
            if key == "file_name" or key.endswith("_file_name"):
                image = confined_path(path.parent, value, file=path, line=lineno, field=key)
                confined_path(src, str(image.relative_to(src)), file=path, line=lineno, field=key)
                if not image.is_file():
                    raise DataError(path, lineno, key, f"image file not found: {image}")
