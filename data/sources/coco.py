"""COCO JSON detection and captions, in the two layouts people download, read with ``json``.

- ``coco`` (COCO 2017 as downloaded from cocodataset.org): ``annotations/instances_<split>.json``
  (detection) or ``annotations/captions_<split>.json`` (captioning), any subset of the splits
  (many users have only ``val2017``). Images are looked up, in order, at
  ``<split>/<file_name>`` (``val2017/``), ``images/<split>/<file_name>``, ``images/<file_name>``
  and ``<file_name>`` under the root.
- ``roboflow-coco`` (Roboflow's ``coco`` export, maestro's ``COCODataset`` layout):
  ``train/_annotations.coco.json``, ``valid/...``, ``test/...``, the images beside each file.
  Its category 0 is a dataset-level supercategory that no annotation uses.

Only categories some annotation uses become classes of the detect prefix (the rest are listed
in the manifest), so Roboflow's placeholder never appears. Images without annotations are
skipped (the manifest counts them), and so are crowd regions (``iscrowd: 1``), which COCO's own
evaluation ignores rather than scores.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.progress import Progress, tracked
from data.schema import DataError, Example
from data.sources.common import Converted, ImageStore, canonical_split, confined_path
from data.sources.detect import ROBOFLOW_COCO_FILE, split_folders
from data.tasks import ImageSize, Task, detect_prefix, get_task, segment_prefix

_FILE_PREFIX = {"detect": "instances_", "segment": "instances_", "caption": "captions_"}
_BOUNDS_TOLERANCE = 1.0  # pixels; COCO boxes overshoot the image edge by rounding


@dataclass(frozen=True)
class _SplitFile:
    split: str  # palitune split
    source_split: str  # as in the file or folder name, e.g. train2017, valid
    path: Path
    data: dict[str, Any]
    image_root: Path  # image paths are confined to it
    bases: tuple[str, ...]  # folders under image_root where its images may be


def read_coco(src: Path, store: ImageStore, *, task: str | None = None, progress: Progress | None = None) -> Converted:
    """Read every COCO annotation file under ``src/annotations``, copying the annotated images
    into ``store``.

    Args:
        task: ``detect``, ``segment`` (the instances' masks, from polygons or RLE) or
            ``caption``; ``None`` picks ``detect`` when ``instances_*.json`` files exist,
            else ``caption``.
        progress: wraps each split's loops over annotations and images (``data.sources.ingest``).

    Raises:
        DataError: no annotation file, an unknown split, invalid JSON, an unknown id, a bad
            bbox, a missing image or a size that disagrees with the image file, located by
            file and field (``annotations[12].bbox``).
    """
    task = task or ("detect" if list((src / "annotations").glob("instances_*.json")) else "caption")
    if task not in _FILE_PREFIX:
        raise ValueError(f"the coco format holds detect, segment or caption examples, not {task!r}")
    return _convert(src, _split_files(src, _FILE_PREFIX[task]), store, task, progress)


def read_roboflow_coco(
    src: Path, store: ImageStore, *, task: str | None = None, progress: Progress | None = None
) -> Converted:
    """Read ``<split>/_annotations.coco.json`` of every split folder of ``src`` (``train``,
    ``valid``, ``test``), each file's images beside it, as detection examples (or, with
    ``task="segment"``, a Roboflow "COCO Segmentation" export's masks).

    Raises:
        DataError: as ``read_coco``, or no split folder with an annotation file.
        ValueError: a task other than detect or segment.
    """
    if task not in (None, "detect", "segment"):
        raise ValueError(f"the roboflow-coco format holds detect or segment examples, not {task!r}")
    folders = split_folders(src, ROBOFLOW_COCO_FILE)
    if not folders:
        raise DataError(src, None, None, f"no {{train,valid,test}}/{ROBOFLOW_COCO_FILE} found (Roboflow coco export)")
    files = [
        _SplitFile(split, folder.name, folder / ROBOFLOW_COCO_FILE, _load(folder / ROBOFLOW_COCO_FILE), folder, (".",))
        for split, folder in folders.items()
    ]
    return _convert(src, files, store, task or "detect", progress)


def _convert(src: Path, files: list[_SplitFile], store: ImageStore, task: str, progress: Progress | None) -> Converted:
    splits: dict[str, list[Example]] = {}
    skipped: dict[str, int] = {}
    crowd: dict[str, int] = {}
    info: dict[str, Any] = {"task": task, "files": {f.split: str(f.path.relative_to(src)) for f in files}}
    entry = get_task(task)
    boxed = entry.target in ("boxes", "masks")  # instances files hold boxes and masks, captions files text
    if boxed:
        used, unused = _used_labels(files)
        info["unused_categories"] = unused
        prefix = segment_prefix(used) if entry.target == "masks" else detect_prefix(used)
        for f in files:
            splits[f.split], skipped[f.split], crowd[f.split] = _detection(f, store, entry, prefix, progress)
    else:
        for f in files:
            splits[f.split], skipped[f.split] = _captions(f, store, entry, progress)
    info["skipped_images"] = skipped
    if boxed:
        info["skipped_crowd"] = crowd
    dropped = {split: {"image without annotations": n} for split, n in skipped.items() if n}
    return Converted(splits, info=info, dropped=dropped)


def _used_labels(files: list[_SplitFile]) -> tuple[list[str], list[str]]:
    """Sorted names of the categories some non-crowd annotation uses, and of the others."""
    names: set[str] = set()
    used: set[str] = set()
    for f in files:
        categories = _categories(f)
        names.update(categories.values())
        for annotation in f.data["annotations"]:
            if isinstance(annotation, dict) and not annotation.get("iscrowd"):
                category = annotation.get("category_id")
                if isinstance(category, int | str) and category in categories:
                    used.add(categories[category])
    return sorted(used), sorted(names - used)


def _split_files(src: Path, prefix: str) -> list[_SplitFile]:
    paths = sorted((src / "annotations").glob(f"{prefix}*.json"))
    if not paths:
        raise DataError(src / "annotations", None, None, f"no {prefix}<split>.json file found")
    files: dict[str, _SplitFile] = {}
    for path in paths:
        source_split = path.stem[len(prefix) :]
        split = canonical_split(source_split)
        if split is None:
            raise DataError(path, None, "file name", f"unknown split {source_split!r}; expected train, val or test")
        if split in files:
            raise DataError(path, None, "file name", f"{files[split].path.name} already holds the {split} split")
        bases = (source_split, f"images/{source_split}", "images", ".")
        files[split] = _SplitFile(split, source_split, path, _load(path), src, bases)
    return list(files.values())


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(path, err.lineno, None, f"invalid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(data, dict):
        raise DataError(path, None, None, "expected a JSON object with images and annotations")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise DataError(path, None, key, "missing or not a list")
    return data


def _categories(f: _SplitFile) -> dict[Any, str]:
    categories = f.data.get("categories")
    if not isinstance(categories, list) or not categories:
        raise DataError(f.path, None, "categories", "missing or empty; detection needs the category names")
    names: dict[Any, str] = {}
    for i, category in enumerate(categories):
        if not isinstance(category, dict) or not isinstance(category.get("name"), str) or not category["name"].strip():
            raise DataError(f.path, None, f"categories[{i}].name", "missing or not a non-empty string")
        names[category.get("id")] = category["name"].strip()
    return names


def _images(f: _SplitFile) -> dict[Any, int]:
    """Image id -> its index in ``images``."""
    index: dict[Any, int] = {}
    for i, image in enumerate(f.data["images"]):
        if not isinstance(image, dict) or image.get("id") is None:
            raise DataError(f.path, None, f"images[{i}].id", "missing")
        if image["id"] in index:
            raise DataError(f.path, None, f"images[{i}].id", f"repeats the id of images[{index[image['id']]}]")
        for key in ("width", "height"):
            if not isinstance(image.get(key), int) or image[key] <= 0:
                raise DataError(f.path, None, f"images[{i}].{key}", "missing or not a positive integer")
        index[image["id"]] = i
    return index


def _store_image(f: _SplitFile, i: int, store: ImageStore) -> tuple[str, ImageSize]:
    """Copy ``images[i]`` in, after checking its declared size against the file."""
    root, image = f.image_root, f.data["images"][i]
    field = f"images[{i}].file_name"
    name = confined_path(root, image.get("file_name"), file=f.path, line=None, field=field).relative_to(root)
    candidates = [confined_path(root, str(Path(base) / name), file=f.path, line=None, field=field) for base in f.bases]
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        looked = ", ".join(str(c.relative_to(root)) for c in candidates)
        raise DataError(f.path, None, field, f"image {str(name)!r} not found under {root} (looked at {looked})")
    stored, (width, height) = store.add_file(path, file=f.path, line=None, field=field)
    for key, real in (("width", width), ("height", height)):
        if image[key] != real:
            raise DataError(f.path, None, f"images[{i}].{key}", f"says {image[key]} but {path} has {key} {real}")
    return stored, ImageSize(width, height)


def _box(f: _SplitFile, k: int, annotation: dict[str, Any], size: tuple[int, int], label: str) -> list[Any]:
    """COCO ``[x, y, w, h]`` -> ``[x0, y0, x1, y1, label]`` in pixels, clamped to the image."""
    bbox, field = annotation.get("bbox"), f"annotations[{k}].bbox"
    if not (
        isinstance(bbox, list)
        and len(bbox) == 4
        and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)
    ):
        raise DataError(f.path, None, field, f"expected [x, y, width, height] in pixels, got {bbox!r}")
    x, y, w, h = (float(v) for v in bbox)
    width, height = size
    if w <= 0 or h <= 0:
        raise DataError(f.path, None, field, f"width and height must be positive, got {bbox!r}")
    tol = _BOUNDS_TOLERANCE
    if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
        raise DataError(f.path, None, field, f"{bbox!r} lies outside the {width}x{height} image")
    corners = (max(0.0, x), max(0.0, y), min(float(width), x + w), min(float(height), y + h))
    return [round(v, 2) for v in corners] + [label]


def _detection(
    f: _SplitFile, store: ImageStore, task: Task, prefix: str, progress: Progress | None
) -> tuple[list[Example], int, int]:
    """Examples of one detection file, the number of images skipped and of crowd regions."""
    categories, images = _categories(f), _images(f)
    objects: dict[int, list[Any]] = {}
    crowd = 0
    for k, annotation in enumerate(_annotations(f, progress)):
        i = _lookup(f, k, annotation, "image_id", images)
        if annotation.get("iscrowd"):
            crowd += 1
            continue
        label = _lookup(f, k, annotation, "category_id", categories)
        declared = (f.data["images"][i]["width"], f.data["images"][i]["height"])
        box = _box(f, k, annotation, declared, label)
        masked = task.target == "masks"
        objects.setdefault(i, []).append(_mask_object(f, k, annotation, declared, box) if masked else box)
    examples: list[Example] = []
    for i in tracked(sorted(objects), progress, f"ingest {f.split} images", unit="image"):
        stored, size = _store_image(f, i, store)
        suffix = task.render_suffix(objects[i], size)
        example_id = f"{f.split}-{f.data['images'][i]['id']}"
        example = Example(stored, prefix, suffix, task.name, example_id)
        if task.target == "masks":
            example.masks = objects[i]
        else:
            example.boxes = objects[i]
        examples.append(example)
    return examples, len(images) - len(objects), crowd


def _mask_object(f: _SplitFile, k: int, annotation: dict[str, Any], size: tuple[int, int], box: list[Any]) -> Any:
    """An instance as a ``segment`` object: its annotation box, label and mask (compressed RLE)."""
    from data.masks import decode_mask, encode_rle

    field = f"annotations[{k}].segmentation"
    if not annotation.get("segmentation"):  # Roboflow's box-only exports write "segmentation": []
        raise DataError(f.path, None, field, "missing or empty: the segment task needs each instance's mask")
    width, height = size
    try:
        mask = decode_mask(annotation["segmentation"], height, width)
    except ValueError as err:
        raise DataError(f.path, None, field, str(err)) from None
    if not mask.any():
        raise DataError(f.path, None, field, "the mask is empty (no pixel inside)")
    return {"box": box[:4], "label": box[4], "mask": encode_rle(mask)}


def _captions(f: _SplitFile, store: ImageStore, task: Task, progress: Progress | None) -> tuple[list[Example], int]:
    """Examples of one captions file (one per image, every caption an answer), and the
    number of images skipped for having no caption."""
    images = _images(f)
    captions: dict[int, list[str]] = {}
    for k, annotation in enumerate(_annotations(f, progress)):
        i = _lookup(f, k, annotation, "image_id", images)
        caption = annotation.get("caption")
        if not isinstance(caption, str) or not caption.strip():
            raise DataError(f.path, None, f"annotations[{k}].caption", "missing or not a non-empty string")
        captions.setdefault(i, []).append(" ".join(caption.split()))
    examples: list[Example] = []
    for i in tracked(sorted(captions), progress, f"ingest {f.split} images", unit="image"):
        stored, _ = _store_image(f, i, store)
        example_id = f"{f.split}-{f.data['images'][i]['id']}"
        suffix = task.render_suffix(captions[i][0])
        examples.append(Example(stored, task.prefix(), suffix, task.name, example_id, answers=captions[i]))
    return examples, len(images) - len(captions)


def _annotations(f: _SplitFile, progress: Progress | None) -> Iterable[Any]:
    """The file's annotations, through ``progress`` (COCO train2017 has 860k of them)."""
    return tracked(f.data["annotations"], progress, f"ingest {f.split} annotations", unit="annotation")


def _lookup(f: _SplitFile, k: int, annotation: Any, key: str, known: dict[Any, Any]) -> Any:
    """``known[annotation[key]]``: the image index or category name an annotation refers to."""
    if not isinstance(annotation, dict):
        raise DataError(f.path, None, f"annotations[{k}]", "expected a JSON object")
    value = annotation.get(key)
    if not isinstance(value, int | str) or value not in known:
        entries = {"image_id": "image", "category_id": "category"}.get(key, "entry")
        message = f"{value!r} names no entry of the file (no {entries} has that id)"
        raise DataError(f.path, None, f"annotations[{k}].{key}", message)
    return known[value]
