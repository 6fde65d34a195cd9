"""Training as it runs for real: two data-parallel processes, and a run killed and resumed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file

from training.checkpoints import CHECKPOINTS_DIR, list_checkpoints, read_state

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "tiny" / "64px_vqa_lora.yaml"
MULTI_CPU = REPO / "configs" / "accelerate" / "multi-cpu.yaml"


def _env(workspace: Path) -> dict[str, str]:
    return {**os.environ, "PALITUNE_HOME": str(workspace), "MLFLOW_TRACKING_URI": f"sqlite:///{workspace}/mlflow.db"}


def _args(tiny_base: Path, *overrides: str) -> list[str]:
    return [
        "--config",
        str(CONFIG),
        f"base_model={tiny_base}",
        "dataset=dvc-data/vqa",
        "batch_size=4",
        "num_threads=1",
        *overrides,
    ]


def test_two_processes_train_one_model_on_two_halves_of_the_data(workspace: Path, tiny_base: Path) -> None:
    out = workspace / "probe"
    out.mkdir()
    # The shipped multi-cpu launch config: real gloo DDP on CPU cores (--cpu alone runs one process).
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(MULTI_CPU)]
    command = [*launch, "-m", "tests.training.probe", str(out), "--", *_args(tiny_base, "steps=6", "log_every=3")]
    proc = subprocess.run(
        command,
        cwd=REPO,
        env={**_env(workspace), "ACCELERATE_USE_CPU": "true"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    ranks = [json.loads((out / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["trainable_sha256"] == ranks[1]["trainable_sha256"], "DDP keeps the ranks identical"
    # The loader collates one batch ahead (Accelerate's prefetch): the first 6 x 4 trained.
    trained = [set(r["seen"][: 6 * 4]) for r in ranks]
    assert len(trained[0]) == len(trained[1]) == 6 * 4
    assert not trained[0] & trained[1], "each rank trained on its own half of the data"

    client = MlflowClient(f"sqlite:///{workspace}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("palitune").experiment_id])
    assert len(runs) == 1, "only the main process records the run"
    assert runs[0].data.params["processes"] == "2"
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "train/loss")] == [3, 6]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (Path(result["adapter_dir"]) / "adapter_model.safetensors").is_file()


def _losses(workspace: Path, run_id: str) -> dict[int, list[float]]:
    by_step: dict[int, list[float]] = {}
    for metric in MlflowClient(f"sqlite:///{workspace}/mlflow.db").get_metric_history(run_id, "train/loss"):
        by_step.setdefault(metric.step, []).append(metric.value)
    return by_step


def test_a_killed_run_resumes_to_the_losses_of_an_uninterrupted_one(workspace: Path, tiny_base: Path) -> None:
    steps = 300
    common = _args(tiny_base, f"steps={steps}", "log_every=1", "checkpoint_every=25", "keep_checkpoints=2")

    def launch(name: str) -> subprocess.Popen:
        command = [sys.executable, "-m", "training.train", *common, f"output_dir=runs/{name}"]
        return subprocess.Popen(
            command, cwd=REPO, env=_env(workspace), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    straight = launch("straight")
    out, err = straight.communicate(timeout=600)
    assert straight.returncode == 0, err[-3000:]
    reference = json.loads(out.strip().splitlines()[-1])

    killed_dir = workspace / "runs" / "killed"
    victim = launch("killed")
    deadline = time.monotonic() + 300
    while not list_checkpoints(killed_dir) and time.monotonic() < deadline and victim.poll() is None:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    assert list_checkpoints(killed_dir), "a complete checkpoint was written before the kill"
    assert not (killed_dir / "adapter").exists(), "no adapter until training ends"
    assert all(p.name.startswith("step-") or p.name.startswith(".") for p in (killed_dir / CHECKPOINTS_DIR).iterdir())

    killed_run_id = read_state(list_checkpoints(killed_dir)[-1]).mlflow_run_id
    rerun = launch("killed")
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err[-3000:]
    assert "resuming" in err and f"from step {steps}" not in err
    resumed = json.loads(out.strip().splitlines()[-1])
    assert resumed["mlflow_run_id"] == killed_run_id, "the resumed run logs into the run it continues"

    expected, got = _losses(workspace, reference["mlflow_run_id"]), _losses(workspace, resumed["mlflow_run_id"])
    assert sorted(got) == list(range(1, steps + 1)), "the resumed run continues the same MLflow run"
    for step in range(1, steps + 1):
        for value in got[step]:  # steps logged twice (before the kill and after resume) agree too
            assert value == pytest.approx(expected[step][0], abs=1e-6), step
    a = load_file(Path(reference["adapter_dir"]) / "adapter_model.safetensors")
    b = load_file(Path(resumed["adapter_dir"]) / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] - b[key]).abs().max().item() <= 1e-5, key
    assert len(list_checkpoints(killed_dir)) == 2, "old checkpoints are pruned"
