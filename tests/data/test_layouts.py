"""Roboflow exports and COCO 2017, laid out on disk exactly as they are downloaded, ingested
with the format detected; and the carving of the splits a source lacks.

Layouts (file and folder names, JSON keys) follow Roboflow's ``paligemma``, ``jsonl`` and
``coco`` exports (the last two as maestro's ``JSONLDataset`` and ``COCODataset`` read them) and
cocodataset.org's 2017 annotation zip.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from data.loc_tokens import encode_boxes
from data.schema import SPLITS, DataError, Example, read_split
from data.sources import detect_format, ingest
from data.validate import validate_dataset

ROBOFLOW_READMES = ("README.dataset.txt", "README.roboflow.txt")


def _image(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path.name


def _jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def _read(out: Path) -> dict[str, list[Example]]:
    return {split: read_split(out, split) for split in SPLITS}


def _counts(out: Path) -> list[int]:
    return [len(examples) for examples in _read(out).values()]


def _source(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "manifest.json").read_text())["source"])


def _roboflow_readmes(download: Path) -> None:
    for name in ROBOFLOW_READMES:
        (download / name).write_text("Exported via roboflow.com\n")


# ---------------------------------------------------------------- Roboflow paligemma / jsonl


_SHADES = {"train": 0, "valid": 1, "val": 1, "test": 2}  # distinct bytes per split: shared ones would be leakage


def _roboflow_lines(folder: Path, split: str, n: int) -> list[dict[str, Any]]:
    """``n`` images of ``split`` in ``folder``, named as Roboflow names them, with one detection
    and one question each."""
    lines = []
    for i in range(n):
        name = _image(folder / f"pallet_{split}_{i}_jpg.rf.{i:04x}.jpg", (40, 30), (20 * i, 90, 60 * _SHADES[split]))
        boxes: list[list[float | str]] = [[2.0 + i, 3.0, 20.0 + i, 25.0, "pallet"]]
        lines.append({"image": name, "prefix": "detect pallet", "suffix": encode_boxes(boxes, 40, 30)})
        lines.append({"image": name, "prefix": "answer en how many pallets?", "suffix": "1"})
    return lines


def roboflow_paligemma(root: Path, sizes: dict[str, int]) -> Path:
    """A Roboflow ``paligemma`` download: ``dataset/_annotations.<split>.jsonl`` beside the images."""
    download = root / "Pallets-1"
    for split, n in sizes.items():
        _jsonl(download / "dataset" / f"_annotations.{split}.jsonl", _roboflow_lines(download / "dataset", split, n))
    _roboflow_readmes(download)
    return download


def roboflow_jsonl(root: Path, sizes: dict[str, int]) -> Path:
    """A Roboflow ``jsonl`` download: ``<split>/annotations.jsonl``, each split's images in its folder."""
    download = root / "Pallets-1-jsonl"
    for split, n in sizes.items():
        _jsonl(download / split / "annotations.jsonl", _roboflow_lines(download / split, split, n))
    _roboflow_readmes(download)
    return download


def test_roboflow_paligemma_download_is_detected_at_its_root(tmp_path: Path) -> None:
    src = roboflow_paligemma(tmp_path, {"train": 4, "valid": 1, "test": 1})
    assert detect_format(src) == detect_format(src / "dataset") == "paligemma-jsonl"
    out = ingest(None, src, tmp_path / "out")
    assert _counts(out) == [8, 2, 2]
    source = _source(out)
    assert source["files"]["val"] == "dataset/_annotations.valid.jsonl"
    assert (source["format"], source["format_detected"], source["carved"], source["dropped"]) == (
        "paligemma-jsonl",
        True,
        {},
        {},
    )
    assert validate_dataset(out).ok


def test_roboflow_jsonl_export_reads_each_split_folder(tmp_path: Path) -> None:
    src = roboflow_jsonl(tmp_path, {"train": 4, "valid": 2, "test": 1})
    assert detect_format(src) == "roboflow-jsonl"
    out = ingest(None, src, tmp_path / "out")
    splits = _read(out)
    assert [len(examples) for examples in splits.values()] == [8, 4, 2]
    assert {e.task for e in splits["train"]} == {"detect", "vqa"}
    assert splits["val"][0].id == "val-00001" and splits["val"][0].boxes[0][4] == "pallet"
    source = _source(out)
    assert source["files"] == {
        "train": "train/annotations.jsonl",
        "val": "valid/annotations.jsonl",
        "test": "test/annotations.jsonl",
    }
    assert source["read"] == {"train": 8, "val": 4, "test": 2}
    assert validate_dataset(out).ok


