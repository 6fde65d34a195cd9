"""Every problem in a dataset is reported at once, located by file, line and field."""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageFile

from data.schema import DataError
from data.synthetic import SplitSizes, write_shapes_vqa
from data.tasks import ImageSize, detect_prefix, extract_prefix, get_task
from data.validate import InvalidDatasetError, Problem, ValidationReport, validate_dataset

DELETE = object()
DETECT_SIZE = ImageSize(40, 30)
BOXES = [[2, 3, 20, 25, "cat"], [21.5, 0, 40, 30, "dog"]]
FIELDS = {"date": "2024-01-31", "total": "12.50"}


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_shapes_vqa(tmp_path / "ds", sizes=SplitSizes(train=4, val=2, test=2))


def _records(dataset: Path, split: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (dataset / f"{split}.jsonl").read_text().splitlines()]


def _write(dataset: Path, split: str, records: list[Any]) -> Path:
    path = dataset / f"{split}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _update(dataset: Path, split: str, lineno: int, **changes: Any) -> Path:
    """Change (or with ``DELETE``, remove) fields of one line of a split."""
    records = _records(dataset, split)
    for name, value in changes.items():
        if value is DELETE:
            del records[lineno - 1][name]
        else:
            records[lineno - 1][name] = value
    return _write(dataset, split, records)


def _png(dataset: Path, name: str, size: ImageSize, colour: tuple[int, int, int]) -> str:
    (dataset / name).parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size.width, size.height), colour).save(dataset / name, format="PNG")
    return name


def _detect(dataset: Path, example_id: str = "d1") -> dict[str, Any]:
    return {
        "image": _png(dataset, f"images/{example_id}.png", DETECT_SIZE, (200, 30, 30)),
        "prefix": detect_prefix(["cat", "dog"]),
        "suffix": get_task("detect").render_suffix(BOXES, DETECT_SIZE),
        "task": "detect",
        "id": example_id,
        "boxes": json.loads(json.dumps(BOXES)),
    }


def _extract(dataset: Path, example_id: str = "e1") -> dict[str, Any]:
    return {
        "image": _png(dataset, f"images/{example_id}.png", ImageSize(24, 32), (30, 30, 200)),
        "prefix": extract_prefix(list(FIELDS)),
        "suffix": get_task("extract").render_suffix(FIELDS),
        "task": "extract",
        "id": example_id,
        "fields": dict(FIELDS),
    }


def _only(report: ValidationReport, file: Path, line: int | None, field: str | None) -> Problem:
    """The single problem of ``report``, checked to be located at ``file:line`` on ``field``."""
    assert len(report.problems) == 1, "\n".join(map(str, report.problems))
    problem = report.problems[0]
    assert (problem.file, problem.line, problem.field) == (str(file), line, field)
    assert str(problem).startswith(f"{file}:{line}: " if line is not None else f"{file}: ")
    assert not report.ok
    return problem


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels but holds no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# A valid dataset ---------------------------------------------------------------------------


def test_synthetic_dataset_is_valid(dataset: Path) -> None:
    report = validate_dataset(dataset)
    assert report.problems == [] and report.ok
    assert report.counts == {"train": {"vqa": 4}, "val": {"vqa": 2}, "test": {"vqa": 2}}
    report.raise_if_invalid()


def test_hand_written_detect_and_extract_are_valid(dataset: Path) -> None:
    _write(dataset, "train", _records(dataset, "train") + [_detect(dataset)])
    _write(dataset, "val", _records(dataset, "val") + [_extract(dataset)])
    report = validate_dataset(dataset)
    assert report.problems == []
    assert report.counts["train"] == {"vqa": 4, "detect": 1} and report.counts["val"] == {"vqa": 2, "extract": 1}


# Rule 1: split files and lines ------------------------------------------------------------


def test_missing_split_file(dataset: Path) -> None:
    (dataset / "val.jsonl").unlink()
    problem = _only(validate_dataset(dataset), dataset / "val.jsonl", None, None)
    assert "split file not found" in problem.message


def test_non_utf8_line_is_located(dataset: Path) -> None:
    path = dataset / "train.jsonl"
    lines = path.read_bytes().splitlines()
    lines[2] = lines[2].replace(b"what", b"wh\xffat").replace(b"how", b"h\xffow")
    path.write_bytes(b"\n".join(lines) + b"\n")
    problem = _only(validate_dataset(dataset), path, 3, None)
    assert "not UTF-8" in problem.message


def test_invalid_json_line_is_located(dataset: Path) -> None:
    path = dataset / "test.jsonl"
    path.write_text(path.read_text().replace("}\n", "\n", 1))
    problem = _only(validate_dataset(dataset), path, 1, None)
    assert "invalid JSON" in problem.message


def test_line_not_an_object_is_located(dataset: Path) -> None:
    path = _write(dataset, "val", [*_records(dataset, "val"), ["a", "list"]])
    problem = _only(validate_dataset(dataset), path, 3, None)
    assert "expected a JSON object, got list" in problem.message


