"""Converting PaliGemma JSONL, local Hugging Face datasets and COCO JSON into palitune datasets.

Every fixture is built here: PIL-rendered images, hand-written JSON, and datasets written
with ``save_to_disk``, ``to_parquet`` or as an imagefolder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from data.loc_tokens import decode_boxes, encode_boxes
from data.schema import SPLITS, DataError, Example, read_split
from data.sources import SplitRatios, carve_splits, ingest
from data.tasks import ImageSize, detect_prefix, get_task


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep what ``datasets`` writes (lock files of streamed loads) out of the user's cache."""
    from datasets import config

    monkeypatch.setattr(config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("hf-cache"))


def _image(path: Path, size: tuple[int, int], colour: tuple[int, int, int] = (200, 40, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def _jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def _read(out: Path) -> dict[str, list[Example]]:
    return {split: read_split(out, split) for split in SPLITS}


def _manifest(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "manifest.json").read_text()))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_images_inside(out: Path, splits: dict[str, list[Example]]) -> None:
    for examples in splits.values():
        for example in examples:
            assert example.image.startswith("images/")
            assert (out / example.image).is_file()
    ids = [e.id for examples in splits.values() for e in examples]
    assert len(ids) == len(set(ids))


def _within_one_bin(decoded: list[Any], expected: list[list[Any]], size: ImageSize) -> None:
    assert len(decoded) == len(expected)
    for got, want in zip(decoded, expected, strict=True):
        assert got[4] == want[4]
        for axis, (g, w) in enumerate(zip(got[:4], want[:4], strict=True)):
            assert abs(g - w) <= (size.width if axis % 2 == 0 else size.height) / 1024


# ---------------------------------------------------------------- PaliGemma JSONL


DET_BOXES: list[list[Any]] = [[4.0, 2.0, 20.0, 18.0, "cat"], [22.0, 5.0, 39.0, 19.0, "dog"]]


@pytest.fixture
def jsonl_src(tmp_path: Path) -> Path:
    src = tmp_path / "roboflow"
    _image(src / "a.png", (40, 20))
    _image(src / "b.jpg", (32, 32), (10, 10, 200))
    _jsonl(
        src / "_annotations.train.jsonl",
        [
            {"image": "a.png", "prefix": "answer en what colour is it?", "suffix": "red"},
            {"image": "a.png", "prefix": "detect cat ; dog", "suffix": encode_boxes(DET_BOXES, 40, 20)},
            {"image": "b.jpg", "prefix": "caption en", "suffix": "a blue square"},
        ],
    )
    _jsonl(src / "_annotations.valid.jsonl", [{"image": "b.jpg", "prefix": "ocr", "suffix": "HELLO"}])
    return src


def test_paligemma_jsonl_infers_tasks_and_targets(jsonl_src: Path, tmp_path: Path) -> None:
    out = ingest("paligemma-jsonl", jsonl_src, tmp_path / "out", split_ratios=(0.9, 0.1, 0.0))
    splits = _read(out)
    assert [len(splits[s]) for s in SPLITS] == [3, 1, 0]
    assert (out / "test.jsonl").read_text() == ""
    vqa, det, cap = splits["train"]
    assert [e.id for e in splits["train"]] == ["train-00001", "train-00002", "train-00003"]
    assert (vqa.task, vqa.prefix, vqa.suffix, vqa.answers) == ("vqa", "answer en what colour is it?", "red", ["red"])
    assert (cap.task, cap.answers) == ("caption", ["a blue square"])
    assert det.task == "detect" and det.prefix == "detect cat ; dog"
    _within_one_bin(det.boxes, DET_BOXES, ImageSize(40, 20))
    ocr = splits["val"][0]
    assert (ocr.task, ocr.id, ocr.suffix, ocr.answers) == ("ocr", "val-00001", "HELLO", [])
    assert vqa.image == det.image != cap.image  # named by content, stored once
    assert re.fullmatch(r"images/[0-9a-f]{20}\.jpg", cap.image)  # never the user's file name
    _assert_images_inside(out, splits)
    manifest = _manifest(out)
    assert manifest["counts"] == {"train": {"vqa": 1, "detect": 1, "caption": 1}, "val": {"ocr": 1}}
    assert manifest["images"]["count"] == 2
    assert manifest["source"]["format"] == "paligemma-jsonl" and manifest["source"]["path"] == str(jsonl_src)


