"""Each method and precision stores each parameter in its dtype, and such a run trains."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from data.workspace import Workspace
from models.loading import load_base
from training.config import Method, Precision, RunConfig, load_config
from training.peft_setup import prepare_model
from training.precision import load_dtype

REPO = Path(__file__).resolve().parents[2]
F32, BF16 = torch.float32, torch.bfloat16


def _dtypes(model: torch.nn.Module) -> dict[str, set[torch.dtype]]:
    """The dtypes of the trainable and the frozen parameters, and of the LoRA and projector ones."""
    found: dict[str, set[torch.dtype]] = {"trainable": set(), "frozen": set(), "lora": set(), "projector": set()}
    for name, param in model.named_parameters():
        found["trainable" if param.requires_grad else "frozen"].add(param.dtype)
        if "lora_" in name:
            found["lora"].add(param.dtype)
        if "multi_modal_projector" in name and param.requires_grad:
            found["projector"].add(param.dtype)
    return found


@pytest.mark.parametrize(
    ("method", "precision", "frozen", "trainable"),
    [
        (Method.LORA, Precision.FP32, F32, F32),
        (Method.LORA, Precision.BF16, BF16, F32),  # bf16 base, fp32 adapter and projector
        (Method.FULL, Precision.FP32, F32, F32),
        (Method.FULL, Precision.BF16, BF16, F32),  # fp32 master weights; the frozen vision tower bf16
        (Method.FULL, Precision.BF16_PURE, BF16, BF16),
    ],
)
def test_each_parameter_is_stored_in_its_dtype(
    tiny_base: Path, method: Method, precision: Precision, frozen: torch.dtype, trainable: torch.dtype
) -> None:
    config = RunConfig(method=method, precision=precision, freeze_vision=True, freeze_projector=False)
    base, _ = load_base(str(tiny_base), dtype=load_dtype(config))
    model, _ = prepare_model(base, config)
    found = _dtypes(model)
    assert found["frozen"] == {frozen} and found["trainable"] == {trainable}, found
    assert found["projector"] == {trainable}, "the trained projector is a trainable weight like any other"
    if method is Method.LORA:
        assert found["lora"] == {trainable}


def test_full_fine_tunes_keep_the_checkpoints_fp32_weights(tiny_base: Path) -> None:
    """Master weights come from the checkpoint in fp32, not through a bf16 round trip."""
    reference, _ = load_base(str(tiny_base))
    config = RunConfig(method=Method.FULL, precision=Precision.BF16, freeze_vision=True)
    base, _ = load_base(str(tiny_base), dtype=load_dtype(config))
    model, _ = prepare_model(base, config)
    name = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(dict(model.named_parameters())[name], dict(reference.named_parameters())[name])


def test_qlora_loads_its_base_in_bf16_and_bf16_pure_is_for_full_fine_tunes() -> None:
    assert load_dtype(RunConfig(method=Method.QLORA, precision=Precision.BF16)) == BF16
    assert load_dtype(RunConfig(method=Method.FULL, precision=Precision.BF16)) == F32
    with pytest.raises(ValueError, match="bf16-pure is for method full"):
        RunConfig(method=Method.LORA, precision=Precision.BF16_PURE)


@pytest.fixture
def fresh_accelerate_state() -> Iterator[None]:
    """Accelerate keeps one mixed-precision setting per process; these runs change it."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    yield
    AcceleratorState._reset_state()  # later tests in this process run fp32 again


@pytest.mark.usefixtures("fresh_accelerate_state")
@pytest.mark.parametrize(
    ("config_file", "precision"), [("64px_vqa_lora.yaml", "bf16"), ("64px_vqa_full.yaml", "bf16-pure")]
)
def test_a_bf16_run_trains_and_validates(
    workspace: Path, tiny_base: Path, tmp_path: Path, config_file: str, precision: str
) -> None:
    from training.train import train

    config = load_config(
        REPO / "configs" / "tiny" / config_file,
        [
            f"base_model={tiny_base}",
            "dataset=dvc-data/vqa",
            f"precision={precision}",
            "steps=4",
            "batch_size=4",
            "log_every=2",
            "eval_every=4",  # generation from a bf16 base with fp32 trained modules
            "eval_examples=4",
            "gradient_checkpointing=true",
            "max_new_tokens=4",
        ],
    )
    logged: list[dict[str, float]] = []
    train(
        config,
        Workspace(workspace),
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        on_log=lambda _, m: logged.append(m),
    )
    losses = [m["train/loss"] for m in logged if "train/loss" in m]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    assert any("vqa/val/vqa_accuracy" in m for m in logged)