# Rule 2: fields -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"suffix": DELETE}, "suffix", "missing"),
        ({"id": 7}, "id", "must be a string, got int"),
        ({"prefix": "   "}, "prefix", "whitespace only"),
        ({"suffix": ""}, "suffix", "empty"),
        ({"meta_source": "web"}, "meta_source", "unknown field; allowed: answers, boxes"),
        ({"task": "pose"}, "task", "unknown task 'pose'; known tasks: caption, chartqa, detect"),
        ({"answers": "red"}, "answers", "must be a list of strings"),
        ({"answers": ["red", 1]}, "answers", "must be a list of strings"),
        ({"fields": ["total"]}, "fields", "must be a JSON object"),
    ],
    ids=lambda value: str(value)[:30],
)
def test_bad_field_is_located(dataset: Path, changes: dict[str, Any], field: str, message: str) -> None:
    path = _update(dataset, "train", 2, **changes)
    problem = _only(validate_dataset(dataset), path, 2, field)
    assert message in problem.message


# Rule 3: images -----------------------------------------------------------------------------


def _outside(dataset: Path) -> Path:
    outside = dataset.parent / "outside.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(outside)
    return outside


def _symlink_out(dataset: Path) -> str:
    os.symlink(_outside(dataset), dataset / "images" / "link.png")
    return "images/link.png"


def _file(data: bytes) -> Callable[[Path], str]:
    def write(dataset: Path) -> str:
        (dataset / "images" / "bad.png").write_bytes(data)
        return "images/bad.png"

    return write


def _cut(nbytes: int) -> Callable[[Path], str]:
    def write(dataset: Path) -> str:
        data = (dataset / "images" / "train-00001.png").read_bytes()
        return _file(data[:-nbytes])(dataset)

    return write


def _noise(dataset: Path) -> str:
    Image.effect_noise((200, 200), 64).save(dataset / "images" / "noise.png")  # 40000 pixels, ~40 kB
    return "images/noise.png"


IMAGE_CASES: list[tuple[str, Callable[[Path], str], dict[str, int], str]] = [
    ("absolute", lambda ds: str(ds.resolve() / "images" / "train-00001.png"), {}, "is absolute"),
    ("dotdot", lambda ds: "images/../../" + _outside(ds).name, {}, "escapes the dataset root"),
    ("symlink", _symlink_out, {}, "escapes the dataset root"),
    ("missing", lambda ds: "images/nope.png", {}, "images/nope.png: file not found"),
    ("zero_bytes", _file(b""), {}, "empty (0 bytes)"),
    ("not_an_image", _file(b"hello, not a picture"), {}, "not a readable image"),
    ("cut_iend_crc", _cut(1), {}, "truncated PNG"),
    ("cut_iend", _cut(16), {}, "not a readable image"),
    ("cut_pixels", _cut(60), {}, "truncated"),
    ("bomb_header", _file(_png_header(8000, 8000)), {}, "8000x8000 pixels, over the limit of 50000000"),
    ("bomb_pil_warning", _file(_png_header(10000, 10000)), {}, "decompression bomb"),
    ("bomb_pil_error", _file(_png_header(20000, 20000)), {}, "decompression bomb"),
    ("too_many_pixels", _noise, {"max_image_pixels": 10_000}, "200x200 pixels, over"),
    ("too_many_bytes", _noise, {"max_image_bytes": 10_000}, "over the limit of 10000"),
]


@pytest.mark.parametrize(("make", "limits", "message"), [c[1:] for c in IMAGE_CASES], ids=[c[0] for c in IMAGE_CASES])
def test_bad_image_is_located(dataset: Path, make: Callable[[Path], str], limits: dict[str, int], message: str) -> None:
    path = _update(dataset, "train", 2, image=make(dataset))
    problem = _only(validate_dataset(dataset, **limits), path, 2, "image")
    assert message.lower() in problem.message.lower()


def test_truncated_png_is_reported_even_if_pil_was_told_to_load_truncated_images(
    dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    path = _update(dataset, "train", 2, image=_cut(60)(dataset))
    assert "truncated" in _only(validate_dataset(dataset), path, 2, "image").message.lower()
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is restored


def test_each_image_is_read_once(dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _update(dataset, "train", 2, image="images/train-00000.png")
    reads: list[str] = []
    read_bytes = Path.read_bytes

    def counting(path: Path) -> bytes:
        reads.append(path.name)
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", counting)
    assert validate_dataset(dataset).problems == []  # one image in two train lines is fine
    images = [name for name in reads if name.endswith(".png")]
    assert sorted(images) == sorted(set(images)) and "train-00000.png" in images


# Rule 4: boxes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ([1, 2, 3, "dog"], "must be [x0, y0, x1, y1, label]"),
        ("dog", "must be [x0, y0, x1, y1, label]"),
        ([float("nan"), 0, 40, 30, "dog"], "finite numbers"),
        ([21, 0, float("inf"), 30, "dog"], "finite numbers"),
        ([21, True, 40, 30, "dog"], "finite numbers"),
        ([21, 0, "40", 30, "dog"], "finite numbers"),
        ([21, 0, 10**400, 30, "dog"], "outside the 40x30 image"),
        ([40, 0, 21, 30, "dog"], "inverted"),
        ([21, 10, 40, 10, "dog"], "inverted"),
        ([21, 0, 41, 30, "dog"], "outside the 40x30 image"),
        ([-1, 0, 40, 30, "dog"], "outside the 40x30 image"),
        ([21, 0, 40, 30.5, "dog"], "outside the 40x30 image"),
        ([21, 0, 40, 30, " "], "label must be a non-empty string"),
        ([21, 0, 40, 30, 3], "label must be a non-empty string"),
    ],
    ids=str,
)
def test_bad_box_is_located(dataset: Path, box: Any, message: str) -> None:
    record = _detect(dataset)
    record["boxes"][1] = box
    path = _write(dataset, "train", [*_records(dataset, "train"), record])
    problem = _only(validate_dataset(dataset), path, 5, "boxes[1]")
    assert message in problem.message