def test_roboflow_jsonl_image_is_relative_to_its_split_folder(tmp_path: Path) -> None:
    src = roboflow_jsonl(tmp_path, {"train": 2, "valid": 1})
    path = _jsonl(src / "valid" / "annotations.jsonl", [{"image": "../train/x.jpg", "prefix": "ocr", "suffix": "x"}])
    with pytest.raises(DataError, match="'..' may lead out of") as err:
        ingest("roboflow-jsonl", src, tmp_path / "out")
    assert (err.value.file, err.value.line, err.value.field) == (str(path), 1, "image")


def test_hf_options_on_a_detected_roboflow_folder_are_refused(tmp_path: Path) -> None:
    src = roboflow_jsonl(tmp_path, {"train": 2})
    with pytest.raises(DataError, match="applies to the hf format only, and this folder is roboflow-jsonl") as err:
        ingest(None, src, tmp_path / "out", config="DocVQA")
    assert err.value.field == "--config"


def test_a_folder_of_no_known_layout_lists_what_was_looked_for(tmp_path: Path) -> None:
    _image(tmp_path / "pictures" / "a.png", (8, 8), (1, 2, 3))
    with pytest.raises(DataError, match="no known layout found") as err:
        ingest(None, tmp_path / "pictures", tmp_path / "out")
    for looked_for in (
        "_annotations.{train,valid,test}.jsonl",
        "{train,valid,test}/annotations.jsonl",
        "_annotations.coco.json",
        "annotations/instances_<split>.json",
        "*.parquet",
    ):
        assert looked_for in str(err.value)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- Roboflow coco


