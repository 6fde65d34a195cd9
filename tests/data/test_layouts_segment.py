"""COCO instance masks ingested for the segment task, in the layouts they are downloaded in:
COCO 2017's polygons (and RLE), a Roboflow COCO export; masks stored as compressed RLE."""

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from data.masks import decode_mask, encode_rle
from data.schema import DataError, read_split
from data.sources import ingest
from data.validate import validate_dataset
from tests.data.test_layouts import coco_2017, roboflow_coco


def test_coco_2017_polygons_become_masks_of_their_instances(tmp_path: Path) -> None:
    src = coco_2017(tmp_path, {"val": 6})
    out = ingest(None, src, tmp_path / "out", task="segment")
    examples = [e for split in ("train", "val", "test") for e in read_split(out, split)]
    assert len(examples) == 5 and all(e.prefix == "segment dog" for e in examples)  # crowd cat left out
    polygon = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects([[4.0, 6.0, 30.0, 6.0, 30.0, 40.0]], 48, 64)))
    for example in examples:
        (obj,) = example.masks
        assert obj["box"] == [4.0, 6.0, 30.0, 40.0] and obj["label"] == "dog"  # the annotation's box
        assert (decode_mask(obj["mask"], 48, 64) == polygon.astype(bool)).all()
        assert example.suffix.count("<seg") == 16 and example.suffix.endswith(" dog")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["mask_codec"]["name"] == "embedded"
    assert validate_dataset(out).ok


def test_rle_instances_and_a_roboflow_export_without_masks(tmp_path: Path) -> None:
    src = coco_2017(tmp_path, {"val": 3})
    path = src / "annotations" / "instances_val2017.json"
    data = json.loads(path.read_text())
    square = np.zeros((48, 64), bool)
    square[10:30, 20:40] = True
    first = next(a for a in data["annotations"] if not a["iscrowd"])
    first["segmentation"], first["bbox"] = encode_rle(square), [20.0, 10.0, 20.0, 20.0]
    path.write_text(json.dumps(data))
    out = ingest(None, src, tmp_path / "out", task="segment", eval_only=True)
    masks = [decode_mask(e.masks[0]["mask"], 48, 64) for e in read_split(out, "test")]
    assert any((m == square).all() for m in masks)

    boxes_only = roboflow_coco(tmp_path / "rf", {"train": 2, "valid": 1, "test": 1})
    with pytest.raises(DataError, match=r"annotations\[0\]\.segmentation.*missing or empty"):
        ingest(None, boxes_only, tmp_path / "rf-out", task="segment")