def test_paligemma_jsonl_task_given_by_caller(jsonl_src: Path, tmp_path: Path) -> None:
    (jsonl_src / "_annotations.valid.jsonl").unlink()
    _jsonl(jsonl_src / "_annotations.train.jsonl", [{"image": "a.png", "prefix": "answer en total?", "suffix": "3"}])
    out = ingest("paligemma-jsonl", jsonl_src, tmp_path / "out", task="docvqa")
    splits = _read(out)
    assert [(e.task, e.answers) for e in splits["train"]] == [("docvqa", ["3"])]
    assert splits["val"] == []  # a single image cannot be carved


def test_paligemma_jsonl_answer_whitespace_is_normalised(jsonl_src: Path, tmp_path: Path) -> None:
    """Generated text is stripped, so an export's stray spaces must not make its answer unmatchable."""
    (jsonl_src / "_annotations.valid.jsonl").unlink()
    record = {"image": "a.png", "prefix": "answer en what colour?", "suffix": " dark  red "}
    _jsonl(jsonl_src / "_annotations.train.jsonl", [record])
    (example,) = _read(ingest("paligemma-jsonl", jsonl_src, tmp_path / "out"))["train"]
    assert example.answers == ["dark red"]


@pytest.mark.parametrize(
    ("record", "field", "message"),
    [
        ({"image": "missing.png", "prefix": "ocr", "suffix": "x"}, "image", "not found"),
        ({"image": "../outside.png", "prefix": "ocr", "suffix": "x"}, "image", "'..'"),
        ({"image": "/etc/hostname", "prefix": "ocr", "suffix": "x"}, "image", "absolute"),
        ({"image": "link.png", "prefix": "ocr", "suffix": "x"}, "image", "symlink"),
        ({"image": "a.png", "prefix": "ocr"}, "suffix", "missing"),
        ({"image": "a.png", "prefix": "detect cat", "suffix": "<loc0001><loc0002> cat"}, "suffix", "decode"),
        ({"image": "a.png", "prefix": "segment cat", "suffix": "x"}, "prefix", "segment"),
    ],
)
def test_paligemma_jsonl_bad_line_is_located(
    jsonl_src: Path, tmp_path: Path, record: dict[str, Any], field: str, message: str
) -> None:
    _image(tmp_path / "outside.png", (8, 8))
    (jsonl_src / "link.png").symlink_to(tmp_path / "outside.png")
    good = {"image": "a.png", "prefix": "ocr", "suffix": "x"}
    path = _jsonl(jsonl_src / "_annotations.train.jsonl", [good, record])
    with pytest.raises(DataError, match=message) as err:
        ingest("paligemma-jsonl", jsonl_src, tmp_path / "out")
    assert (err.value.file, err.value.line, err.value.field) == (str(path), 2, field)


def test_paligemma_jsonl_needs_an_annotation_file(jsonl_src: Path, tmp_path: Path) -> None:
    (jsonl_src / "_annotations.train.jsonl").unlink()
    out = ingest("paligemma-jsonl", jsonl_src, tmp_path / "out", eval_only=True)  # a valid file alone will do
    assert [len(read_split(out, s)) for s in SPLITS] == [0, 0, 1]
    (jsonl_src / "_annotations.valid.jsonl").unlink()
    with pytest.raises(DataError, match="_annotations.train.jsonl: no annotations found"):
        ingest("paligemma-jsonl", jsonl_src, tmp_path / "again")


# ---------------------------------------------------------------- Hugging Face


def _hf_dataset(rows: dict[str, Any]) -> Any:
    from datasets import Dataset
    from datasets import Image as ImageFeature

    return Dataset.from_dict(rows).cast_column("image", ImageFeature())


