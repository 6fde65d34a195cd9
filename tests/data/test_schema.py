"""Bad input gets an error naming the file, line and field."""

import json
from pathlib import Path

import pytest

from data.schema import DataError, read_split
from data.synthetic import SplitSizes, write_shapes_vqa


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_shapes_vqa(tmp_path / "vqa", sizes=SplitSizes(train=3, val=1, test=1))


def _rewrite_line(dataset: Path, lineno: int, text: str) -> Path:
    path = dataset / "train.jsonl"
    lines = path.read_text().splitlines()
    lines[lineno - 1] = text
    path.write_text("\n".join(lines) + "\n")
    return path


def test_reads_the_contract(dataset: Path) -> None:
    examples = read_split(dataset, "train")
    assert len(examples) == 3
    assert examples[0].prefix.startswith("answer en ")
    assert examples[0].answers and examples[0].task == "vqa"


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ("{not json", None, "invalid JSON"),
        ('["a list"]', None, "expected a JSON object"),
        (json.dumps({"image": "images/train-00000.png", "prefix": "p", "task": "vqa", "id": "x"}), "suffix", "missing"),
        (
            json.dumps({"image": "../../etc/passwd", "prefix": "p", "suffix": "s", "task": "vqa", "id": "x"}),
            "image",
            "escapes the dataset root",
        ),
        (
            json.dumps({"image": "/etc/passwd", "prefix": "p", "suffix": "s", "task": "vqa", "id": "x"}),
            "image",
            "is absolute; make it relative to the dataset root",
        ),
        (
            json.dumps(
                {
                    "image": "images/train-00000.png",
                    "prefix": "p",
                    "suffix": "s",
                    "task": "vqa",
                    "id": "x",
                    "answers": "red",
                }
            ),
            "answers",
            "list of strings",
        ),
    ],
)
def test_bad_lines_are_located(dataset: Path, line: str, field: str | None, message: str) -> None:
    path = _rewrite_line(dataset, 2, line)
    with pytest.raises(DataError) as raised:
        read_split(dataset, "train")
    err = raised.value
    assert (err.file, err.line, err.field) == (str(path), 2, field)
    assert message in str(err)
    assert str(err).startswith(f"{path}:2: ")


def test_non_utf8_and_missing_split_are_named(dataset: Path) -> None:
    (dataset / "val.jsonl").write_bytes(b'{"image": "\xff"}\n')
    with pytest.raises(DataError, match="val.jsonl:1: not UTF-8"):
        read_split(dataset, "val")
    (dataset / "test.jsonl").unlink()
    with pytest.raises(DataError, match="test.jsonl: split file not found"):
        read_split(dataset, "test")
