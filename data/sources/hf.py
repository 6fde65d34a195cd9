"""Hugging Face datasets from local files: a ``save_to_disk`` folder, a hub dataset folder of
parquet files (README ``configs:`` honoured, ``--config`` to choose one), or an imagefolder
with ``metadata.jsonl``/``metadata.csv``; ``data.sources.hf_files`` finds the rows.

Columns map to roles (``image``, ``question``, ``answers``, ``captions``) with defaults per
style, which ``columns`` overrides:

- DocVQA (lmms-lab/DocVQA, HuggingFaceM4/DocumentVQA): ``question``, ``answers`` (list of
  strings), ``image`` -> task docvqa (or vqa);
- ChartQA (HuggingFaceM4/ChartQA: ``label`` a list; ahmed-masry/ChartQA: ``label`` a string,
  ``image`` raw PNG bytes): ``query``, ``label``, ``image`` -> task chartqa;
- COCO captions: ``image``, ``captions`` or ``sentences`` (list) or ``caption`` -> caption.

A row whose label is null (DocVQA's test split has ``answers: null``) is unlabelled: it is
dropped and counted, or kept apart for prediction only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data.progress import Progress, tracked
from data.schema import DataError, Example
from data.sources.common import Converted, ImageStore
from data.sources.hf_files import Part, load_parts
from data.tasks import get_task

STYLE_COLUMNS: dict[str, dict[str, str]] = {
    "docvqa": {"image": "image", "question": "question", "answers": "answers"},
    "chartqa": {"image": "image", "question": "query", "answers": "label"},
    "caption": {"image": "image", "captions": "captions"},
}
CAPTION_COLUMNS = ("captions", "sentences", "caption")
TASK_STYLES = {"docvqa": "docvqa", "vqa": "docvqa", "chartqa": "chartqa", "caption": "caption"}
NO_LABEL = "no label (null answer)"


def read_hf(
    src: Path,
    store: ImageStore,
    *,
    task: str | None = None,
    columns: dict[str, str] | None = None,
    config: str | None = None,
    keep_unlabelled: bool = False,
    progress: Progress | None = None,
) -> Converted:
    """Read a local Hugging Face dataset, encoding its images into ``store`` as PNG.

    Args:
        task: docvqa, vqa, chartqa or caption; ``None`` chooses from the columns present.
        columns: role -> column name, overriding the style's defaults (``{"question": "q"}``).
        config: the config of a hub folder whose README declares several.
        keep_unlabelled: return rows without a label in ``unlabelled`` (their images stored);
            otherwise they are only counted.
        progress: wraps the loop over each part's rows (see ``data.sources.ingest``).

    Returns:
        The labelled examples per split, and per split how many rows had no label in
        ``dropped``.

    Raises:
        DataError: no dataset found, an unknown split or config, a missing column or a bad
            value, located by file (or ``folder[split]``), row index and column.
        ValueError: a task or column role the hf format does not handle.
    """
    facts, parts = load_parts(src, config)
    if not parts:
        raise DataError(src, None, None, f"the {facts['layout']} dataset has no splits")
    task_name, mapping = choose_columns(parts[0].columns, task, columns, label=parts[0].label)
    for part in parts:
        _check_columns(part, mapping)
    converted = Converted({part.split: [] for part in parts})
    rows_seen: dict[str, int] = {}
    for part in parts:
        rows = tracked(part.rows, progress, f"ingest {part.split}", total=part.num_rows, unit="row")
        for row_index, row in enumerate(rows):
            number = rows_seen[part.split] = rows_seen.get(part.split, 0) + 1
            labelled = row[mapping.get("answers") or mapping["captions"]] is not None
            if not labelled:
                dropped = converted.dropped.setdefault(part.split, {})
                dropped[NO_LABEL] = dropped.get(NO_LABEL, 0) + 1
                if not keep_unlabelled:
                    continue  # its image is not stored either
            example_id, where = f"{part.split}-{number - 1:05d}", (part.label, row_index)
            example = _example(row, task_name, mapping, store, example_id, where=where)
            (converted.splits[part.split] if labelled else converted.unlabelled).append(example)
    split_names = {part.source_split: part.split for part in parts}
    converted.info.update(facts, task=task_name, columns=mapping, splits=split_names)
    return converted


def _check_columns(part: Part, mapping: dict[str, str]) -> None:
    """Every mapped column exists, and the image column holds images or bytes."""
    from datasets import Image, Value

    image = part.features.get(mapping["image"])
    if image is not None and not (isinstance(image, Image) or image in (Value("binary"), Value("large_binary"))):
        message = f"holds {image} values, not images; expected an Image feature or a binary column of PNG/JPEG bytes"
        raise DataError(part.label, None, mapping["image"], message)
    for role, column in mapping.items():
        if column not in part.columns:
            raise DataError(
                part.label,
                None,
                column,
                f"column not found (the {role}); columns are {part.columns}; map yours with --column {role}=<column>",
            )


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
    raise _closest_style_error(present, overrides, label)


def _closest_style_error(present: list[str], overrides: dict[str, str], label: str) -> DataError:
    """The error for columns no style fits: it names the column the closest style lacks."""
    expected = "; ".join(f"{style}: {sorted(cols.values())}" for style, cols in STYLE_COLUMNS.items())
    message = f"cannot tell the task from columns {present} ({expected})"
    candidates = []
    for style in STYLE_COLUMNS:
        mapping = _mapping(style, present, overrides)
        found = [column for column in mapping.values() if column in present]
        if len(found) >= 2:
            candidates.append((len(found), style, [c for c in mapping.values() if c not in present]))
    if not candidates:
        return DataError(label, None, "columns", f"{message}; pass --task and --column ROLE=NAME")
    _, style, lacking = max(candidates, key=lambda c: c[0])
    hint = f"closest is {style}, which needs column {lacking[0]!r}: add it, or map yours with --column"
    return DataError(label, None, lacking[0], f"{message}; {hint}")


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
        if row[mapping["captions"]] is None:
            return Example(image, task.prefix(), "", task.name, example_id)
        captions = _strings(row, mapping["captions"], where)
        return Example(image, task.prefix(), task.render_suffix(captions[0]), task.name, example_id, answers=captions)
    question = row[mapping["question"]]
    if not isinstance(question, str) or not question.strip():
        raise DataError(label, line, mapping["question"], f"expected a non-empty string, got {question!r}")
    prefix = task.prefix(question=" ".join(question.split()))
    if row[mapping["answers"]] is None:
        return Example(image, prefix, "", task.name, example_id)  # unlabelled: the caller sets it apart
    answers = _strings(row, mapping["answers"], where)
    return Example(image, prefix, task.render_suffix(answers[0]), task.name, example_id, answers=answers)


def _strings(row: dict[str, Any], column: str, where: tuple[str, int]) -> list[str]:
    """A string or a list of strings (HuggingFaceM4/ChartQA's ``label``), as a non-empty list of
    whitespace-normalised strings."""
    value = row[column]
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise DataError(where[0], where[1], column, f"expected a non-empty string or list of them, got {value!r}")
    return [" ".join(v.split()) for v in values]