@pytest.mark.parametrize(("boxes", "message"), [([], "required for task 'detect'"), ({}, "must be a list")])
def test_detect_needs_a_list_of_boxes(dataset: Path, boxes: Any, message: str) -> None:
    record = {**_detect(dataset), "boxes": boxes}
    path = _write(dataset, "val", [record])
    assert message in _only(validate_dataset(dataset), path, 1, "boxes").message


# Rule 5: canonical suffixes -----------------------------------------------------------------


def test_extract_needs_fields(dataset: Path) -> None:
    record = _extract(dataset)
    del record["fields"]
    path = _write(dataset, "test", [record])
    assert "required for task 'extract'" in _only(validate_dataset(dataset), path, 1, "fields").message


def test_extract_suffix_must_be_canonical(dataset: Path) -> None:
    record = {**_extract(dataset), "suffix": '{"total": "12.50", "date": "2024-01-31"}'}  # keys not sorted
    path = _write(dataset, "test", [record])
    message = _only(validate_dataset(dataset), path, 1, "suffix").message
    assert '\'{"total": "12.50", "date": "2024-01-31"}\'' in message
    assert repr(get_task("extract").render_suffix(FIELDS)) in message


def test_detect_suffix_must_be_canonical(dataset: Path) -> None:
    record = {**_detect(dataset), "suffix": "<loc0000><loc0000><loc0512><loc0512> cat"}
    path = _write(dataset, "train", [*_records(dataset, "train"), record])
    message = _only(validate_dataset(dataset), path, 5, "suffix").message
    assert "<loc0000><loc0000><loc0512><loc0512> cat" in message and "the detect target renders as" in message


# Rules 6 and 7: across lines and splits -----------------------------------------------------


def test_duplicate_id_names_the_first_use(dataset: Path) -> None:
    path = _update(dataset, "val", 1, id="train-00002")
    problem = _only(validate_dataset(dataset), path, 1, "id")
    assert f"first used at {dataset / 'train.jsonl'}:3" in problem.message


def test_train_image_bytes_in_test_are_leakage(dataset: Path) -> None:
    shutil.copyfile(dataset / "images" / "train-00001.png", dataset / "images" / "copy.png")
    path = _update(dataset, "test", 2, image="images/copy.png")
    problem = _only(validate_dataset(dataset), path, 2, "image")
    assert f"same image bytes as train example at {dataset / 'train.jsonl'}:2" in problem.message


# All at once, read only ---------------------------------------------------------------------


def _break_several(dataset: Path) -> None:
    _update(dataset, "train", 2, suffix=DELETE, task="pose")
    _update(dataset, "val", 2, image="images/nope.png")
    _update(dataset, "test", 1, id="train-00003", image=_cut(60)(dataset))
    (dataset / "images" / "train-00002.png").write_bytes(b"")
    train = dataset / "train.jsonl"
    lines = train.read_text().splitlines()
    lines[0] = "{not json"
    train.write_text("\n".join(lines) + "\n")


def test_every_problem_is_reported_at_once(dataset: Path) -> None:
    _break_several(dataset)
    report = validate_dataset(dataset)
    located = {(Path(p.file).name, p.line, p.field) for p in report.problems}
    assert located == {
        ("train.jsonl", 1, None),
        ("train.jsonl", 2, "suffix"),
        ("train.jsonl", 2, "task"),
        ("train.jsonl", 3, "image"),
        ("val.jsonl", 2, "image"),
        ("test.jsonl", 1, "id"),
        ("test.jsonl", 1, "image"),
    }
    assert len(report.problems) == len(located)
    with pytest.raises(InvalidDatasetError) as raised:
        report.raise_if_invalid()
    assert isinstance(raised.value, DataError) and isinstance(raised.value, ValueError)
    assert raised.value.problems == report.problems
    assert str(raised.value).splitlines()[1:] == [str(p) for p in report.problems]


def test_validation_writes_nothing(dataset: Path) -> None:
    _write(dataset, "val", [*_records(dataset, "val"), _detect(dataset), _extract(dataset)])
    _break_several(dataset)
    before = _tree(dataset.parent)
    validate_dataset(dataset)
    assert _tree(dataset.parent) == before
