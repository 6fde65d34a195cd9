"""PaliGemma JSONL, in the two layouts Roboflow exports and maestro reads.

- ``paligemma-jsonl`` (Roboflow's ``paligemma`` export): a folder (``dataset/`` in the
  download) holds ``_annotations.train.jsonl``, ``_annotations.valid.jsonl`` and
  ``_annotations.test.jsonl`` beside the image files. Any of them may be missing.
- ``roboflow-jsonl`` (Roboflow's ``jsonl`` export, maestro's ``JSONLDataset``):
  ``train/annotations.jsonl``, ``valid/annotations.jsonl``, ``test/annotations.jsonl``, each
  split's images in its folder. Any of the splits may be missing.

Each line is ``{"image": "file.jpg", "prefix": "...", "suffix": "..."}`` (maestro's
``REQUIRED_KEYS``), the image relative to the annotation file's folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from data.loc_tokens import decode_boxes
from data.progress import Progress, tracked
from data.schema import DataError, Example
from data.sources.common import Converted, ImageStore, confined_path
from data.sources.detect import ROBOFLOW_JSONL_FILE, paligemma_root, split_folders
from data.tasks import TASKS, get_task

ANNOTATION_FILES = {
    "train": ("_annotations.train.jsonl",),
    "val": ("_annotations.valid.jsonl", "_annotations.val.jsonl"),
    "test": ("_annotations.test.jsonl",),
}


def _tasks_by_first_word() -> dict[str, str]:
    """The first word of each task's prompt that no other task's prompt starts with (``answer``
    starts vqa, docvqa and chartqa alike), mapped to that task."""
    tasks: dict[str, list[str]] = {}
    for task in TASKS.values():
        tasks.setdefault(task.prefix_template.split()[0], []).append(task.name)
    return {word: names[0] for word, names in tasks.items() if len(names) == 1}


_TASK_OF_FIRST_WORD = _tasks_by_first_word()


def infer_task(prefix: str) -> str:
    """The task a PaliGemma prefix asks for: the task whose prompt starts with the same word
    (``detect ...`` -> detect, ``caption ...`` -> caption, ``ocr`` -> ocr, ``extract ...`` ->
    extract), anything else -> vqa.

    Raises:
        ValueError: for ``segment ...``, which no palitune task handles.
    """
    words = prefix.split()
    first = words[0].lower() if words else ""
    if first == "segment":
        raise ValueError("segmentation prefixes ('segment ...') are not a palitune task")
    return _TASK_OF_FIRST_WORD.get(first, "vqa")


def read_paligemma_jsonl(
    src: Path, store: ImageStore, *, task: str | None = None, progress: Progress | None = None
) -> Converted:
    """Read every ``_annotations.<split>.jsonl`` in ``src`` (or ``src/dataset``), copying images
    into ``store``.

    Args:
        task: the task of every example; ``None`` infers it from each prefix (``infer_task``).
        progress: wraps each split's loop over lines (see ``data.sources.ingest``).

    Raises:
        DataError: no annotation file, a bad line, a missing image or an undecodable target,
            located by file, line and field.
    """
    root = paligemma_root(src) or src
    splits: dict[str, list[Example]] = {}
    files: dict[str, str] = {}
    for split, names in ANNOTATION_FILES.items():
        found = [root / name for name in names if (root / name).is_file()]
        if len(found) > 1:
            raise DataError(found[1], None, None, f"{found[0].name} also holds the val split; keep only one of them")
        if found:
            splits[split] = _read_file(found[0], root, split, store, task, progress)
            files[split] = str(found[0].relative_to(src))
    if not splits:
        message = "no annotations found: expected _annotations.{train,valid,test}.jsonl here or in dataset/"
        raise DataError(root / ANNOTATION_FILES["train"][0], None, None, message)
    return Converted(splits, info={"files": files})


def read_roboflow_jsonl(
    src: Path, store: ImageStore, *, task: str | None = None, progress: Progress | None = None
) -> Converted:
    """Read ``<split>/annotations.jsonl`` of every split folder of ``src`` (``train``, ``valid``,
    ``test``), each image relative to its split's folder, copying images into ``store``.

    Args:
        task: the task of every example; ``None`` infers it from each prefix (``infer_task``).
        progress: wraps each split's loop over lines (see ``data.sources.ingest``).

    Raises:
        DataError: no split folder with an ``annotations.jsonl``, a bad line, a missing image or
            an undecodable target, located by file, line and field.
    """
    folders = split_folders(src, ROBOFLOW_JSONL_FILE)
    if not folders:
        message = f"no {{train,valid,test}}/{ROBOFLOW_JSONL_FILE} found (Roboflow jsonl export)"
        raise DataError(src, None, None, message)
    splits = {
        split: _read_file(folder / ROBOFLOW_JSONL_FILE, folder, split, store, task, progress)
        for split, folder in folders.items()
    }
    files = {split: str((folder / ROBOFLOW_JSONL_FILE).relative_to(src)) for split, folder in folders.items()}
    return Converted(splits, info={"files": files})


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(path, None, None, f"not UTF-8 ({err.reason} at byte {err.start})") from None


def _read_file(
    path: Path, root: Path, split: str, store: ImageStore, task: str | None, progress: Progress | None
) -> list[Example]:
    examples = []
    lines = _read_lines(path)
    for lineno, line in enumerate(tracked(lines, progress, f"ingest {split}", unit="line"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(path, lineno, None, f"invalid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(record, dict):
            raise DataError(path, lineno, None, "expected a JSON object with image, prefix and suffix")
        for name in ("prefix", "suffix"):
            if not isinstance(record.get(name), str) or not record[name].strip():
                raise DataError(path, lineno, name, "missing or not a non-empty string")
        image_path = confined_path(root, record.get("image"), file=path, line=lineno, field="image")
        image, (width, height) = store.add_file(image_path, file=path, line=lineno, field="image")
        try:
            task_name = task or infer_task(record["prefix"])
        except ValueError as err:
            raise DataError(path, lineno, "prefix", f"{err}; pass the task explicitly") from None
        examples.append(
            Example(
                image=image,
                prefix=record["prefix"],
                suffix=record["suffix"],
                task=task_name,
                id=f"{split}-{lineno:05d}",
                **_targets(task_name, record["suffix"], width, height, file=path, line=lineno),
            )
        )
    return examples


def _targets(task: str, suffix: str, width: int, height: int, *, file: Path, line: int) -> dict[str, Any]:
    """The example's targets, read back from its suffix into the task's target field."""
    entry = get_task(task)
    if entry.target == "masks":  # codes mean masks only under the codec that made them, unknown here
        message = "a segment suffix holds mask codes, not masks: ingest the COCO segmentation export instead"
        raise DataError(file, line, "suffix", message + " (--format roboflow-coco or coco, --task segment)")
    if entry.target == "boxes":
        return {"boxes": _boxes(suffix, width, height, file=file, line=line)}
    if entry.target == "fields":
        return {"fields": _fields(suffix, file=file, line=line)}
    if entry.verbatim:  # the suffix itself is the reference, whitespace included
        return {}
    # whitespace normalised as the hf source does: generated text is stripped, so an
    # export's trailing space would otherwise make every exact-match answer wrong
    return {"answers": [" ".join(suffix.split())]}


def _boxes(suffix: str, width: int, height: int, *, file: Path, line: int) -> list[list[Any]]:
    objects = [part for part in suffix.split(";") if part.strip()]
    boxes = decode_boxes(suffix, width, height)
    if len(boxes) != len(objects):
        raise DataError(
            file,
            line,
            "suffix",
            f"{len(objects)} objects but {len(boxes)} decode as '<locY0><locX0><locY1><locX1> label' "
            "(check for missing location tokens, inverted boxes or repeated objects)",
        )
    return [list(box) for box in boxes]


def _fields(suffix: str, *, file: Path, line: int) -> dict[str, Any]:
    try:
        fields = json.loads(suffix)
    except json.JSONDecodeError as err:
        raise DataError(file, line, "suffix", f"extract suffix is not JSON ({err.msg})") from None
    if not isinstance(fields, dict):
        raise DataError(file, line, "suffix", "extract suffix must be a JSON object of fields")
    return fields
