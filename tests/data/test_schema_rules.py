"""Reading a split and validating a dataset apply one set of record rules: what ``read_split``
refuses first is one of the problems ``validate_dataset`` reports, at the same file, line and
field, in the same words."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from data.example import record_problems
from data.masks import encode_rle
from data.schema import DataError, read_split
from data.synthetic import SplitSizes, write_shapes_vqa
from data.tasks import TASKS, ImageSize, detect_prefix, extract_prefix, get_task
from data.validate import validate_dataset

SIZE = ImageSize(40, 30)
BOXES = [[2, 3, 20, 25, "cat"], [21.5, 0, 40, 30, "dog"]]
FIELDS = {"date": "2024-01-31", "total": "12.50"}


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = write_shapes_vqa(tmp_path / "ds", sizes=SplitSizes(train=3, val=1, test=1))
    Image.new("RGB", (SIZE.width, SIZE.height), (200, 30, 30)).save(root / "images" / "target.png")
    return root


def _vqa(dataset: Path) -> dict[str, Any]:
    return json.loads((dataset / "train.jsonl").read_text().splitlines()[1])


def _detect(dataset: Path) -> dict[str, Any]:
    return {
        "image": "images/target.png",
        "prefix": detect_prefix(["cat", "dog"]),
        "suffix": get_task("detect").render_suffix(BOXES, SIZE),
        "task": "detect",
        "id": "d1",
        "boxes": json.loads(json.dumps(BOXES)),
    }


def _extract(dataset: Path) -> dict[str, Any]:
    return {
        "image": "images/target.png",
        "prefix": extract_prefix(list(FIELDS)),
        "suffix": get_task("extract").render_suffix(FIELDS),
        "task": "extract",
        "id": "e1",
        "fields": dict(FIELDS),
    }


def _outside(dataset: Path) -> str:
    Image.new("RGB", (8, 8)).save(dataset.parent / "outside.png")
    return "images/../../outside.png"


def _symlink_out(dataset: Path) -> str:
    Image.new("RGB", (8, 8)).save(dataset.parent / "outside.png")
    os.symlink(dataset.parent / "outside.png", dataset / "images" / "link.png")
    return "images/link.png"


def _box(i: int, box: Any) -> Callable[[Path], dict[str, Any]]:
    def make(dataset: Path) -> dict[str, Any]:
        record = _detect(dataset)
        record["boxes"][i] = box
        return record

    return make


# (name, bad record or raw line): each is line 2 of train.jsonl, every other line valid
BAD: list[tuple[str, Callable[[Path], Any]]] = [
    ("not_utf8", lambda ds: b'{"image": "\xff"}'),
    ("not_json", lambda ds: b"{not json"),
    ("not_an_object", lambda ds: b'["a", "list"]'),
    ("missing_suffix", lambda ds: {k: v for k, v in _vqa(ds).items() if k != "suffix"}),
    ("id_a_number", lambda ds: {**_vqa(ds), "id": 7}),
    ("prefix_whitespace", lambda ds: {**_vqa(ds), "prefix": "  "}),
    ("unknown_field", lambda ds: {**_vqa(ds), "meta_source": "web"}),
    ("unknown_task", lambda ds: {**_vqa(ds), "task": "pose"}),
    ("answers_not_strings", lambda ds: {**_vqa(ds), "answers": ["red", 1]}),
    ("fields_not_an_object", lambda ds: {**_vqa(ds), "fields": ["total"]}),
    ("several_at_once", lambda ds: {**_vqa(ds), "id": 7, "task": "pose", "image": "/etc/passwd"}),
    ("image_absolute", lambda ds: {**_vqa(ds), "image": str(ds.resolve() / "images" / "target.png")}),
    ("image_dotdot", lambda ds: {**_vqa(ds), "image": _outside(ds)}),
    ("image_symlink_out", lambda ds: {**_vqa(ds), "image": _symlink_out(ds)}),
    ("box_without_label", _box(1, [1, 2, 3, 4])),
    ("box_not_a_list", _box(0, "dog")),
    ("box_nan", _box(1, [float("nan"), 0, 40, 30, "dog"])),
    ("box_inverted", _box(1, [40, 0, 21, 30, "dog"])),
    ("box_label_blank", _box(0, [2, 3, 20, 25, " "])),
    ("boxes_not_a_list", lambda ds: {**_detect(ds), "boxes": {}}),
    ("detect_without_boxes", lambda ds: {**_detect(ds), "boxes": []}),
    ("extract_without_fields", lambda ds: {k: v for k, v in _extract(ds).items() if k != "fields"}),
    ("extract_suffix_not_canonical", lambda ds: {**_extract(ds), "suffix": '{"total": "12.50", "date": "2024-01-31"}'}),
]


def _put_line_2(dataset: Path, line: Any) -> Path:
    path = dataset / "train.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[1] = line if isinstance(line, bytes) else json.dumps(line).encode()
    path.write_bytes(b"\n".join(lines))
    return path


@pytest.mark.parametrize("make", [case[1] for case in BAD], ids=[case[0] for case in BAD])
def test_the_first_problem_read_split_raises_is_one_validate_reports(dataset: Path, make: Callable) -> None:
    path = _put_line_2(dataset, make(dataset))
    with pytest.raises(DataError) as raised:
        read_split(dataset, "train")
    first = raised.value
    assert (first.file, first.line) == (str(path), 2)
    problems = validate_dataset(dataset).problems
    assert (first.file, first.line, first.field) in {(p.file, p.line, p.field) for p in problems}
    assert str(first) in {str(p) for p in problems}, "the same words on both paths"
    assert {p.line for p in problems} == {2}, "the rest of the dataset is valid"


def test_valid_detect_and_extract_lines_read_and_validate(dataset: Path) -> None:
    path = dataset / "train.jsonl"
    path.write_text(path.read_text() + json.dumps(_detect(dataset)) + "\n" + json.dumps(_extract(dataset)) + "\n")
    examples = read_split(dataset, "train")
    assert [e.task for e in examples[-2:]] == ["detect", "extract"]
    assert examples[-2].boxes == BOXES and examples[-1].fields == FIELDS
    assert validate_dataset(dataset).problems == []


@pytest.mark.parametrize("task", [t for t in TASKS.values() if t.target != "suffix"], ids=lambda t: t.name)
def test_a_task_whose_target_is_a_field_needs_that_field(dataset: Path, task: Any) -> None:
    record = {k: v for k, v in _vqa(dataset).items() if k != "answers"} | {"task": task.name}
    [(field, message)] = record_problems(record, dataset)
    assert field == task.target and f"required for task {task.name!r}" in message


def test_read_split_leaves_image_files_and_pixel_bounds_to_validation(dataset: Path) -> None:
    record = {**_detect(dataset), "image": "images/nope.png"}
    record["boxes"][1] = [21, 0, 41, 30, "dog"]  # one pixel past the right edge, if the image were there
    path = _put_line_2(dataset, record)
    assert read_split(dataset, "train")[1].image == "images/nope.png"
    located = {(p.file, p.line, p.field) for p in validate_dataset(dataset).problems}
    assert located == {(str(path), 2, "image")}  # without the image, its bounds cannot be known


def test_box_bounds_and_detect_suffix_are_checked_with_the_image_size(dataset: Path) -> None:
    record = _detect(dataset)
    assert record_problems(record, dataset, SIZE) == []
    record["boxes"][1] = [21, 0, 41, 30, "dog"]
    assert record_problems(record, dataset) == []
    assert record_problems(record, dataset, SIZE) == [("boxes[1]", "box [21, 0, 41, 30] outside the 40x30 image")]
    record = {**_detect(dataset), "suffix": "<loc0000><loc0000><loc0512><loc0512> cat"}
    assert record_problems(record, dataset) == []
    [(field, message)] = record_problems(record, dataset, SIZE)
    assert field == "suffix" and "but the detect target renders as" in message


def test_a_carriage_return_between_tokens_is_one_line_on_both_paths(dataset: Path) -> None:
    line = json.dumps(_vqa(dataset)).replace(', "prefix"', ',\r"prefix"').encode()
    assert b"\r" in line
    _put_line_2(dataset, line)
    assert len(read_split(dataset, "train")) == 3
    assert validate_dataset(dataset).problems == []


def _mask(x0: int, y0: int, x1: int, y1: int) -> dict[str, Any]:
    """A COCO RLE of the ``SIZE`` image, filled over ``[x0, x1) x [y0, y1)``."""
    pixels = np.zeros((SIZE.height, SIZE.width), bool)
    pixels[y0:y1, x0:x1] = True
    return encode_rle(pixels)


def _segment(objects: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    objects = objects or [{"box": [2, 3, 20, 25], "label": "cat", "mask": _mask(4, 5, 18, 24)}]
    return {
        "image": "images/target.png",
        "prefix": "segment cat",
        "suffix": get_task("segment").render_suffix(objects, SIZE),
        "task": "segment",
        "id": "s1",
        "masks": objects,
    }


def test_a_mask_inside_its_box_is_valid_on_both_paths(dataset: Path) -> None:
    record = _segment()
    assert record_problems(record, dataset, SIZE) == []
    _put_line_2(dataset, record)
    assert read_split(dataset, "train")[1].masks == record["masks"]
    assert validate_dataset(dataset).problems == []


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (lambda: _mask(0, 0, 0, 0), "the mask is empty"),
        (lambda: {"size": [SIZE.height + 1, SIZE.width], "counts": "PP"}, "is not the image's [height, width]"),
        (lambda: {"size": [SIZE.height, SIZE.width], "counts": [5, 7]}, "summing to 1200"),
        (lambda: _mask(4, 5, 23, 24), "reaches past its box [2, 3, 20, 25]"),  # 3 pixels past x1
    ],
    ids=["empty", "other_size", "counts_not_the_image", "past_the_box"],
)
def test_a_bad_mask_is_found_by_validation_at_its_file_line_and_field(
    dataset: Path, mask: Callable[[], Any], message: str
) -> None:
    objects = [{"box": [2, 3, 20, 25], "label": "cat", "mask": _mask(4, 5, 18, 24)}]
    record = _segment(objects) | {"masks": [{**objects[0], "mask": mask()}]}
    problems = record_problems(record, dataset, SIZE)
    assert problems[0][0] == "masks[0].mask" and message in problems[0][1], problems
    path = _put_line_2(dataset, record)
    located = {(p.file, p.line, p.field): str(p) for p in validate_dataset(dataset).problems}
    assert (str(path), 2, "masks[0].mask") in located and message in located[(str(path), 2, "masks[0].mask")]


def test_the_mask_box_tolerance_is_two_pixels_on_every_side(dataset: Path) -> None:
    box = [5, 5, 15, 15]
    inside = [(3, 3, 17, 17)]  # two pixels out on each side: kept
    outside = [(2, 5, 15, 15), (5, 2, 15, 15), (5, 5, 18, 15), (5, 5, 15, 18)]  # three out on one side
    for x0, y0, x1, y1 in inside + outside:
        record = _segment([{"box": box, "label": "cat", "mask": _mask(x0, y0, x1, y1)}])
        fields = [field for field, _ in record_problems(record, dataset, SIZE)]
        assert fields == ([] if (x0, y0, x1, y1) in inside else ["masks[0].mask"]), (x0, y0, x1, y1)


@pytest.mark.parametrize(
    ("obj", "field", "message"),
    [
        ({"box": [2, 3, 20, 25], "label": "cat"}, "masks[0]", 'must be {"box"'),
        ({"box": [20, 3, 2, 25], "label": "cat", "mask": None}, "masks[0].box", "inverted or empty box"),
        ({"box": [2, 3, 20], "label": "cat", "mask": None}, "masks[0].box", "must be [x0, y0, x1, y1]"),
        ({"box": [2, 3, 20, 25], "label": "a ; b", "mask": None}, "masks[0].label", "without ';'"),
    ],
    ids=["no_mask_field", "inverted_box", "short_box", "label_with_separator"],
)
def test_a_bad_object_is_refused_by_read_split_at_its_field(dataset: Path, obj: Any, field: str, message: str) -> None:
    record = {**_segment(), "masks": [obj]}
    path = _put_line_2(dataset, record)
    with pytest.raises(DataError) as raised:
        read_split(dataset, "train")
    assert (raised.value.file, raised.value.line, raised.value.field) == (str(path), 2, field)
    assert message in str(raised.value)


def test_a_box_outside_the_image_is_located_at_the_object(dataset: Path) -> None:
    record = _segment()
    record["masks"][0]["box"] = [2, 3, 41, 25]
    assert record_problems(record, dataset, SIZE) == [("masks[0].box", "box [2, 3, 41, 25] outside the 40x30 image")]
