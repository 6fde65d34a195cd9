"""The segment task's target: objects with masks rendered through the codec, validated, and
the codec that encoded a dataset recorded with it and required of whoever reads its codes."""

import json
from pathlib import Path

import numpy as np
import pytest

from data.mask_codec.checkpoint import MaskCodecError
from data.mask_codec.codec import ENV_VAR
from data.masks import encode_rle
from data.schema import MANIFEST_FILE, read_split
from data.segment_target import current_codec, parse_segments, render_segments, require_dataset_codec
from data.synthetic import SplitSizes, write_synthetic
from data.tasks import get_task
from data.validate import validate_dataset
from tests.data.test_mask_codec import random_checkpoint, save_npz


def _square(size: int = 32) -> dict:
    mask = np.zeros((size, size), bool)
    mask[4:20, 6:22] = True
    return {"box": [6, 4, 22, 20], "label": "square", "mask": encode_rle(mask)}


def test_objects_render_to_segmentation_text_that_parses_back() -> None:
    text = render_segments([_square()], 32, 32)
    assert text.count("<seg") == 16 and text.count("<loc") == 4 and text.endswith(" square")
    (parsed,), dropped = parse_segments(text, 32, 32)
    assert dropped == 0 and parsed.label == "square"
    assert (parsed.x0, parsed.y0, parsed.x1, parsed.y1) == (6.0, 4.0, 22.0, 20.0)
    decoded = current_codec().codes_to_mask(parsed.codes, (parsed.x0, parsed.y0, parsed.x1, parsed.y1), (32, 32))
    truth = np.zeros((32, 32), bool)
    truth[4:20, 6:22] = True
    assert (decoded & truth).sum() / (decoded | truth).sum() > 0.9


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"box": [6, 4, 40, 20]}, "masks[0].box: [6, 4, 40, 20] outside the 32x32 image"),
        ({"box": [22, 4, 6, 20]}, "inverted or empty box"),
        ({"label": "a ; b"}, "without ';'"),
        ({"mask": {"size": [32, 32], "counts": "0"}}, "masks[0].mask: RLE counts cover 0 pixels"),
        ({"mask": encode_rle(np.zeros((32, 32), bool))}, "masks[0].mask: the mask is empty"),
        ({"mask": encode_rle(np.ones((16, 32), bool))}, "not the image's [height, width] [32, 32]"),
    ],
)
def test_bad_objects_name_the_object_and_field(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match="masks") as err:
        render_segments([{**_square(), **change}], 32, 32)
    assert message in str(err.value)


def test_a_synthetic_segment_set_records_its_codec_and_validates(tmp_path: Path) -> None:
    root = write_synthetic("segment", tmp_path / "segment", sizes=SplitSizes(6, 2, 2), image_size=32)
    manifest = json.loads((root / MANIFEST_FILE).read_text())
    assert manifest["mask_codec"] == current_codec().identity.as_dict()
    assert validate_dataset(root).ok
    example = read_split(root, "train")[0]
    assert example.masks and example.suffix == get_task("segment").render_suffix(example.masks, _size(root, example))

    lines = (root / "train.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    record["suffix"] = record["suffix"].replace("<seg", "<seg0", 1)[:-1]  # one code off
    (root / "train.jsonl").write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
    report = validate_dataset(root)
    assert not report.ok and report.problems[0].field == "suffix"


def test_another_codec_is_refused_for_a_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_synthetic("segment", tmp_path / "segment", sizes=SplitSizes(2, 1, 1), image_size=32)
    assert require_dataset_codec(root / MANIFEST_FILE) is current_codec()
    save_npz(tmp_path / "other.npz", random_checkpoint(dim=16))
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "other.npz"))
    with pytest.raises(MaskCodecError, match="was encoded with mask codec 'embedded'.*loaded codec is 'other'"):
        require_dataset_codec(root / MANIFEST_FILE)


def _size(root: Path, example) -> object:
    from PIL import Image

    from data.tasks import ImageSize

    with Image.open(root / example.image) as image:
        return ImageSize(*image.size)


def test_a_predicted_box_of_no_area_is_dropped_not_an_error(tmp_path: Path) -> None:
    from evaluation.score import example_record, score_records

    root = write_synthetic("segment", tmp_path / "segment", sizes=SplitSizes(2, 1, 2), image_size=32)
    examples = read_split(root, "test")
    codes = "".join(f"<seg{c:03d}>" for c in range(16))
    flat = f"<loc0100><loc0100><loc0100><loc0500>{codes} circle"  # y0 == y1
    result = score_records("segment", [example_record(root, e, flat) for e in examples])
    assert result.metrics["miou"] == 0.0 and result.metrics["invalid"] == len(examples)
    assert result.details["dropped_objects"] == len(examples)


def test_training_refuses_another_codec_at_the_manifest_and_records_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from data.mask_codec.training_check import require_training_codec
    from data.schema import DataError
    from data.segment_target import codec_record

    root = write_synthetic("segment", tmp_path / "segment", sizes=SplitSizes(2, 1, 1), image_size=32)
    assert require_training_codec(root, "segment") == codec_record() == current_codec().identity.as_dict()
    assert require_training_codec(tmp_path / "not-even-there", "vqa") is None, "other tasks have nothing to check"

    save_npz(tmp_path / "other.npz", random_checkpoint(dim=16))
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "other.npz"))
    with pytest.raises(DataError, match="was encoded with mask codec 'embedded'.*loaded codec is 'other'") as raised:
        require_training_codec(root, "segment")
    assert (raised.value.file, raised.value.field) == (str(root / MANIFEST_FILE), "mask_codec")

    monkeypatch.delenv(ENV_VAR)
    manifest = json.loads((root / MANIFEST_FILE).read_text())
    (root / MANIFEST_FILE).write_text(json.dumps({k: v for k, v in manifest.items() if k != "mask_codec"}))
    with pytest.raises(DataError, match="records no 'mask_codec'"):
        require_training_codec(root, "segment")
    (root / MANIFEST_FILE).unlink()
    with pytest.raises(DataError, match="no manifest"):
        require_training_codec(root, "segment")
