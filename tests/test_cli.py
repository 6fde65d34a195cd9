"""The palitune command as a user types it."""

import json
import subprocess
import sys
from pathlib import Path

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
    dataset = tmp_path / "ws" / "datasets" / "mine"

    assert main(["data", "ingest", "--format", "paligemma-jsonl", str(src), "--out", str(dataset)]) == 0
    assert main(["data", "validate", str(dataset)]) == 0
    assert main(["data", "version", str(dataset)]) == 0
    digest = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["hash"]
    restored = tmp_path / "ws" / "restored" / "mine"
    assert main(["data", "checkout", digest, "--out", str(restored)]) == 0
    assert (restored / "train.jsonl").read_bytes() == (dataset / "train.jsonl").read_bytes()

    (dataset / "test.jsonl").write_text('{"image": "../../etc/passwd"}\n')
    assert main(["data", "validate", str(dataset)]) == 1
    out = capsys.readouterr().out
    assert f"{dataset / 'test.jsonl'}:1: " in out
    assert main(["data", "version", str(dataset)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("palitune: error: ") and f"{dataset / 'test.jsonl'}:1: image: " in err
    assert recorded_hash(dataset) == digest  # the last good version stays recorded