def _pages(n: int) -> list[Image.Image]:
    return [Image.new("RGB", (30 + i, 20), (i * 20 % 255, 90, 30)) for i in range(n)]


def test_hf_save_to_disk_docvqa(tmp_path: Path) -> None:
    from datasets import DatasetDict

    pages = _pages(3)
    train = _hf_dataset(
        {
            "image": [pages[0], pages[0], pages[1]],
            "question": ["What  total?", "Date?", "Who?"],
            "answers": [["12.50", "12.5"], ["May 1"], ["Ann"]],
        }
    )
    val = _hf_dataset({"image": [pages[2]], "question": ["Where?"], "answers": [["Paris"]]})
    DatasetDict({"train": train, "validation": val}).save_to_disk(tmp_path / "hf")
    out = ingest("hf", tmp_path / "hf", tmp_path / "out", split_ratios=(0.9, 0.1, 0.0))
    splits = _read(out)
    assert [len(splits[s]) for s in SPLITS] == [3, 1, 0]
    first = splits["train"][0]
    assert (first.task, first.id, first.prefix) == ("docvqa", "train-00000", "answer en What total?")
    assert (first.suffix, first.answers) == ("12.50", ["12.50", "12.5"])
    assert splits["val"][0].id == "val-00000" and splits["val"][0].answers == ["Paris"]
    assert splits["train"][0].image == splits["train"][1].image != splits["train"][2].image
    assert all(e.image.endswith(".png") for e in splits["train"])
    with Image.open(out / first.image) as stored:
        assert stored.size == (30, 20)
    _assert_images_inside(out, splits)
    manifest = _manifest(out)
    assert manifest["counts"] == {"train": {"docvqa": 3}, "val": {"docvqa": 1}}
    assert manifest["source"]["layout"] == "save_to_disk"
    assert manifest["source"]["splits"] == {"train": "train", "validation": "val"}


def test_hf_parquet_chartqa_carves_val_deterministically(tmp_path: Path) -> None:
    rows = {"image": _pages(10), "query": [f"value {i}?" for i in range(10)], "label": [str(i) for i in range(10)]}
    (tmp_path / "pq" / "data").mkdir(parents=True)
    _hf_dataset(rows).to_parquet(str(tmp_path / "pq" / "data" / "train-00000-of-00001.parquet"))
    first = _read(ingest("hf", tmp_path / "pq", tmp_path / "a", split_ratios=(0.8, 0.2, 0.0), seed=3))
    assert [len(first[s]) for s in SPLITS] == [8, 2, 0]
    assert {e.task for e in first["train"]} == {"chartqa"}
    example = next(e for e in first["train"] + first["val"] if e.id == "train-00004")
    assert (example.prefix, example.suffix, example.answers) == ("answer en value 4?", "4", ["4"])
    assert not {e.image for e in first["train"]} & {e.image for e in first["val"]}
    again = ingest("hf", tmp_path / "pq", tmp_path / "b", split_ratios=(0.8, 0.2, 0.0), seed=3)
    assert (again / "val.jsonl").read_bytes() == (tmp_path / "a" / "val.jsonl").read_bytes()
    assert _manifest(again)["source"]["carved"] == {"val": {"from": "train", "images": 2, "examples": 2}}


def test_hf_imagefolder_captions(tmp_path: Path) -> None:
    src = tmp_path / "folder"
    for split, n in (("train", 2), ("test", 1)):
        records = []
        for i in range(n):
            _image(src / split / f"{i}.png", (16, 12 + i), (i * 90, 10, 10))
            records.append({"file_name": f"{i}.png", "captions": [f"picture {i} of {split}", "a red square"]})
        _jsonl(src / split / "metadata.jsonl", records)
    out = ingest("hf", src, tmp_path / "out", split_ratios=(0.9, 0.0, 0.1))
    splits = _read(out)
    assert [len(splits[s]) for s in SPLITS] == [2, 0, 1]
    example = splits["test"][0]
    assert (example.task, example.prefix, example.suffix) == ("caption", "caption en", "picture 0 of test")
    assert example.answers == ["picture 0 of test", "a red square"]
    _assert_images_inside(out, splits)
    assert _manifest(out)["source"]["layout"] == "imagefolder"


