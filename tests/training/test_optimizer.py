"""The optimizer: no weight decay on biases and norms, the fastest AdamW kernel, 8-bit on GPU only."""

from pathlib import Path

import pytest
import torch
from transformers import Trainer

from data.workspace import Workspace
from models.loading import load_base
from training.config import ConfigError, load_config
from training.peft_setup import prepare_model
from training.setup_steps import make_optimizer, parameter_groups
from training.train import train

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs" / "tiny"


@pytest.mark.parametrize(
    ("config", "overrides"),
    [("64px_vqa_full.yaml", ["freeze_vision=false"]), ("64px_vqa_lora.yaml", [])],
)
def test_biases_and_norms_never_decay_as_in_the_hf_trainer(tiny_base: Path, config: str, overrides: list[str]) -> None:
    base, _ = load_base(str(tiny_base))
    model, _ = prepare_model(base, load_config(CONFIGS / config, overrides))
    decayed, undecayed = parameter_groups(model, 0.1)
    assert (decayed["weight_decay"], undecayed["weight_decay"]) == (0.1, 0.0)
    names = {id(p): name for name, p in model.named_parameters()}
    decayed_names = {names[id(p)] for p in decayed["params"]}
    undecayed_names = {names[id(p)] for p in undecayed["params"]}
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert decayed_names | undecayed_names == trainable and not decayed_names & undecayed_names
    # the HF Trainer's own rule, on the same model
    hf_decayed = set(Trainer.get_decay_parameter_names(None, model))  # type: ignore[arg-type]
    assert decayed_names == trainable & hf_decayed
    assert undecayed_names, "the tiny base has norms and biases that train"
    for name in undecayed_names:
        assert "bias" in name or "norm" in name, name
    assert all("norm" not in n and "bias" not in n for n in decayed_names)


def test_adamw_is_fused_where_torch_has_the_kernel_and_foreach_elsewhere(tiny_base: Path) -> None:
    base, _ = load_base(str(tiny_base))
    model, _ = prepare_model(base, load_config(CONFIGS / "64px_vqa_lora.yaml"))
    config = load_config(CONFIGS / "64px_vqa_lora.yaml", ["weight_decay=0.01"])
    cpu, _ = make_optimizer(config, model)
    assert cpu.defaults["fused"] and not cpu.defaults["foreach"]
    other, _ = make_optimizer(config, model, torch.device("mps"))
    assert other.defaults["foreach"] and not other.defaults["fused"]
    assert [g["weight_decay"] for g in cpu.param_groups] == [0.01, 0.0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the refusal on a machine without CUDA")
def test_8bit_adamw_is_refused_without_a_gpu_before_anything_loads(
    workspace: Path, tiny_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.train as recipe

    loaded: list[str] = []
    monkeypatch.setattr(recipe, "load_base_model", lambda *args: loaded.append("base"))  # must not be reached
    config = load_config(
        CONFIGS / "64px_vqa_full.yaml", [f"base_model={tiny_base}", "dataset=dvc-data/vqa", "optimizer=adamw_8bit"]
    )
    with pytest.raises(ConfigError, match="optimizer: adamw_8bit .*CUDA"):
        train(config, Workspace(workspace), tracking_uri=f"sqlite:///{workspace}/mlflow.db")
    assert loaded == [] and not (workspace / "runs").exists()


@pytest.mark.gpu
def test_8bit_adamw_steps_on_a_gpu(tiny_base: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("bitsandbytes")
    base, _ = load_base(str(tiny_base))
    model, _ = prepare_model(base, load_config(CONFIGS / "64px_vqa_full.yaml"))
    model.cuda()
    optimizer, _ = make_optimizer(load_config(CONFIGS / "64px_vqa_full.yaml", ["optimizer=adamw_8bit"]), model)
    assert type(optimizer).__name__ == "AdamW8bit"
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.ones_like(p)
    optimizer.step()
    after = [p for p in model.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
