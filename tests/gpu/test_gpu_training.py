"""Training on a CUDA GPU, through ``training.train`` as users run it: bf16 LoRA, QLoRA
(bitsandbytes 4-bit base), fp16 with loss scaling, and FSDP2 on two GPUs.

Each test trains the tiny base for a few steps and checks what the GPU path must get right:
the run finishes, the losses and gradient norms are finite, the adapter moved from its
initialisation, and the saved adapter reloads onto a fresh base and changes its outputs.
Skipped, with the reason, where no CUDA GPU is visible (``make test`` never needs one); the
two-GPU test also where fewer than two are.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)"),
]

REPO = Path(__file__).resolve().parents[2]
STEPS = 4
DEVICE = "cuda"  # where the reloaded adapter runs
Logs = list[dict[str, float]]


def _train(tiny_base: Path, data: Path, out: Path, **fields: Any) -> tuple[Any, Logs]:
    """Train the tiny base on ``data`` for ``STEPS`` steps with ``fields``; the result and the logged metrics."""
    from data.workspace import Workspace
    from training.config import RunConfig
    from training.train import train

    logs: Logs = []
    config = RunConfig.model_validate(
        {
            "base_model": str(tiny_base),
            "task": "vqa",
            "dataset": str(data),
            "output_dir": str(out / "run"),
            "steps": STEPS,
            "batch_size": 4,
            "log_every": 1,
            "learning_rate": 1e-3,
            "lora": {"rank": 16, "alpha": 128, "dropout": 0.05},
            **fields,
        }
    )
    on_log: Callable[[int, dict[str, float]], None] = lambda step, metrics: logs.append(dict(metrics))  # noqa: E731
    result = train(config, Workspace(out), tracking_uri=f"sqlite:///{out}/mlflow.db", on_log=on_log)
    return result, [log for log in logs if "train/loss" in log]


def _adapter_tensors(adapter_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(adapter_dir / "adapter_model.safetensors"))


def _assert_trained(result: Any, logs: Logs, overflow_first: bool = False) -> dict[str, torch.Tensor]:
    """The run logged every step with finite numbers on the GPU, and its LoRA B moved from zero.

    ``overflow_first``: fp16's loss scaler may find the first step's gradients overflowed (an
    infinite norm), skip it and lower its scale; every later step must be finite.
    """
    assert len(logs) == STEPS
    judged = logs[1:] if overflow_first and not math.isfinite(logs[0]["train/grad_norm"]) else logs
    assert all(math.isfinite(log["train/loss"]) for log in logs), logs
    assert all(math.isfinite(log["train/grad_norm"]) and log["train/grad_norm"] > 0 for log in judged), logs
    assert 0 < logs[-1]["train/peak_memory_mb"] < 8_000, "peak memory is the CUDA allocator's, for a tiny model"
    tensors = _adapter_tensors(result.adapter_dir)
    assert tensors and all(bool(t.isfinite().all()) for t in tensors.values())
    lora_b = [t for name, t in tensors.items() if "lora_B" in name]
    assert lora_b and any(bool(t.abs().sum() > 0) for t in lora_b), "LoRA B starts at zero: the optimizer never stepped"
    return tensors


def _assert_reloads_and_acts(tiny_base: Path, data: Path, adapter_dir: Path, dtype: torch.dtype) -> None:
    """The saved adapter loads onto a fresh base on the GPU and changes its logits."""
    from peft import PeftModel
    from PIL import Image

    from data.schema import read_split
    from models.loading import load_base

    base, processor = load_base(str(tiny_base), dtype=dtype)
    model = PeftModel.from_pretrained(base, str(adapter_dir)).to(DEVICE).eval()
    example = read_split(data, "train")[0]
    image = Image.open(data / example.image).convert("RGB")
    inputs = processor(text=example.prefix, images=image, return_tensors="pt").to(DEVICE)
    inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
    with torch.inference_mode():
        adapted = model(**inputs).logits.float()
        with model.disable_adapter():
            plain = model(**inputs).logits.float()
    assert bool(adapted.isfinite().all())
    assert not torch.allclose(adapted, plain), "the reloaded adapter does nothing"


def test_bf16_lora_with_checkpointing_trains_and_saves_an_adapter_that_reloads(
    tiny_base: Path, small_vqa: Path, tmp_path: Path
) -> None:
    result, logs = _train(tiny_base, small_vqa, tmp_path, precision="bf16", gradient_checkpointing=True)
    _assert_trained(result, logs)
    _assert_reloads_and_acts(tiny_base, small_vqa, result.adapter_dir, torch.bfloat16)


def test_qlora_trains_on_a_4bit_base_and_saves_its_adapter(tiny_base: Path, small_vqa: Path, tmp_path: Path) -> None:
    pytest.importorskip("bitsandbytes", reason="QLoRA needs bitsandbytes (pip install 'palitune[gpu]')")
    from bitsandbytes.nn import Linear4bit

    from models.loading import load_base

    quantized, _ = load_base(str(tiny_base), quantize_4bit=True)
    assert any(isinstance(m, Linear4bit) for m in quantized.modules()), "the base did not load in 4 bits"
    del quantized
    result, logs = _train(tiny_base, small_vqa, tmp_path, method="qlora", precision="bf16")
    _assert_trained(result, logs)
    _assert_reloads_and_acts(tiny_base, small_vqa, result.adapter_dir, torch.bfloat16)


def test_fp16_scales_the_loss_and_clips_the_unscaled_gradient(tiny_base: Path, small_vqa: Path, tmp_path: Path) -> None:
    result, logs = _train(tiny_base, small_vqa, tmp_path / "fp16", precision="fp16")
    _assert_trained(result, logs, overflow_first=True)
    _, reference = _train(tiny_base, small_vqa, tmp_path / "fp32", precision="fp32")
    # Same seed, data and first step: the loss is the fp32 run's, and the norm clipped is too
    # (unless the scaler skipped the step), neither scaled up by the loss scale (65,536 at the
    # start) nor lost to fp16 underflow.
    assert math.isclose(logs[0]["train/loss"], reference[0]["train/loss"], rel_tol=0.01)
    first, expected = logs[0]["train/grad_norm"], reference[0]["train/grad_norm"]
    if math.isfinite(first):
        assert math.isclose(first, expected, rel_tol=0.05), (first, expected)
    else:
        assert math.isfinite(logs[1]["train/grad_norm"]), "the scaler never recovered from its first overflow"
    _assert_reloads_and_acts(tiny_base, small_vqa, result.adapter_dir, torch.float16)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="FSDP2 across GPUs needs 2 CUDA GPUs")
def test_fsdp2_on_two_gpus_saves_the_whole_adapter(tiny_base: Path, small_vqa: Path, tmp_path: Path) -> None:
    launch = yaml.safe_load((REPO / "configs" / "accelerate" / "fsdp.yaml").read_text())
    assert launch["fsdp_config"]["fsdp_version"] == 2
    launch["num_processes"] = 2
    # The tiny base's text tower is Gemma (1), not PaliGemma 2's Gemma 2.
    launch["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"] = "SiglipEncoderLayer,GemmaDecoderLayer"
    launch_file = tmp_path / "fsdp-2gpu.yaml"
    launch_file.write_text(yaml.safe_dump(launch))
    fields = [f"base_model={tiny_base}", f"dataset={small_vqa}", f"output_dir={tmp_path / 'fsdp'}", f"steps={STEPS}",
              "batch_size=4", "log_every=1", "eval_every=0", "precision=bf16", "lora.dropout=0.05"]  # fmt: skip
    env = {**os.environ, "PALITUNE_HOME": str(tmp_path), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(launch_file), "-m", "training.train",
         "--config", str(REPO / "configs" / "tiny" / "64px_vqa_lora.yaml"), *fields],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    adapter_dir = Path(json.loads(proc.stdout.strip().splitlines()[-1])["adapter_dir"])
    tensors = _adapter_tensors(adapter_dir)
    result, logs = _train(tiny_base, small_vqa, tmp_path / "one", precision="bf16")
    single = _assert_trained(result, logs)
    # Gathered from both ranks: every tensor whole, none a rank's shard.
    assert {k: tuple(v.shape) for k, v in tensors.items()} == {k: tuple(v.shape) for k, v in single.items()}
    assert all(bool(t.isfinite().all()) for t in tensors.values())
    assert any(bool(t.abs().sum() > 0) for name, t in tensors.items() if "lora_B" in name)
    _assert_reloads_and_acts(tiny_base, small_vqa, adapter_dir, torch.bfloat16)