def test_hf_columns_override(tmp_path: Path) -> None:
    _hf_dataset({"image": _pages(2), "q": ["a?", "b?"], "a": ["x", "y"]}).save_to_disk(tmp_path / "hf")
    columns = {"question": "q", "answers": "a"}
    out = ingest("hf", tmp_path / "hf", tmp_path / "out", task="vqa", columns=columns, split_ratios=(0.5, 0.5, 0))
    splits = _read(out)
    assert len(splits["train"]) == len(splits["val"]) == 1
    assert {(e.task, e.suffix) for e in splits["train"] + splits["val"]} == {("vqa", "x"), ("vqa", "y")}
    assert _manifest(out)["source"]["columns"] == {"image": "image", "question": "q", "answers": "a"}


def test_hf_bad_input_is_located(tmp_path: Path) -> None:
    rows = {"image": _pages(2), "question": ["a?", "b?"], "answers": [["x"], []]}
    _hf_dataset(rows).save_to_disk(tmp_path / "bad")
    with pytest.raises(DataError, match="non-empty string or list") as err:
        ingest("hf", tmp_path / "bad", tmp_path / "out")
    assert (err.value.file, err.value.line, err.value.field) == (f"{tmp_path / 'bad'}[train]", 1, "answers")

    _hf_dataset({"image": _pages(1), "question": ["a?"], "text": ["x"]}).save_to_disk(tmp_path / "cols")
    with pytest.raises(DataError, match=r"column not found \(the answers\)") as err:
        ingest("hf", tmp_path / "cols", tmp_path / "out", task="docvqa")
    assert err.value.field == "answers"
    with pytest.raises(DataError, match="cannot tell the task"):
        ingest("hf", tmp_path / "cols", tmp_path / "out")


def test_hf_imagefolder_missing_file_is_located(tmp_path: Path) -> None:
    src = tmp_path / "folder"
    _image(src / "train" / "0.png", (8, 8))
    meta = _jsonl(src / "train" / "metadata.jsonl", [{"file_name": "0.png", "caption": "x"}, {"file_name": "1.png"}])
    with pytest.raises(DataError, match="image file not found") as err:
        ingest("hf", src, tmp_path / "out")
    assert (err.value.file, err.value.line, err.value.field) == (str(meta), 2, "file_name")


# ---------------------------------------------------------------- COCO


def _coco_src(tmp_path: Path) -> Path:
    src = tmp_path / "coco"
    _image(src / "train2017" / "000001.jpg", (64, 48))
    _image(src / "train2017" / "000002.jpg", (50, 40), (20, 200, 20))
    _image(src / "train2017" / "000003.jpg", (20, 20))
    _image(src / "images" / "val2017" / "000009.png", (32, 32))
    categories = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 7, "name": "bird"}]
    train = {
        "images": [
            {"id": 1, "file_name": "000001.jpg", "width": 64, "height": 48},
            {"id": 2, "file_name": "000002.jpg", "width": 50, "height": 40},
            {"id": 3, "file_name": "000003.jpg", "width": 20, "height": 20},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [4, 6, 20.5, 30], "iscrowd": 0},
            {"id": 11, "image_id": 1, "category_id": 2, "bbox": [30, 10, 34, 38], "iscrowd": 0},
            {"id": 12, "image_id": 2, "category_id": 2, "bbox": [1, 1, 10, 10], "iscrowd": 0},
            {"id": 13, "image_id": 2, "category_id": 1, "bbox": [0, 0, 50, 40], "iscrowd": 1},
        ],
        "categories": categories,
    }
    val = {
        "images": [{"id": 9, "file_name": "000009.png", "width": 32, "height": 32}],
        "annotations": [{"id": 20, "image_id": 9, "category_id": 7, "bbox": [2, 2, 8, 8]}],
        "categories": categories,
    }
    (src / "annotations").mkdir()
    (src / "annotations" / "instances_train2017.json").write_text(json.dumps(train, indent=1))
    (src / "annotations" / "instances_val2017.json").write_text(json.dumps(val))
    return src


