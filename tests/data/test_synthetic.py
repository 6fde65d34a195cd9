"""Synthetic generators: one per task, valid, deterministic, and their suffixes parse back."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import re
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from data.loc_tokens import BINS, decode_boxes
from data.schema import SPLITS, iter_dataset
from data.synthetic import (
    GENERATORS,
    SHAPES,
    Sample,
    SplitSizes,
    SyntheticGenerator,
    generator_of,
    write_shapes_vqa,
    write_synthetic,
)
from data.synthetic.common import write_dataset
from data.tasks import TASKS, ImageSize, detect_prefix, extract_prefix, get_task
from data.validate import validate_dataset

SIZES = SplitSizes(train=12, val=4, test=4)
# sha256 over (relative path, bytes) of write_shapes_vqa(sizes=SIZES), seed 0: datasets already
# versioned keep their DVC hash only while this holds
SHAPES_VQA_DIGEST = "57d4b62a46dc5546353eaf9b4dc83dd16cb62cc873a4ce1baed58726aafdebe6"


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _digest(root: Path) -> str:
    digest = hashlib.sha256()
    for name, data in _files(root).items():
        digest.update(name.encode() + b"\0" + data)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every task's dataset, seed 0, rendered once for the module. Treat as read-only."""
    root = tmp_path_factory.mktemp("synthetic")
    return {task: write_synthetic(task, root / task, sizes=SIZES) for task in GENERATORS}


def test_every_task_has_a_generator() -> None:
    assert sorted(GENERATORS) == sorted(TASKS)
    assert all(generator.task == task for task, generator in GENERATORS.items())


@pytest.mark.parametrize("task", sorted(TASKS))
def test_dataset_is_valid_and_counted(task: str, rendered: dict[str, Path]) -> None:
    report = validate_dataset(rendered[task])
    assert report.ok, [str(problem) for problem in report.problems]
    manifest = json.loads((rendered[task] / "manifest.json").read_text())
    assert manifest["counts"] == {split: {task: SIZES.of(split)} for split in SPLITS}
    assert manifest["images"]["count"] == SIZES.train + SIZES.val + SIZES.test
    assert manifest["source"] == {"generator": GENERATORS[task].name, "seed": 0, "image_size": 64}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_same_seed_same_bytes_other_seed_other_bytes(task: str, rendered: dict[str, Path], tmp_path: Path) -> None:
    first = _files(rendered[task])
    assert _files(write_synthetic(task, tmp_path / "again", sizes=SIZES)) == first
    other = _files(write_synthetic(task, tmp_path / "other", sizes=SIZES, seed=1))
    assert other.keys() == first.keys()
    images = [name for name in first if name.startswith("images/")]
    assert sum(other[name] != first[name] for name in images) > len(images) // 2
    assert all(other[f"{split}.jsonl"] != first[f"{split}.jsonl"] for split in SPLITS)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_no_image_repeats(task: str, rendered: dict[str, Path]) -> None:
    images = [data for name, data in _files(rendered[task]).items() if name.startswith("images/")]
    assert len({hashlib.sha256(data).hexdigest() for data in images}) == len(images)


@pytest.mark.parametrize("task", sorted(task for task in TASKS if TASKS[task].target == "suffix"))
def test_text_suffix_is_an_answer_and_parses_back(task: str, rendered: dict[str, Path]) -> None:
    for _, example in iter_dataset(rendered[task]):
        assert get_task(task).parse_output(example.suffix) == example.suffix
        assert example.answers[0] == example.suffix


def test_detect_suffix_decodes_to_the_boxes(rendered: dict[str, Path]) -> None:
    tolerance = 64 / BINS
    for _, example in iter_dataset(rendered["detect"]):
        assert example.prefix == detect_prefix(SHAPES) == "detect circle ; square ; triangle"
        with Image.open(rendered["detect"] / example.image) as image:
            size = ImageSize(*image.size)
        decoded = get_task("detect").parse_output(example.suffix, size, labels=SHAPES)
        assert decoded == decode_boxes(example.suffix, size.width, size.height, SHAPES)
        assert len(decoded) == len(example.boxes) in (1, 2, 3)
        for box, target in zip(decoded, example.boxes, strict=True):
            assert box.label == target[4]
            assert all(abs(a - b) <= tolerance for a, b in zip(box[:4], target[:4], strict=True)), (box, target)


