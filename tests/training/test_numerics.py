"""How the step computes, checked against the plain computation on the tiny base.

- The answer-only loss equals ``model(**batch).loss`` (full-sequence logits), softcapped or not.
- Gradient accumulation weighs every supervised token the same, across micro-batches and ranks.
- Gradient checkpointing keeps fewer activations and gives the same loss and gradients.
- Every attention kernel a tower allows gives the same loss; what a tower refuses is refused by name.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import GemmaConfig, PaliGemmaConfig, SiglipVisionConfig
from transformers.models.gemma2 import Gemma2Config

from data.schema import read_split
from data.synthetic import SplitSizes, write_synthetic
from models.loading import AttnImplementation, ModelError, attention_implementations, load_base
from training.collate import TrainCollator
from training.config import ConfigError, Method, RunConfig
from training.loop import Window, accumulate
from training.loss import supervised_positions, supervised_token_count, token_loss_sum
from training.peft_setup import prepare_model
from training.preflight import check_runtime


def _batch(tiny_base: Path, data: Path, n: int = 6) -> dict[str, Any]:
    from models.loading import load_processor

    processor = load_processor(str(tiny_base))
    return dict(TrainCollator(processor, data)(read_split(data, "train")[:n]))


def _rows(batch: dict[str, Any], rows: slice) -> dict[str, Any]:
    return {key: value[rows] for key, value in batch.items()}


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


def _assert_same_grads(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 1e-6) -> None:
    assert a.keys() == b.keys() and a
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=atol, msg=name)


@pytest.mark.parametrize("softcap", [None, 5.0])
def test_the_answer_only_loss_is_the_full_computation(tiny_base: Path, small_vqa: Path, softcap: float | None) -> None:
    model, _ = load_base(str(tiny_base))
    model.config.text_config.final_logit_softcapping = softcap  # as Gemma 2 (PaliGemma 2) sets it: 30
    batch = _batch(tiny_base, small_vqa)
    rows_projected: list[int] = []
    hook = model.lm_head.register_forward_hook(lambda _m, args, _out: rows_projected.append(args[0].shape[0]))
    with torch.no_grad():
        loss_sum, tokens = token_loss_sum(model, batch)
    hook.remove()
    keep, _ = supervised_positions(batch["labels"])
    assert tokens == int(keep.sum()) == rows_projected[0], "lm_head sees the supervised positions only"
    assert tokens < batch["input_ids"].numel() / 5
    with torch.no_grad():
        full = model(**batch)
    assert full.logits.shape[:2] == batch["input_ids"].shape  # the reference projects every position
    assert (loss_sum / tokens).item() == pytest.approx(full.loss.item(), abs=1e-5)
    if softcap is not None:
        assert full.logits.abs().max().item() <= softcap, "the softcap was applied"
        model.config.text_config.final_logit_softcapping = None
        with torch.no_grad():
            uncapped, _ = token_loss_sum(model, batch)
        assert abs(uncapped.item() - loss_sum.item()) > 1e-3, "the softcap changes the loss, so it was tested"


class _Rank:
    """What the loop asks of Accelerate, for one of ``processes`` data-parallel ranks."""

    device = torch.device("cpu")

    def __init__(self, processes: int, step_tokens: int):
        self.num_processes, self.step_tokens = processes, step_tokens

    def reduce(self, tensor: torch.Tensor, reduction: str) -> torch.Tensor:
        assert reduction == "sum"
        return torch.tensor(self.step_tokens)  # the all-reduce of every rank's count

    gradient_accumulation_steps = 1  # what accelerator.backward divides the loss by

    def accumulate(self, model: torch.nn.Module) -> contextlib.nullcontext:
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()


def _accumulate(model: torch.nn.Module, accelerator: Any, micro_batches: list[dict[str, Any]]) -> None:
    accumulate(accelerator, model, micro_batches, Window(image_token_id=-1))


def test_accumulated_micro_batches_give_the_gradient_of_the_batch_they_make_up(tiny_base: Path, tmp_path: Path) -> None:
    from accelerate import Accelerator

    base, _ = load_base(str(tiny_base))
    model, _ = prepare_model(base, RunConfig(method=Method.LORA))
    # Receipts read into JSON: answers of very different lengths.
    batch = _batch(tiny_base, write_synthetic("extract", tmp_path / "extract", sizes=SplitSizes(6, 1, 1)))
    first, second = _rows(batch, slice(0, 1)), _rows(batch, slice(1, None))
    counts = [supervised_token_count(micro) for micro in (first, second)]
    assert counts[0] * 5 != counts[1], "micro-batches of different label counts per example"
    accelerator = Accelerator(cpu=True)

    _accumulate(model, accelerator, [batch])
    whole = _grads(model)
    model.zero_grad(set_to_none=True)
    model(**batch).loss.backward()  # the mean over the batch's tokens, as transformers computes it
    _assert_same_grads(whole, _grads(model))

    model.zero_grad(set_to_none=True)
    _accumulate(model, accelerator, [first, second])
    _assert_same_grads(_grads(model), whole)

    model.zero_grad(set_to_none=True)  # what a mean per micro-batch gives: another gradient
    for micro in (first, second):
        (model(**micro).loss / 2).backward()
    assert any(not torch.allclose(g, whole[n], atol=1e-6) for n, g in _grads(model).items())

    # Two data-parallel ranks, one micro-batch each: DDP's average of their gradients.
    total = sum(supervised_token_count(micro) for micro in (first, second))  # what the all-reduce returns
    per_rank = []
    for micro in (first, second):
        model.zero_grad(set_to_none=True)
        _accumulate(model, _Rank(2, total), [micro])
        per_rank.append(_grads(model))
    _assert_same_grads({n: (per_rank[0][n] + per_rank[1][n]) / 2 for n in whole}, whole)


def _loss_and_grads(model: torch.nn.Module, batch: dict[str, Any]) -> tuple[float, dict[str, torch.Tensor], int]:
    saved = 0

    def count(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += tensor.numel()
        return tensor

    model.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(count, lambda t: t):
        loss_sum, tokens = token_loss_sum(model, batch)
    (loss_sum / tokens).backward()
    return (loss_sum / tokens).item(), _grads(model), saved


@pytest.mark.parametrize("method", [Method.LORA, Method.FULL])
def test_gradient_checkpointing_keeps_less_and_computes_the_same(
    tiny_base: Path, small_vqa: Path, method: Method
) -> None:
    batch = _batch(tiny_base, small_vqa)
    results = []
    for checkpointing in (False, True):
        torch.manual_seed(0)  # the same LoRA init
        config = RunConfig(method=method, freeze_vision=False, gradient_checkpointing=checkpointing)
        base, _ = load_base(str(tiny_base))
        model, _ = prepare_model(base, config)
        model.train()
        recomputed = {type(m).__name__ for m in model.modules() if getattr(m, "gradient_checkpointing", False)}
        layers = {"SiglipEncoderLayer", "GemmaDecoderLayer"}  # the layers of both towers
        assert (layers <= recomputed) if checkpointing else not recomputed, recomputed
        results.append(_loss_and_grads(model, batch))
    (loss, grads, saved), (loss_gc, grads_gc, saved_gc) = results
    assert loss_gc == pytest.approx(loss, abs=1e-6)
    _assert_same_grads(grads_gc, grads)
    assert saved_gc < 0.6 * saved, (saved_gc, saved)


def test_every_attention_kernel_gives_the_same_loss(tiny_base: Path, small_vqa: Path) -> None:
    batch = _batch(tiny_base, small_vqa)
    losses, grads = {}, {}
    for choice in AttnImplementation:
        model, _ = load_base(str(tiny_base), attn_implementation=choice)
        expected = "sdpa" if choice is AttnImplementation.AUTO else choice.value
        assert model.config.text_config._attn_implementation == expected
        assert model.config.vision_config._attn_implementation == expected
        model.train()
        if choice is AttnImplementation.FLEX_ATTENTION:  # no backward on a CPU: the forward only
            with torch.no_grad():
                loss_sum, tokens = token_loss_sum(model, batch)
            losses[choice] = (loss_sum / tokens).item()
            continue
        losses[choice], grads[choice], _ = _loss_and_grads(model, batch)
    for choice, loss in losses.items():
        assert loss == pytest.approx(losses[AttnImplementation.EAGER], abs=1e-5), choice
    _assert_same_grads(grads[AttnImplementation.SDPA], grads[AttnImplementation.EAGER], atol=1e-5)


def _paligemma2_config() -> PaliGemmaConfig:
    """A shrunk PaliGemma 2: its text tower is Gemma 2, with attention-logit softcapping."""
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    text = Gemma2Config(
        vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, head_dim=16
    )
    return PaliGemmaConfig(vision_config=vision.to_dict(), text_config=text.to_dict(), projection_dim=32)


def test_attention_kernels_are_checked_per_tower() -> None:
    pg2 = _paligemma2_config()
    assert attention_implementations(pg2, AttnImplementation.AUTO, "pg2") == {
        "vision_config": "sdpa",
        "text_config": "eager",
    }
    assert set(attention_implementations(pg2, AttnImplementation.FLEX_ATTENTION, "pg2").values()) == {"flex_attention"}
    with pytest.raises(ModelError, match=r"sdpa: the text tower of pg2 \(Gemma2Model\).*auto or one of eager, flex"):
        attention_implementations(pg2, AttnImplementation.SDPA, "pg2")
    pg1 = PaliGemmaConfig(text_config=GemmaConfig(vocab_size=300).to_dict())
    assert set(attention_implementations(pg1, AttnImplementation.SDPA, "pg1").values()) == {"sdpa"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the refusal on a machine without a GPU")
def test_flex_attention_training_is_refused_on_a_cpu() -> None:
    with pytest.raises(ConfigError, match="flex_attention has no backward on a CPU"):
        check_runtime(RunConfig(attn_implementation=AttnImplementation.FLEX_ATTENTION))