def _edit_json(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_coco_detection_round_trip(tmp_path: Path) -> None:
    src = _coco_src(tmp_path)
    out = ingest("coco", src, tmp_path / "out", split_ratios=(0.9, 0.1, 0.0))
    splits = _read(out)
    assert [len(splits[s]) for s in SPLITS] == [2, 1, 0]
    first, second = splits["train"]
    assert (first.id, second.id, splits["val"][0].id) == ("train-1", "train-2", "val-9")
    assert first.prefix == second.prefix == "detect bird ; cat ; dog" == detect_prefix(["cat", "dog", "bird"])
    assert first.boxes == [[4, 6, 24.5, 36, "cat"], [30, 10, 64, 48, "dog"]]
    assert second.boxes == [[1, 1, 11, 11, "dog"]]  # the crowd region is left out
    size = ImageSize(64, 48)
    assert first.suffix == get_task("detect").render_suffix(first.boxes, size)
    _within_one_bin(decode_boxes(first.suffix, size.width, size.height), first.boxes, size)
    assert first.image.endswith(".jpg") and splits["val"][0].image.endswith(".png")
    _assert_images_inside(out, splits)
    manifest = _manifest(out)
    assert manifest["counts"] == {"train": {"detect": 2}, "val": {"detect": 1}}
    assert manifest["source"]["skipped_images"] == {"train": 1, "val": 0}
    assert manifest["source"]["skipped_crowd"] == {"train": 1, "val": 0}
    assert manifest["source"]["files"]["train"] == "annotations/instances_train2017.json"


def test_coco_captions(tmp_path: Path) -> None:
    src = tmp_path / "coco"
    _image(src / "images" / "a.png", (24, 16))
    _image(src / "images" / "b.png", (24, 16), (0, 0, 0))
    data = {
        "images": [
            {"id": 5, "file_name": "a.png", "width": 24, "height": 16},
            {"id": 6, "file_name": "b.png", "width": 24, "height": 16},
        ],
        "annotations": [
            {"image_id": 5, "caption": "A red  box."},
            {"image_id": 6, "caption": "Black."},
            {"image_id": 5, "caption": "Something red."},
        ],
    }
    _jsonl(src / "annotations" / "captions_train.json", [data])
    out = ingest("coco", src, tmp_path / "out", split_ratios=(0.5, 0.5, 0.0))
    examples = {e.id: e for split in _read(out).values() for e in split}
    assert set(examples) == {"train-5", "train-6"}
    assert (examples["train-5"].prefix, examples["train-5"].suffix) == ("caption en", "A red box.")
    assert examples["train-5"].answers == ["A red box.", "Something red."]
    assert _manifest(out)["counts"] == {"train": {"caption": 1}, "val": {"caption": 1}}


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (lambda d: d["images"][1].update(width=51), "images[1].width", "says 51 but"),
        (lambda d: d["annotations"][2].update(bbox=[1, 1, -3, 10]), "annotations[2].bbox", "positive"),
        (lambda d: d["annotations"][1].update(bbox=[30, 10, 60, 38]), "annotations[1].bbox", "outside"),
        (lambda d: d["annotations"][0].update(category_id=99), "annotations[0].category_id", "no entry"),
        (lambda d: d["images"][0].update(file_name="../secret.jpg"), "images[0].file_name", "'..'"),
        (lambda d: d["images"][0].update(file_name="nope.jpg"), "images[0].file_name", "not found"),
    ],
)
def test_coco_bad_input_is_located(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], field: str, message: str
) -> None:
    src = _coco_src(tmp_path)
    path = src / "annotations" / "instances_train2017.json"
    _edit_json(path, edit)
    with pytest.raises(DataError, match=message) as err:
        ingest("coco", src, tmp_path / "out")
    assert (err.value.file, err.value.field) == (str(path), field)