def _roboflow_coco_file(folder: Path, split: str, n: int, first_id: int) -> dict[str, Any]:
    """A Roboflow COCO file: ids from 0, category 0 the dataset's name, the classes under it."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for i in range(n):
        name = _image(folder / f"cells_{split}_{i}_png.rf.{i:03d}.jpg", (48, 32), (40 * i, 200, 60 * _SHADES[split]))
        images.append(
            {
                "id": i,
                "license": 1,
                "file_name": name,
                "height": 32,
                "width": 48,
                "date_captured": "2023-05-01T10:00:00+00:00",
            }
        )
        for k, category in enumerate((1, 2) if i % 2 == 0 else (2,)):
            bbox = [4 + 10 * k, 5, 8, 12.5]
            annotations.append(
                {
                    "id": first_id + len(annotations),
                    "image_id": i,
                    "category_id": category,
                    "bbox": bbox,
                    "area": 100.0,
                    "segmentation": [],
                    "iscrowd": 0,
                }
            )
    categories = [
        {"id": 0, "name": "cells-xyz", "supercategory": "none"},
        {"id": 1, "name": "rbc", "supercategory": "cells-xyz"},
        {"id": 2, "name": "wbc", "supercategory": "cells-xyz"},
    ]
    info = {
        "year": "2023",
        "version": "1",
        "description": "Exported from roboflow.com",
        "contributor": "",
        "url": "https://public.roboflow.com/",
        "date_created": "2023-05-01T10:00:00+00:00",
    }
    licenses = [{"id": 1, "url": "https://creativecommons.org/licenses/by/4.0/", "name": "CC BY 4.0"}]
    return {"info": info, "licenses": licenses, "categories": categories, "images": images, "annotations": annotations}


def roboflow_coco(root: Path, sizes: dict[str, int]) -> Path:
    """A Roboflow ``coco`` download: ``<split>/_annotations.coco.json`` with the images beside it."""
    download = root / "Cells-2-coco"
    for split, n in sizes.items():
        data = _roboflow_coco_file(download / split, split, n, first_id=0)
        (download / split / "_annotations.coco.json").write_text(json.dumps(data))
    _roboflow_readmes(download)
    return download


def test_roboflow_coco_export_leaves_out_the_placeholder_category(tmp_path: Path) -> None:
    src = roboflow_coco(tmp_path, {"train": 4, "valid": 2, "test": 2})
    assert detect_format(src) == "roboflow-coco"
    out = ingest(None, src, tmp_path / "out")
    splits = _read(out)
    assert [len(examples) for examples in splits.values()] == [4, 2, 2]
    first = splits["train"][0]
    assert (first.id, first.prefix) == ("train-0", "detect rbc ; wbc")  # no "cells-xyz"
    assert first.boxes == [[4, 5, 12, 17.5, "rbc"], [14, 5, 22, 17.5, "wbc"]]
    source = _source(out)
    assert source["unused_categories"] == ["cells-xyz"]
    assert source["files"]["val"] == "valid/_annotations.coco.json"
    assert validate_dataset(out).ok


def test_roboflow_coco_annotation_of_a_missing_image_is_located(tmp_path: Path) -> None:
    src = roboflow_coco(tmp_path, {"train": 2, "valid": 1})
    path = src / "valid" / "_annotations.coco.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["image_id"] = 7
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="no image has that id") as err:
        ingest(None, src, tmp_path / "out")
    assert (err.value.file, err.value.line, err.value.field) == (str(path), None, "annotations[0].image_id")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- COCO 2017


COCO_CATEGORIES = [
    {"supercategory": "animal", "id": 18, "name": "dog"},
    {"supercategory": "animal", "id": 17, "name": "cat"},
    {"supercategory": "vehicle", "id": 3, "name": "car"},
]


def _coco_2017_split(root: Path, split: str, n: int) -> None:
    """``annotations/{instances,captions}_<split>2017.json`` and ``<split>2017/`` as the zips unpack:
    twelve-digit file names, one image without annotations, a crowd region."""
    images, instances, captions = [], [], []
    for i in range(n):
        image_id = 139 + 1000 * i + len(split)
        name = _image(root / f"{split}2017" / f"{image_id:012d}.jpg", (64, 48), (40 * i, 30, 60 * _SHADES[split]))
        images.append(
            {
                "license": 2,
                "file_name": name,
                "coco_url": f"http://images.cocodataset.org/{split}2017/{name}",
                "height": 48,
                "width": 64,
                "date_captured": "2013-11-21 01:34:01",
                "flickr_url": "http://farm9.staticflickr.com/x.jpg",
                "id": image_id,
            }
        )
        captions.append({"image_id": image_id, "id": 10 * i, "caption": f"A dog number {i}  on a road."})
        captions.append({"image_id": image_id, "id": 10 * i + 1, "caption": "A picture."})
        if i == n - 1:
            continue  # COCO has images without any instance
        instances.append(
            {
                "segmentation": [[4.0, 6.0, 30.0, 6.0, 30.0, 40.0]],
                "area": 300.5,
                "iscrowd": 0,
                "image_id": image_id,
                "bbox": [4.0, 6.0, 26.0, 34.0],
                "category_id": 18,
                "id": 900 + i,
            }
        )
        if i == 0:
            instances.append(
                {
                    "segmentation": {"counts": [0, 5], "size": [48, 64]},
                    "area": 80.0,
                    "iscrowd": 1,
                    "image_id": image_id,
                    "bbox": [0.0, 0.0, 10.0, 8.0],
                    "category_id": 17,
                    "id": 990,
                }
            )
    head = {"info": {"description": "COCO 2017 Dataset", "year": 2017}, "licenses": [{"id": 2, "name": "CC BY-NC"}]}
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    instances_file = {**head, "images": images, "annotations": instances, "categories": COCO_CATEGORIES}
    (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(instances_file))
    (root / "annotations" / f"captions_{split}2017.json").write_text(
        json.dumps({**head, "images": images, "annotations": captions})
    )


def coco_2017(root: Path, sizes: dict[str, int]) -> Path:
    src = root / "coco"
    for split, n in sizes.items():
        _coco_2017_split(src, split, n)
    return src


def test_coco_2017_val_only_carves_train_and_test(tmp_path: Path) -> None:
    src = coco_2017(tmp_path, {"val": 6})
    assert detect_format(src) == "coco"
    out = ingest(None, src, tmp_path / "out")
    splits = _read(out)
    assert [len(examples) for examples in splits.values()] == [3, 1, 1]  # 5 annotated images, 0.8/0.1/0.1
    assert all(e.prefix == "detect dog" for split in splits.values() for e in split)  # cat: crowd only; car: unused
    images = [{e.image for e in examples} for examples in splits.values()]
    assert not (images[0] & images[1] or images[0] & images[2] or images[1] & images[2])
    source = _source(out)
    assert source["read"] == {"train": 0, "val": 5, "test": 0}
    assert source["dropped"] == {"val": {"image without annotations": 1}}
    assert source["carved"] == {
        "train": {"from": "val", "images": 3, "examples": 3},
        "test": {"from": "val", "images": 1, "examples": 1},
    }
    assert (source["split_ratios"], source["seed"], source["skipped_crowd"]) == ([0.8, 0.1, 0.1], 0, {"val": 1})
    assert validate_dataset(out).ok


def test_coco_2017_captions_and_an_evaluation_only_import(tmp_path: Path) -> None:
    src = coco_2017(tmp_path, {"train": 3, "val": 2})
    out = ingest(None, src, tmp_path / "out", task="caption", eval_only=True)
    splits = _read(out)
    assert [len(examples) for examples in splits.values()] == [0, 0, 5]
    first = splits["test"][0]
    assert (first.id, first.prefix, first.suffix) == ("train-144", "caption en", "A dog number 0 on a road.")
    assert first.answers == ["A dog number 0 on a road.", "A picture."]
    assert _source(out)["eval_only"] is True and _source(out)["carved"] == {}
    assert validate_dataset(out).ok


def test_coco_2017_annotation_of_a_missing_image_is_located(tmp_path: Path) -> None:
    src = coco_2017(tmp_path, {"val": 3})
    path = src / "annotations" / "instances_val2017.json"
    data = json.loads(path.read_text())
    data["annotations"][1]["image_id"] = 424242
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="424242 names no entry of the file .no image has that id.") as err:
        ingest(None, src, tmp_path / "out")
    assert (err.value.file, err.value.field) == (str(path), "annotations[1].image_id")


# ---------------------------------------------------------------- carving and its ratios


def test_carving_is_seeded_grouped_by_image_and_documented_in_the_manifest(tmp_path: Path) -> None:
    src = roboflow_jsonl(tmp_path, {"train": 10})
    first = ingest(None, src, tmp_path / "a", seed=7)
    again = ingest(None, src, tmp_path / "b", seed=7)
    other = ingest(None, src, tmp_path / "c", seed=8)
    assert _counts(first) == [16, 2, 2]  # 10 images, two examples each: 8 / 1 / 1 images
    for split in SPLITS:
        assert (first / f"{split}.jsonl").read_bytes() == (again / f"{split}.jsonl").read_bytes()
    held_out = [[e.image for e in _read(out)[split]] for out in (first, other) for split in ("val", "test")]
    assert held_out[:2] != held_out[2:]  # another seed, another choice
    assert _source(first)["carved"] == {
        "val": {"from": "train", "images": 1, "examples": 2},
        "test": {"from": "train", "images": 1, "examples": 2},
    }
    assert validate_dataset(first).ok  # no image in two splits


def test_two_images_give_train_and_val_before_test(tmp_path: Path) -> None:
    out = ingest(None, roboflow_jsonl(tmp_path, {"train": 2}), tmp_path / "out")
    assert _counts(out) == [2, 2, 0]  # one image each, with its two examples


@pytest.mark.parametrize(
    ("ratios", "message"),
    [
        ((0.8, 0.1, 0.2), "0.8 \\+ 0.1 \\+ 0.2 = 1.1; the ratios must sum to 1"),
        ((0.9, 0.1), "three ratios"),
        ((1.2, -0.1, -0.1), "between 0 and 1"),
    ],
)
def test_split_ratios_are_checked_before_anything_is_read(
    tmp_path: Path, ratios: tuple[float, ...], message: str
) -> None:
    src = roboflow_jsonl(tmp_path, {"train": 2})
    with pytest.raises(DataError, match=message) as err:
        ingest(None, src, tmp_path / "out", split_ratios=ratios)
    assert (err.value.file, err.value.field) == (str(src), "--split-ratios")
    assert not (tmp_path / "out").exists()


def test_a_source_without_training_examples_needs_eval_only(tmp_path: Path) -> None:
    src = roboflow_jsonl(tmp_path, {"test": 3})
    with pytest.raises(DataError, match="no training examples; pass --eval-only"):
        ingest(None, src, tmp_path / "out", split_ratios=(0.0, 0.0, 1.0))
    assert _counts(ingest(None, src, tmp_path / "out", eval_only=True)) == [0, 0, 6]


def test_the_command_detects_carves_and_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from palitune.cli import main

    monkeypatch.setenv("PALITUNE_HOME", str(tmp_path / "ws"))
    src = coco_2017(tmp_path, {"val": 6})
    assert main(["data", "ingest", str(src), "--out", str(tmp_path / "out"), "--split-ratios", "0.6,0.2,0.2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["format"], report["train"], report["val"], report["test"]) == (
        "coco",
        {"detect": 3},
        {"detect": 1},
        {"detect": 1},
    )
    assert report["read"] == {"train": 0, "val": 5, "test": 0}
    assert report["dropped"] == {"val": {"image without annotations": 1}}
    assert set(report["carved"]) == {"train", "test"}
    assert main(["data", "ingest", str(src), "--out", str(tmp_path / "bad"), "--split-ratios", "0.5,0.5,0.5"]) == 2
    assert "--split-ratios: 0.5 + 0.5 + 0.5 = 1.5; the ratios must sum to 1" in capsys.readouterr().err