def test_detect_boxes_are_tight(rendered: dict[str, Path]) -> None:
    """Around each box (one pixel wider), the pixels unlike the background are exactly the box."""
    for _, example in iter_dataset(rendered["detect"]):
        with Image.open(rendered["detect"] / example.image) as image:
            image = image.convert("RGB")
        background = Image.new("RGB", image.size, image.getpixel((0, 0)))  # corners stay background...
        if example.boxes[0][:2] == [0, 0]:  # ...except where a shape touches them
            background = Image.new("RGB", image.size, image.getpixel((image.width - 1, image.height - 1)))
        drawn = ImageChops.difference(image, background)
        for x0, y0, x1, y1, _ in example.boxes:
            window = (max(0, x0 - 1), max(0, y0 - 1), min(image.width, x1 + 1), min(image.height, y1 + 1))
            left, top, right, bottom = drawn.crop(window).getbbox() or (0, 0, 0, 0)
            assert [left + window[0], top + window[1], right + window[0], bottom + window[1]] == [x0, y0, x1, y1]


def test_extract_suffix_parses_to_the_fields(rendered: dict[str, Path]) -> None:
    for _, example in iter_dataset(rendered["extract"]):
        assert example.prefix == extract_prefix(["total", "date"]) == "extract date ; total"
        assert get_task("extract").parse_output(example.suffix) == example.fields
        assert sorted(example.fields) == ["date", "total"]


def test_questions_ask_what_the_image_shows(rendered: dict[str, Path]) -> None:
    for _, example in iter_dataset(rendered["chartqa"]):
        assert example.prefix in {f"answer en what is the value of {label}?" for label in "ABC"}
        assert example.suffix in [str(n) for n in range(1, 10)]
    for _, example in iter_dataset(rendered["ocr"]):
        assert example.prefix == "ocr" and example.suffix.isalpha() and example.suffix.isupper()
        assert len(example.suffix) in (3, 4)
    for _, example in iter_dataset(rendered["caption"]):
        assert example.prefix == "caption en" and len(example.answers) == 3


def test_shapes_vqa_bytes_are_unchanged(tmp_path: Path) -> None:
    assert _digest(write_shapes_vqa(tmp_path / "vqa", sizes=SIZES)) == SHAPES_VQA_DIGEST


def test_write_synthetic_vqa_is_shapes_vqa(rendered: dict[str, Path], tmp_path: Path) -> None:
    assert _files(write_shapes_vqa(tmp_path / "vqa", sizes=SIZES)) == _files(rendered["vqa"])


@pytest.mark.parametrize("task", sorted(TASKS))
def test_other_image_sizes(task: str, tmp_path: Path) -> None:
    out = write_synthetic(task, tmp_path / task, sizes=SplitSizes(train=3, val=1, test=1), image_size=96)
    assert validate_dataset(out).ok
    images = json.loads((out / "manifest.json").read_text())["images"]
    assert images["width"] == images["height"] == [96, 96]


def _grey_levels(levels: int) -> SyntheticGenerator:
    """A generator with only ``levels`` distinct images."""

    def draw(rng: random.Random, size: int) -> Sample:
        grey = rng.randrange(levels)
        return Sample(Image.new("L", (size, size), grey), "ocr", str(grey), answers=[str(grey)])

    return SyntheticGenerator("grey", "ocr", draw)


def test_repeated_images_are_drawn_again(tmp_path: Path) -> None:
    out = write_dataset(_grey_levels(4), tmp_path / "grey", sizes=SplitSizes(train=2, val=1, test=1), image_size=8)
    assert validate_dataset(out).ok
    suffixes = [example.suffix for _, example in iter_dataset(out)]
    assert sorted(suffixes) == ["0", "1", "2", "3"]


def test_too_few_distinct_images_fail_loudly_and_leave_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="too few distinct images"):
        write_dataset(_grey_levels(2), tmp_path / "grey", sizes=SplitSizes(train=2, val=1, test=0), image_size=8)
    assert list(tmp_path.iterdir()) == []


def test_unknown_task_lists_the_generators(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="no synthetic generator for task 'pose'.*caption"):
        write_synthetic("pose", tmp_path / "x")


@pytest.mark.parametrize(
    ("generator", "message"),
    [
        ("data.synthetic.shapes", "expected 'module:attribute'"),
        ("data.synthetic.nowhere:DRAW", "No module named 'data.synthetic.nowhere'"),
        ("data.synthetic.shapes:NOTHING", "has no attribute 'NOTHING'"),
        ("data.synthetic.shapes:SHAPES", "is a tuple, not a SyntheticGenerator"),
        ("data.synthetic.shapes:SHAPES_DETECT", "draws examples of task 'detect'"),
    ],
)
def test_a_table_entry_naming_no_generator_of_its_task_is_refused(generator: str, message: str) -> None:
    task = dataclasses.replace(get_task("vqa"), generator=generator)
    with pytest.raises(ValueError, match=f"task 'vqa': generator '{generator}': .*{re.escape(message)}"):
        generator_of(task)
