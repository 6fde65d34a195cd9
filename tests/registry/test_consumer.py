"""A real consumer: a fresh Python process loads models:/palitune-vqa@champion with
mlflow.pyfunc and answers about an image, as `palitune predict` does from the adapter."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from data.schema import read_split
from data.workspace import Workspace
from registry.models import CHAMPION, register_adapter
from registry.tracking import client_for, open_run
from training.config import load_config
from training.train import train

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NAME = "palitune-vqa"


def test_champion_loads_in_a_fresh_process_answers_like_the_cli_and_exports_merged(workspace_with_vqa: Path) -> None:
    ws = workspace_with_vqa
    uri = f"sqlite:///{ws}/mlflow.db"
    config = load_config(
        REPO / "configs" / "tiny" / "64px_vqa_lora.yaml",
        ["dataset=dvc-data/vqa", "steps=150", "batch_size=16", "log_every=50", "output_dir=runs/consumer"],
    )
    client = client_for(uri)
    run_id = open_run(client, "palitune", ws / "mlflow-artifacts", run_name="consumer", tags={})
    result = train(config, Workspace(ws), tracking_uri=uri, mlflow_run_id=run_id)
    example = read_split(ws / "dvc-data" / "vqa", "test")[0]
    tags = {"palitune.base_model": "tiny", "palitune.dataset_hash": result.dataset_hash or ""}
    version = register_adapter(client, run_id, result.adapter_dir, NAME, tags, prompt=example.prefix, max_new_tokens=12)
    env = {**os.environ, "PALITUNE_HOME": str(ws), "MLFLOW_TRACKING_URI": uri}

    # `registry promote` judges the challenger on its own dataset version, restored by hash
    # from the DVC remote: the workspace's copy is moved away first.
    (ws / "dvc-data" / "vqa").rename(ws / "elsewhere")

    def promote(*policy: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "palitune.cli", "registry", "promote", NAME, *policy]
        return subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)

    # 16 test examples cannot show a gain beyond noise, and a floor of 0.99 is not met: kept out.
    refused = promote("--floor", "vqa_accuracy=0.99")
    assert refused.returncode == 3, refused.stdout + refused.stderr[-3000:]
    assert f"restored/{result.dataset_hash}" in refused.stdout and "untrained base" in refused.stdout
    assert "floor vqa_accuracy" in refused.stdout and "champion: none" in refused.stdout
    assert client.get_model_version(NAME, version.version).tags["palitune.promotion.decision"] == "rejected"
    # A policy that tolerates any loss up to 1.0 lets it in; the restored copy is reused.
    accepted = promote("--margin", "-1")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr[-3000:]
    assert str(client.get_model_version_by_alias(NAME, CHAMPION).version) == version.version
    assert client.get_model_version(NAME, version.version).tags["palitune.promotion.decision"] == "promoted"
    (ws / "elsewhere").rename(ws / "dvc-data" / "vqa")
    image = str(ws / "dvc-data" / "vqa" / example.image)

    consumer = (
        "import json, sys, mlflow, pandas as pd\n"
        f"model = mlflow.pyfunc.load_model('models:/{NAME}@{CHAMPION}')\n"
        "out = model.predict(pd.DataFrame({'image': [sys.argv[1], open(sys.argv[1], 'rb').read()], "
        "'prompt': [sys.argv[2]] * 2}))\n"
        "print(json.dumps(list(out)))\n"
    )
    fresh = subprocess.run(
        [sys.executable, "-c", consumer, image, example.prefix], env=env, capture_output=True, text=True, cwd=ws
    )
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    by_path, by_bytes = json.loads(fresh.stdout.strip().splitlines()[-1])
    assert by_path == by_bytes and by_path, "a path and the image's bytes give the same answer"

    def predict(*model: str) -> str:
        command = [
            sys.executable,
            "-m",
            "palitune.cli",
            "predict",
            *model,
            "--image",
            image,
            "--prompt",
            example.prefix,
        ]
        proc = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout.strip()

    assert predict("--model", str(result.adapter_dir), "--base", "tiny", "--max-new-tokens", "12") == by_path
    assert predict("--model", f"models:/{NAME}@{CHAMPION}") == by_path

    # The champion merged into its base: one safetensors model, the same answers.
    merged_dir = ws / "exports" / "vqa"
    exported = subprocess.run(
        [
            sys.executable,
            "-m",
            "palitune.cli",
            "registry",
            "export",
            f"{NAME}@{CHAMPION}",
            "--merged",
            "--out",
            str(merged_dir),
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert (merged_dir / "model.safetensors").is_file() and not list(merged_dir.glob("adapter_*"))
    assert not list(merged_dir.glob("*.bin")) and not list(merged_dir.glob("*.pt"))
    from models.images import decode_image
    from models.loading import load_base

    model, processor = load_base(str(merged_dir))
    batch = processor(text=["<image>" + example.prefix], images=[decode_image(image)], return_tensors="pt")
    generated = model.generate(**batch, max_new_tokens=12, do_sample=False)
    merged_answer = processor.batch_decode(generated[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    assert merged_answer[0].strip() == by_path
