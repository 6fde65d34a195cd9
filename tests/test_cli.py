"""The palitune command as a user types it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from data.versioning import recorded_hash
from palitune.cli import main


def test_data_help_documents_every_command() -> None:
    out = subprocess.run([sys.executable, "-m", "palitune.cli", "data", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("synth", "repro", "ingest", "validate", "version", "checkout"):
        assert command in out.stdout


def test_ingest_validate_version_checkout(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PALITUNE_HOME", str(tmp_path / "ws"))
    src = tmp_path / "export"
    src.mkdir()
    for s, (split, n) in enumerate((("train", 6), ("valid", 2), ("test", 2))):
        lines = []
        for i in range(n):  # distinct images: the same bytes in train and test would be leakage
            Image.new("RGB", (32, 32), (40 * i, 80 * s, 200 - 20 * i)).save(src / f"{split}{i}.jpg")
            lines.append(json.dumps({"image": f"{split}{i}.jpg", "prefix": "answer en what colour?", "suffix": "blue"}))
        (src / f"_annotations.{split}.jsonl").write_text("\n".join(lines) + "\n")
    dataset = tmp_path / "ws" / "dvc-data" / "mine"

    assert main(["data", "ingest", "--format", "paligemma-jsonl", str(src), "--out", str(dataset)]) == 0
    assert main(["data", "validate", str(dataset)]) == 0
    assert main(["data", "version", str(dataset)]) == 0
    digest = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["hash"]
    restored = tmp_path / "ws" / "restored" / "mine"
    assert main(["data", "checkout", digest, "--out", str(restored)]) == 0
    assert (restored / "train.jsonl").read_bytes() == (dataset / "train.jsonl").read_bytes()

    (dataset / "test.jsonl").write_text('{"image": "../../etc/passwd"}\n')
    assert main(["data", "validate", str(dataset)]) == 2  # bad input
    out = capsys.readouterr().out
    assert f"{dataset / 'test.jsonl'}:1: " in out
    assert main(["data", "version", str(dataset)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("palitune: error: ") and f"{dataset / 'test.jsonl'}:1: image: " in err
    assert recorded_hash(dataset) == digest  # the last good version stays recorded


def test_promote_flags_are_the_policy_gates(capsys) -> None:
    from palitune.cli import build_parser
    from registry.promotion import PromotionPolicy, policy_gates

    args = build_parser().parse_args(["registry", "promote", "palitune-vqa"])
    assert {gate.name: getattr(args, gate.name) for gate in policy_gates()} == {
        "margin": PromotionPolicy.margin,
        "slice_tolerance": PromotionPolicy.slice_tolerance,
        "min_slice_examples": PromotionPolicy.min_slice_examples,
        "floors": [],
    }
    assert main(["registry", "promote", "palitune-vqa", "--floor", "vqa_accuracy=high"]) == 2
    err = capsys.readouterr().err
    assert err == "palitune: error: --floor 'vqa_accuracy=high': expected METRIC=NUMBER, e.g. vqa_accuracy=0.5\n"


def test_predict_budget_is_the_adapters_task(tmp_path: Path) -> None:
    from data.tasks import get_task
    from palitune.cli.predict import FALLBACK_MAX_NEW_TOKENS, adapter_budget
    from training.config import ConfigError
    from training.train import RUN_INFO_FILE

    assert adapter_budget(tmp_path) == FALLBACK_MAX_NEW_TOKENS  # trained elsewhere: no run info
    for task in ("vqa", "detect"):
        (tmp_path / RUN_INFO_FILE).write_text(json.dumps({"config": {"task": task}}))
        assert adapter_budget(tmp_path) == get_task(task).max_new_tokens
    assert get_task("detect").max_new_tokens != FALLBACK_MAX_NEW_TOKENS
    (tmp_path / RUN_INFO_FILE).write_text(json.dumps({"config": {"task": "poetry"}}))
    with pytest.raises(ConfigError, match=f"{RUN_INFO_FILE}: config.task: .*poetry"):
        adapter_budget(tmp_path)
