"""Serving a segment model: its objects come back with masks and boxes, its mask codec is the
one its training data was encoded with or the model is refused, and a merged export says
where its weights came from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data.mask_codec.checkpoint import MaskCodecError
from data.mask_codec.codec import ENV_VAR
from data.masks import decode_mask
from data.seg_tokens import encode_objects
from data.segment_target import codec_record, current_codec
from data.synthetic import SplitSizes, write_synthetic
from palitune.cli import main
from registry.serving import (
    EXPORT_RECORD_FILE,
    RUN_INFO_FILE,
    AdapterPredictor,
    export_merged,
    require_adapter_codec,
    segment_objects,
    structured_answers,
)
from tests.data.test_mask_codec import random_checkpoint, save_npz

OTHER_CODEC = {"name": "vae-oid", "sha256": "0" * 64}


def _adapter(folder: Path, task: str = "segment", **info: object) -> Path:
    """An adapter folder as far as serving reads it before loading weights: its run info."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RUN_INFO_FILE).write_text(json.dumps({"config": {"task": task, "dataset": "nowhere"}, **info}))
    return folder


def _square(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((64, 64), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_serving_spells_the_run_info_file_as_training_writes_it() -> None:
    from training.train import RUN_INFO_FILE as TRAINING_RUN_INFO

    assert RUN_INFO_FILE == TRAINING_RUN_INFO


def test_a_segmentation_text_comes_back_as_objects_with_masks_and_boxes() -> None:
    codec = current_codec()
    box = [8.0, 16.0, 40.0, 48.0]
    codes = codec.mask_to_codes(_square(8, 16, 40, 48), box)
    text = encode_objects([[*box, "square", codes]], 64, 64) + " ; <loc0100><loc0100><loc0500><loc0500><seg001> cut"
    [obj] = segment_objects(text, 64, 64)
    assert obj["label"] == "square"
    assert obj["box"] == pytest.approx(box, abs=0.1)
    assert set(obj["mask"]) == {"size", "counts"} and obj["mask"]["size"] == [64, 64]
    mask = decode_mask(obj["mask"], 64, 64)
    iou = (mask & _square(8, 16, 40, 48)).sum() / (mask | _square(8, 16, 40, 48)).sum()
    assert iou >= 0.8, iou
    assert not mask[:, :7].any() and not mask[49:].any(), "nothing outside the box"
    json.dumps(obj)  # JSON all the way down

    image = Image.new("RGB", (64, 64))
    assert structured_answers("segment", [image], [text])[0]["objects"] == [obj]
    assert structured_answers("vqa", [image], ["red"]) == [{"text": "red"}]


def test_a_segment_model_of_another_codec_is_refused_before_any_weight_loads(tmp_path: Path) -> None:
    adapter = _adapter(tmp_path / "adapter", mask_codec=OTHER_CODEC)
    with pytest.raises(MaskCodecError, match=r"was encoded with mask codec 'vae-oid'.*loaded codec is 'embedded'"):
        AdapterPredictor("no/such-base", adapter)  # the base would fail to load: the codec is refused first


def test_palitune_predict_refuses_a_segment_adapter_of_another_codec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PALITUNE_HOME", str(tmp_path / "ws"))
    adapter = _adapter(tmp_path / "adapter", mask_codec=codec_record())  # trained with the embedded codec
    Image.new("RGB", (32, 32)).save(tmp_path / "a.png")
    save_npz(tmp_path / "other.npz", random_checkpoint(dim=16))
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "other.npz"))
    code = main(["predict", "--model", str(adapter), "--image", str(tmp_path / "a.png"), "--prompt", "segment circle"])
    err = capsys.readouterr().err
    assert code == 2
    assert "was encoded with mask codec 'embedded'" in err and "loaded codec is 'other'" in err, err
    assert not (tmp_path / "ws" / "models").exists(), "refused before any base was built"


def test_the_codec_record_comes_from_the_run_info_else_the_training_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert require_adapter_codec(_adapter(tmp_path / "vqa", task="vqa")) is None, "other tasks: nothing to check"
    assert require_adapter_codec(_adapter(tmp_path / "own", mask_codec=codec_record())) is current_codec()

    with pytest.raises(MaskCodecError, match="records no 'mask_codec'"):
        require_adapter_codec(_adapter(tmp_path / "none"))

    dataset = write_synthetic("segment", tmp_path / "data" / "segment", sizes=SplitSizes(2, 1, 1), image_size=32)
    monkeypatch.setenv("PALITUNE_HOME", str(tmp_path / "data"))
    adapter = tmp_path / "from-dataset"
    adapter.mkdir()
    (adapter / RUN_INFO_FILE).write_text(json.dumps({"config": {"task": "segment", "dataset": "segment"}}))
    assert require_adapter_codec(adapter) is current_codec(), f"read from {dataset}/manifest.json"
    save_npz(tmp_path / "other.npz", random_checkpoint(dim=16))
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "other.npz"))
    with pytest.raises(MaskCodecError, match="loaded codec is 'other'"):
        require_adapter_codec(adapter)


def test_a_merged_export_records_its_version_dataset_and_metrics(tmp_path: Path, tiny_base: Path) -> None:
    adapter = tmp_path / "adapter"
    shutil.copytree(tiny_base, adapter)  # a fully fine-tuned folder: exported as it is
    _adapter(adapter, mask_codec=codec_record(), dataset_hash="ab" * 16, steps=7, final_loss=0.5)
    source = {"model": "palitune-segment", "version": "3", "run_id": "r1", "metrics": {"segment/test/miou": 0.9}}
    out = export_merged(str(tiny_base), adapter, tmp_path / "export", source=source)
    record = json.loads((out / EXPORT_RECORD_FILE).read_text())
    assert record["model"] == "palitune-segment" and record["version"] == "3" and record["run_id"] == "r1"
    assert record["dataset_hash"] == "ab" * 16 and record["task"] == "segment"
    assert record["metrics"] == {"segment/test/miou": 0.9}
    assert record["mask_codec"] == codec_record()
    assert record["training"] == {"steps": 7, "final_loss": 0.5, "mlflow_run_id": None}
    assert (out / "model.safetensors").is_file() or list(out.glob("model*.safetensors"))

    bare = export_merged(str(tiny_base), tiny_base, tmp_path / "bare")  # an adapter trained elsewhere
    unknown = json.loads((bare / EXPORT_RECORD_FILE).read_text())
    assert unknown["dataset_hash"] is None and unknown["version"] is None and unknown["task"] is None
