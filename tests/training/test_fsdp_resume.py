"""FSDP2 for real, on two CPU processes (gloo): a LoRA run trains sharded, checkpoints, is killed
(SIGKILL, every process), resumes, and saves an adapter gathered from both shards that peft
loads in a fresh process and that matches a one-process run of the same steps.

The one-process reference sees the same 16 examples in every optimizer step: 4 micro-batches
of 4, where each FSDP process takes 2 of them (accelerate hands rank r the batches r, r+2, ...
of the sampler's order). Every token weighs the same in both (``training.loop.accumulate``),
so the two runs compute the same gradient up to the order of fp32 summation (an all-reduce
and a reduce-scatter of two halves against one sum): a relative 1e-7 per step, measured
2e-7 in absolute terms on the adapter after 6 steps. The tolerance, 1e-5 on weights of size
about 0.5, leaves room for Adam dividing by small second moments, and is far below a real
fault: a missing rank's half of the batch, an unscaled accumulation or a lost resume each
move the weights by more than 1e-3.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file

from training.checkpoints import CHECKPOINTS_DIR, list_checkpoints, read_state

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "tiny" / "64px_vqa_lora.yaml"
FSDP = REPO / "configs" / "accelerate" / "fsdp.yaml"
STEPS = 6
TOLERANCE = 1e-5

_LOAD = """
import json, sys
from peft import PeftModel, get_peft_model_state_dict
from safetensors.torch import load_file
from models.loading import load_base

base, _ = load_base(sys.argv[1])
model = PeftModel.from_pretrained(base, sys.argv[2])
loaded, reference = get_peft_model_state_dict(model), load_file(sys.argv[3])
diff = {k: (loaded[k].float() - reference[k].float()).abs().max().item() for k in reference if k in loaded}
print(json.dumps({"diff": diff, "unmatched": sorted(set(loaded) ^ set(reference))}))
"""


def _cpu_fsdp_file(tmp_path: Path) -> Path:
    """The shipped FSDP2 launch file (RAM-efficient loading, sharded checkpoints), on 2 CPU
    processes in fp32, with the tiny base's layer classes as shard units."""
    launch = yaml.safe_load(FSDP.read_text())
    assert launch["distributed_type"] == "FSDP" and launch["fsdp_config"]["fsdp_version"] == 2
    launch.update(num_processes=2, mixed_precision="no")
    launch["fsdp_config"].update(fsdp_transformer_layer_cls_to_wrap="SiglipEncoderLayer,GemmaDecoderLayer")
    path = tmp_path / "fsdp-cpu.yaml"
    path.write_text(yaml.safe_dump(launch))
    return path


def _env(workspace: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PALITUNE_HOME": str(workspace),
        "MLFLOW_TRACKING_URI": f"sqlite:///{workspace}/mlflow.db",
        "ACCELERATE_USE_CPU": "true",
        "OMP_NUM_THREADS": "1",
    }


def _overrides(tiny_base: Path, *more: str) -> list[str]:
    common = [f"base_model={tiny_base}", "dataset=dvc-data/vqa", "batch_size=4", "num_threads=1"]
    return [*common, f"steps={STEPS}", "log_every=1", *more]


def _descendants(pid: int) -> list[int]:
    """Every process started under ``pid``: torchrun starts its workers in sessions of their own."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _losses(workspace: Path, run_id: str) -> dict[int, list[float]]:
    by_step: dict[int, list[float]] = {}
    for metric in MlflowClient(f"sqlite:///{workspace}/mlflow.db").get_metric_history(run_id, "train/loss"):
        by_step.setdefault(metric.step, []).append(metric.value)
    return by_step


def test_an_fsdp2_run_killed_and_resumed_saves_the_adapter_of_one_process(
    workspace: Path, tiny_base: Path, tmp_path: Path
) -> None:
    from data.workspace import Workspace
    from training.config import load_config
    from training.train import train

    overrides = _overrides(tiny_base, "grad_accumulation=4", "output_dir=runs/one")
    reference = train(
        load_config(CONFIG, overrides), Workspace(workspace), tracking_uri=_env(workspace)["MLFLOW_TRACKING_URI"]
    )

    fsdp_dir = workspace / "runs" / "fsdp"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(_cpu_fsdp_file(tmp_path))]
    args = _overrides(tiny_base, "grad_accumulation=2", "checkpoint_every=2", "output_dir=runs/fsdp")
    command = [*launch, "-m", "tests.training.fsdp_cpu", "--config", str(CONFIG), *args]

    def start() -> subprocess.Popen:
        return subprocess.Popen(
            command, cwd=REPO, env=_env(workspace), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    victim = start()
    deadline = time.monotonic() + 240
    while not list_checkpoints(fsdp_dir) and time.monotonic() < deadline and victim.poll() is None:
        time.sleep(0.05)
    processes = [victim.pid, *_descendants(victim.pid)]
    for pid in processes:  # a node lost: the launcher and both ranks at once
        os.kill(pid, signal.SIGKILL)
    _, err = victim.communicate(timeout=60)
    assert victim.returncode == -signal.SIGKILL, err[-3000:]
    assert len(processes) >= 3, "the launcher and its two ranks were killed"
    killed_at = read_state(list_checkpoints(fsdp_dir)[-1]).step
    assert killed_at < STEPS, "killed before the end"
    assert not (fsdp_dir / "adapter").exists()
    shards = list((list_checkpoints(fsdp_dir)[-1]).glob("pytorch_model_fsdp_0/*.distcp"))
    assert len(shards) == 2, "each rank wrote its shard of the model: FSDP ran"
    assert all(p.name.startswith(("step-", ".")) for p in (fsdp_dir / CHECKPOINTS_DIR).iterdir())

    rerun = start()
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err[-3000:]
    assert f"resuming {fsdp_dir} from step {killed_at}" in err
    resumed = json.loads(out.strip().splitlines()[-1])

    expected, got = _losses(workspace, reference.mlflow_run_id or ""), _losses(workspace, resumed["mlflow_run_id"])
    assert sorted(got) == list(range(1, STEPS + 1)), "the resumed run continues the killed one's MLflow run"
    for step in range(1, STEPS + 1):
        for value in got[step]:
            assert value == pytest.approx(expected[step][0], abs=TOLERANCE), step

    one, sharded = (
        reference.adapter_dir / "adapter_model.safetensors",
        fsdp_dir / "adapter" / "adapter_model.safetensors",
    )
    a, b = load_file(one), load_file(sharded)
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a), "whole tensors, not one rank's shard"
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= TOLERANCE

    load = subprocess.run(
        [sys.executable, "-c", _LOAD, str(tiny_base), str(fsdp_dir / "adapter"), str(one)],
        cwd=REPO,
        env=_env(workspace),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert load.returncode == 0, load.stderr[-3000:]
    loaded = json.loads(load.stdout.strip().splitlines()[-1])
    assert loaded["unmatched"] == [], "peft loads every saved tensor and nothing is missing"
    assert len(loaded["diff"]) == len(a) and max(loaded["diff"].values()) <= TOLERANCE
