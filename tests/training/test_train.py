"""Training runs as users launch it: as a module and under ``accelerate launch``."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "tiny" / "64px_vqa_lora.yaml"


def _launch(prefix: list[str], workspace: Path, tiny_base: Path) -> dict:
    env = {**os.environ, "PALITUNE_HOME": str(workspace), "MLFLOW_TRACKING_URI": f"sqlite:///{workspace}/mlflow.db"}
    overrides = [f"base_model={tiny_base}", "dataset=dvc-data/vqa", "steps=6", "batch_size=4", "log_every=2"]
    proc = subprocess.run(
        [*prefix, "-m", "training.train", "--config", str(CONFIG), *overrides],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _assert_run_recorded(workspace: Path, result: dict) -> None:
    adapter = Path(result["adapter_dir"])
    assert adapter == workspace / "runs" / "tiny-vqa-lora" / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file()
    assert (adapter / "adapter_config.json").is_file()
    assert (adapter / "tokenizer.json").is_file(), "the processor travels with the adapter"
    assert not list(adapter.rglob("*.bin")) and not list(adapter.rglob("*.pt"))
    assert not [p for p in adapter.parent.iterdir() if p.name.startswith(".")], "no staging folder left"

    client = MlflowClient(f"sqlite:///{workspace}/mlflow.db")
    run = client.get_run(result["mlflow_run_id"])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [2, 4, 6]
    assert run.data.params["lora.rank"] == "16"
    assert len(run.data.params["dataset_hash"]) == 32
    assert run.info.status == "FINISHED"


def test_python_module_launch(workspace: Path, tiny_base: Path) -> None:
    _assert_run_recorded(workspace, _launch([sys.executable], workspace, tiny_base))


@pytest.mark.slow
def test_accelerate_launch(workspace: Path, tiny_base: Path) -> None:
    accelerate = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(REPO / "configs" / "accelerate" / "cpu.yaml"),
    ]
    _assert_run_recorded(workspace, _launch(accelerate, workspace, tiny_base))


def test_same_config_same_adapter_whether_or_not_the_base_was_built(workspace: Path, tmp_path: Path) -> None:
    from data.workspace import Workspace
    from training.config import load_config
    from training.train import train

    layout = Workspace(workspace)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    adapters = []
    for run in ("builds-base", "reuses-base"):
        config = load_config(CONFIG, ["steps=3", "batch_size=4", "dataset=dvc-data/vqa", f"output_dir=runs/{run}"])
        adapter_dir = train(config, layout, tracking_uri=uri).adapter_dir
        adapters.append((adapter_dir / "adapter_model.safetensors").read_bytes())
    assert adapters[0] == adapters[1]


def test_training_refuses_data_that_no_longer_matches_its_version(workspace: Path, tmp_path: Path) -> None:
    from data.schema import DataError
    from data.workspace import Workspace
    from training.config import load_config
    from training.train import train

    (workspace / "dvc-data" / "vqa" / "images" / "train-00000.png").write_bytes(b"tampered")
    config = load_config(CONFIG, ["steps=1", "batch_size=4", "dataset=dvc-data/vqa"])
    with pytest.raises(DataError, match="images/train-00000.png: md5 differs"):
        train(config, Workspace(workspace), tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    assert not (workspace / "runs").exists(), "nothing was trained or written"
