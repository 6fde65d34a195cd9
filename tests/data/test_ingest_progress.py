"""``ingest(..., progress=...)``: every split's loop goes through the progress hook, which sees
every row, line, annotation and image read, and the dataset written is the same with or
without it.

The sources are the download layouts of ``test_layouts`` and ``test_layouts_hf``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from data.sources import ingest
from tests.data.test_layouts import coco_2017, roboflow_coco, roboflow_jsonl, roboflow_paligemma
from tests.data.test_layouts_hf import _docvqa_features, _docvqa_rows, lmms_lab_docvqa

T = TypeVar("T")


@dataclass
class Loop:
    desc: str
    total: int | None
    unit: str
    seen: int = 0


@dataclass
class Recorder:
    """A progress hook that counts what each loop yields, as a bar would."""

    loops: list[Loop] = field(default_factory=list)

    def __call__(self, items: Iterable[T], *, desc: str, total: int | None, unit: str) -> Iterator[T]:
        loop = Loop(desc, total, unit)
        self.loops.append(loop)
        for item in items:
            loop.seen += 1
            yield item

    def seen(self) -> dict[str, int]:
        """Items seen per description, summed over loops that share one (a split in several files)."""
        counts: dict[str, int] = {}
        for loop in self.loops:
            counts[loop.desc] = counts.get(loop.desc, 0) + loop.seen
        return counts


@pytest.fixture
def _datasets_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep what ``datasets`` writes (lock files of streamed loads) out of the user's cache."""
    from datasets import config

    monkeypatch.setattr(config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("hf-cache"))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _ingest_both_ways(src: Path, tmp_path: Path, **kwargs: Any) -> tuple[Recorder, dict[str, Any]]:
    """Ingest ``src`` without and with a recorder; the two datasets must be byte for byte equal.
    Returns the recorder and the manifest's ``source`` block."""
    plain = ingest(None, src, tmp_path / "plain", **kwargs)
    recorder = Recorder()
    tracked = ingest(None, src, tmp_path / "tracked", progress=recorder, **kwargs)
    assert _files(tracked) == _files(plain)
    assert recorder.loops, "no loop went through the progress hook"
    assert all(loop.total in (None, loop.seen) for loop in recorder.loops)  # the bar ends where it said
    return recorder, json.loads((tracked / "manifest.json").read_text())["source"]


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


@pytest.mark.parametrize("layout", [roboflow_jsonl, roboflow_paligemma])
def test_jsonl_progress_sees_every_line_of_every_split(tmp_path: Path, layout: Callable[..., Path]) -> None:
    src = layout(tmp_path, {"train": 3, "valid": 2, "test": 1})
    recorder, source = _ingest_both_ways(src, tmp_path)
    lines = {split: _lines(src / path) for split, path in source["files"].items()}
    assert lines == {"train": 6, "val": 4, "test": 2}  # two lines per image
    assert recorder.seen() == {f"ingest {split}": n for split, n in lines.items()}
    assert recorder.seen() == {f"ingest {split}": n for split, n in source["read"].items()}
    assert {(loop.total, loop.unit) for loop in recorder.loops} == {(6, "line"), (4, "line"), (2, "line")}


@pytest.mark.parametrize(("layout", "task"), [(coco_2017, None), (coco_2017, "caption"), (roboflow_coco, None)])
def test_coco_progress_sees_every_annotation_and_image(
    tmp_path: Path, layout: Callable[..., Path], task: str | None
) -> None:
    src = layout(tmp_path, {"train": 3, "val": 2})
    recorder, source = _ingest_both_ways(src, tmp_path, task=task)
    annotations = {
        split: len(json.loads((src / path).read_text())["annotations"]) for split, path in source["files"].items()
    }
    expected = {f"ingest {split} annotations": n for split, n in annotations.items()}
    expected |= {f"ingest {split} images": n for split, n in source["read"].items() if split in annotations}
    assert recorder.seen() == expected
    assert all(n > 0 for n in expected.values())
    assert {loop.unit for loop in recorder.loops} == {"annotation", "image"}


@pytest.mark.usefixtures("_datasets_cache")
def test_hf_progress_sees_every_row_labelled_or_not(tmp_path: Path) -> None:
    src = lmms_lab_docvqa(tmp_path)
    recorder, source = _ingest_both_ways(src, tmp_path, config="DocVQA")
    assert source["read"]["val"] == 6 and source["dropped"] == {"test": {"no label (null answer)": 2}}
    assert recorder.seen() == {"ingest val": 6, "ingest test": 2}  # unlabelled rows are read too
    assert [(loop.total, loop.unit) for loop in recorder.loops] == [(6, "row"), (2, "row")]  # from parquet footers


@pytest.mark.usefixtures("_datasets_cache")
def test_hf_save_to_disk_progress_knows_its_total(tmp_path: Path) -> None:
    from datasets import Dataset, Features

    rows = _docvqa_rows("train", list(range(5)), True)
    Dataset.from_dict(rows, features=Features(_docvqa_features())).save_to_disk(tmp_path / "saved")
    recorder, _ = _ingest_both_ways(tmp_path / "saved", tmp_path)
    assert [(loop.desc, loop.total, loop.seen) for loop in recorder.loops] == [("ingest train", 5, 5)]


def test_validation_reports_every_line_it_checks(tmp_path: Path) -> None:
    from data.synthetic import SplitSizes, write_shapes_vqa
    from data.validate import validate_dataset

    dataset = write_shapes_vqa(tmp_path / "vqa", sizes=SplitSizes(train=5, val=2, test=3))
    seen: dict[str, int] = {}

    def recorder(items, *, desc, total, unit):  # type: ignore[no-untyped-def]
        for item in items:
            seen[desc] = seen.get(desc, 0) + 1
            yield item

    from data.schema import split_lines

    assert validate_dataset(dataset, progress=recorder).ok
    lines = {f"validate {s}": len(list(split_lines(dataset / f"{s}.jsonl"))) for s in ("train", "val", "test")}
    assert seen == lines and lines["validate train"] >= 5
    assert validate_dataset(dataset, progress=recorder).counts == validate_dataset(dataset).counts