def test_coco_unknown_split(tmp_path: Path) -> None:
    src = _coco_src(tmp_path)
    (src / "annotations" / "instances_val2017.json").rename(src / "annotations" / "instances_extra.json")
    with pytest.raises(DataError, match="unknown split 'extra'"):
        ingest("coco", src, tmp_path / "out")


# ---------------------------------------------------------------- all formats


def _break_jsonl(src: Path) -> None:
    _jsonl(src / "_annotations.train.jsonl", [{"image": "gone.png", "prefix": "ocr", "suffix": "x"}])


def _break_hf(src: Path) -> None:
    _hf_dataset({"image": _pages(1), "question": ["a?"], "answers": [[]]}).save_to_disk(src)


def _break_coco(src: Path) -> None:
    _edit_json(src / "annotations" / "instances_val2017.json", lambda d: d["images"][0].update(height=3))


def _hf_src(tmp_path: Path) -> Path:
    _hf_dataset({"image": _pages(3), "question": ["a?", "b?", "c?"], "answers": [["x"], ["y"], ["z"]]}).save_to_disk(
        tmp_path / "hf"
    )
    return tmp_path / "hf"


def _jsonl_src(tmp_path: Path) -> Path:
    _image(tmp_path / "rf" / "a.png", (8, 8))
    _jsonl(tmp_path / "rf" / "_annotations.train.jsonl", [{"image": "a.png", "prefix": "ocr", "suffix": "x"}])
    return tmp_path / "rf"


@pytest.mark.parametrize(
    ("fmt", "build", "corrupt"),
    [("paligemma-jsonl", _jsonl_src, _break_jsonl), ("hf", _hf_src, _break_hf), ("coco", _coco_src, _break_coco)],
)
def test_failed_ingest_leaves_previous_output(
    tmp_path: Path, fmt: str, build: Callable[[Path], Path], corrupt: Callable[[Path], None]
) -> None:
    src = build(tmp_path)
    out = ingest(fmt, src, tmp_path / "dvc-data" / "v1")
    before = _snapshot(out)
    corrupt(src)
    with pytest.raises(DataError):
        ingest(fmt, src, out)
    assert _snapshot(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["v1"]  # no staged folder left behind


def test_arguments_are_checked(tmp_path: Path) -> None:
    src = _jsonl_src(tmp_path)
    with pytest.raises(ValueError, match="unknown format"):
        ingest("yolo", src, tmp_path / "out")
    with pytest.raises(ValueError, match="unknown task"):
        ingest("paligemma-jsonl", src, tmp_path / "out", task="pose")
    with pytest.raises(DataError, match="holds mask codes, not masks: ingest the COCO segmentation export"):
        ingest("paligemma-jsonl", src, tmp_path / "out", task="segment")
    with pytest.raises(ValueError, match="hf format only"):
        ingest("paligemma-jsonl", src, tmp_path / "out", columns={"question": "q"})
    with pytest.raises(ValueError, match="would replace the source"):
        ingest("paligemma-jsonl", src, tmp_path)
    with pytest.raises(DataError, match="source folder not found"):
        ingest("coco", tmp_path / "nowhere", tmp_path / "out")


def test_carve_splits_keeps_images_together() -> None:
    examples = [Example(f"images/{i % 4}.png", "p", "s", "vqa", f"train-{i}") for i in range(12)]
    splits, carved = carve_splits({"train": examples}, SplitRatios(0.5, 0.25, 0.25), seed=1)
    assert carved == {s: {"from": "train", "images": 1, "examples": 3} for s in ("val", "test")}
    images = [{e.image for e in splits[s]} for s in SPLITS]
    assert [len(i) for i in images] == [2, 1, 1] and not (images[0] & images[1] or images[0] & images[2])
    assert carve_splits({"train": examples, "val": examples[:1]}, SplitRatios(0.9, 0.1, 0), seed=1)[1] == {}
    shuffled, _ = carve_splits({"train": examples[::-1]}, SplitRatios(0.5, 0.25, 0.25), seed=1)
    assert {e.id for e in shuffled["val"]} == {e.id for e in splits["val"]}  # the order of examples does not matter
