"""The memory planner against what a real training step holds, at small shapes on a CPU.

What is measured, per component, on a random PaliGemma 2 shrunk to a few layers (Gemma 2 text
tower with its eager softcapped attention, SigLIP vision tower, 112 px, 64 image tokens):

- weights, gradients, optimizer state: the bytes of the parameters after ``prepare_model``,
  of their ``.grad`` after backward, and of AdamW's state, counted directly;
- saved activations and saved logits: the bytes of every distinct non-parameter storage
  autograd saves for backward during ``training.loss.token_loss_sum`` (a saved-tensor hook),
  before and from the output head on;
- peak: the CPU allocator's running total of bytes allocated during one real step
  (``token_loss_sum``, backward, the run's AdamW step), as torch's profiler records it with
  ``profile_memory``. Only allocations made inside the window count, so what was alive
  before it (weights, optimizer state, the batch) is added from the direct counts.
  Allocations that bypass torch's CPU allocator (oneDNN scratch) are not seen, as the CUDA
  allocator does not see cuBLAS workspaces.

The planner must be within 15 % of each. Gradient checkpointing's layer inputs are kept by
closures, not saved through autograd, so that case checks saved activations not at all and
the peak as usual.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.profiler import ProfilerActivity, profile
from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration

from training.config import RunConfig, load_config
from training.loss import token_loss_sum
from training.memory_plan import MemoryPlan, estimate, plan_memory, smallest_gpu
from training.model_shapes import dims_from_config, model_dims
from training.peft_setup import prepare_model
from training.precision import load_dtype
from training.setup_steps import make_optimizer

ROOT = Path(__file__).resolve().parents[2]
SHAPE_3B = ROOT / "configs" / "gpu_scale" / "paligemma2-3b-pt-448.json"
BATCH, PROMPT, ANSWER, IMAGE = 4, 16, 16, 112
TOLERANCE = 0.15


def small_config(text_family: str = "gemma2") -> dict[str, Any]:
    """PaliGemma 2's layout shrunk (``gemma``: PaliGemma's, without softcapping, sdpa attention);
    widths chosen unequal so that no two terms share a size."""
    data = json.loads(SHAPE_3B.read_text())
    tokens = (IMAGE // 14) ** 2
    data["vision_config"].update(
        image_size=IMAGE, num_image_tokens=tokens, hidden_size=160, intermediate_size=608, num_hidden_layers=2,
        num_attention_heads=4, projection_dim=256,
    )  # fmt: skip
    data["text_config"].update(
        hidden_size=256, intermediate_size=768, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
        head_dim=48, query_pre_attn_scalar=48, vocab_size=4096, num_image_tokens=tokens,
    )  # fmt: skip
    data.update(projection_dim=256, hidden_size=160, image_token_index=4000)
    if text_family == "gemma":
        for gemma2_only in (
            "final_logit_softcapping",
            "attn_logit_softcapping",
            "query_pre_attn_scalar",
            "sliding_window",
        ):
            del data["text_config"][gemma2_only]
        data["text_config"]["model_type"] = "gemma"
    return data


def training_batch(data: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Image tokens, a prompt and a supervised answer of fixed lengths; random ids and pixels."""
    tokens, image_token = data["text_config"]["num_image_tokens"], data["image_token_index"]
    seq = tokens + PROMPT + ANSWER
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, image_token - 1, (BATCH, seq), generator=generator)
    ids[:, :tokens] = image_token
    token_type = torch.zeros(BATCH, seq, dtype=torch.long)
    token_type[:, tokens + PROMPT :] = 1
    size = data["vision_config"]["image_size"]
    return {
        "input_ids": ids,
        "attention_mask": torch.ones(BATCH, seq, dtype=torch.long),
        "token_type_ids": token_type,
        "pixel_values": torch.randn(BATCH, 3, size, size, generator=generator),
        "labels": ids.masked_fill(token_type == 0, -100),
    }


def _nbytes(tensors: Any) -> int:
    return sum(t.untyped_storage().nbytes() for t in tensors if isinstance(t, torch.Tensor))


def _allocator_peak(prof: Any) -> int:
    """The most bytes allocated inside the profiled window and alive at once, from the CPU
    allocator's allocation and free events in time order. The events' own running total is not
    used: it is a process-wide counter that keeps what earlier windows allocated and freed
    outside a window."""
    events, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        fields = node.extra_fields
        if type(fields).__name__ == "_ExtraFields_Allocation" and fields.device.type == "cpu":
            events.append((node.start_time_ns, fields.ptr, int(fields.alloc_size)))
        stack.extend(node.children)
    live: dict[int, int] = {}
    current = peak = 0
    for _, ptr, size in sorted(events):
        if size > 0:
            live[ptr] = size
            current += size
        elif ptr in live:  # a free of what was allocated before the window is not ours to subtract
            current -= live.pop(ptr)
        peak = max(peak, current)
    return peak


def measure_step(run: RunConfig, data: dict[str, Any]) -> dict[str, int]:
    """One warm-up step of ``run`` on the small model, then one measured (see the module docstring)."""
    torch.manual_seed(0)
    model: Any = PaliGemmaForConditionalGeneration(PaliGemmaConfig.from_dict(data))
    model = model.to(load_dtype(run))
    model.tie_weights()  # as from_pretrained leaves it
    model, _ = prepare_model(model, run)
    model.train()
    optimizer, _ = make_optimizer(run, model)
    batch = training_batch(data)
    autocast = (
        torch.autocast("cpu", dtype=torch.bfloat16) if run.precision.value == "bf16" else contextlib.nullcontext()
    )
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, tuple[str, int]] = {}
    region = ["activations"]  # from the output head on, what is saved belongs to the logits

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            saved.setdefault(storage.data_ptr(), (region[-1], storage.nbytes()))
        return tensor

    def forward_backward() -> None:
        with autocast:
            loss, _ = token_loss_sum(model, batch)
        loss.backward()

    forward_backward()
    optimizer.step()  # the optimizer's state exists from here on, as in every later step
    optimizer.zero_grad(set_to_none=True)
    state = [v for s in optimizer.state.values() for v in s.values() if v.dim() > 0]
    before = _nbytes(model.parameters()) + _nbytes(state) + _nbytes(batch.values())
    model.get_output_embeddings().register_forward_pre_hook(lambda *_: region.append("logits"))
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            forward_backward()
        gradients = _nbytes(p.grad for p in model.parameters() if p.grad is not None)
        optimizer.step()
    return {
        "weights": _nbytes(model.parameters()),
        "gradients": gradients,
        "optimizer": _nbytes(state),
        "saved_activations": sum(n for where, n in saved.values() if where == "activations"),
        "logits": sum(n for where, n in saved.values() if where == "logits"),
        "peak": before + _allocator_peak(prof),
    }


CASES: dict[str, dict[str, Any]] = {
    "lora-fp32": {"method": "lora", "precision": "fp32", "feature_cache": False},
    "lora-bf16": {"method": "lora", "precision": "bf16"},
    "lora-bf16-checkpointing": {"method": "lora", "precision": "bf16", "gradient_checkpointing": True},
    "full-fp32-vision": {"method": "full", "precision": "fp32", "freeze_vision": False},
    "gemma-lora-bf16": {"method": "lora", "precision": "bf16"},
    "gemma-full-fp32-vision": {"method": "full", "precision": "fp32", "freeze_vision": False},
}


@pytest.mark.parametrize("case", CASES)
def test_plan_matches_a_measured_step(case: str) -> None:
    run = RunConfig(batch_size=BATCH, **CASES[case])
    data = small_config("gemma" if case.startswith("gemma-") else "gemma2")
    measured = measure_step(run, data)
    dims = dims_from_config(data)
    planned = estimate(run, dims, BATCH, dims.image_tokens + PROMPT + ANSWER, ANSWER)
    assert planned.weights == pytest.approx(measured["weights"], rel=0.01)
    assert planned.gradients == pytest.approx(measured["gradients"], rel=0.01)
    assert planned.optimizer == pytest.approx(measured["optimizer"], rel=0.01)
    assert planned.logits == pytest.approx(measured["logits"], rel=TOLERANCE)
    if not run.gradient_checkpointing:  # checkpointed layers keep their inputs in closures, not through autograd
        assert planned.saved_activations == pytest.approx(measured["saved_activations"], rel=TOLERANCE)
    assert planned.total == pytest.approx(measured["peak"], rel=TOLERANCE), measured


def test_parameter_count_matches_the_published_model_built_on_meta() -> None:
    """The planner's closed-form count against transformers' own module tree (no memory used)."""
    from accelerate import init_empty_weights

    data = json.loads(SHAPE_3B.read_text())
    with init_empty_weights():
        model = PaliGemmaForConditionalGeneration(PaliGemmaConfig.from_dict(data))
    model.tie_weights()  # from_pretrained ties the output head to the input embeddings; a bare build does not
    assert dims_from_config(data).params == sum(p.numel() for p in model.parameters())
    assert model_dims("paligemma2-3b-pt-448") == dims_from_config(data)


def test_planned_peaks_of_the_published_models() -> None:
    """3B-448 LoRA at batch 8 in bf16 with checkpointing fits a 24 GB GPU; without it, more than
    four times as much and batch 8 does not fit; 28B with checkpointing needs an 80 GB GPU."""
    lora = load_config(ROOT / "configs" / "paligemma2-3b" / "448px_docvqa_lora.yaml")
    on = lora.model_copy(update={"gradient_checkpointing": True})
    small = plan_memory(on, model_dims(lora.base_model), 24)
    assert small.fits and small.total_gib < 16
    plain = plan_memory(lora.model_copy(update={"gradient_checkpointing": False}), model_dims(lora.base_model), 24)
    assert not plain.fits and plain.total_gib > 4 * small.total_gib
    assert any(s.change == "gradient_checkpointing: true" and s.total_gib <= plain.budget_gib for s in plain.switches)
    assert plain.max_batch < 8 <= small.max_batch
    big = on.model_copy(update={"base_model": "paligemma2-28b-pt-448"})
    assert 40 < plan_memory(big, model_dims(big.base_model), 80).total_gib < 80


SHIPPED = sorted((ROOT / "configs").glob("paligemma*/*.yaml"))
FITS = re.compile(r"^# Memory \(palitune train --plan\): (.*)$", re.MULTILINE)


def fits_line(plan: MemoryPlan) -> str:
    """The comment a shipped config carries: its planned peak and the smallest GPU it fits."""
    gpu = smallest_gpu(plan)
    where = f"fits one {gpu} GPU" if gpu else "fits no single GPU: shard it (FSDP, ZeRO-3)"
    return f"peak {plan.total_gib:.1f} GiB at batch {plan.batch_size}; {where}"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_config_states_the_gpu_it_fits(path: Path) -> None:
    config = load_config(path)
    found = FITS.findall(path.read_text())
    expected = fits_line(plan_memory(config, model_dims(config.base_model), 80))
    assert found == [expected], f"{path}: put '# Memory (palitune train --plan): {expected}' in its opening comment"


def test_plan_command_prints_the_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    """``palitune train --plan`` answers from the config alone (no weights exist here to load)."""
    import argparse

    from palitune.cli.train import add_commands

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())

    def run(*argv: str) -> int:
        args = parser.parse_args(["train", "--config", config, "--plan", *argv])
        return int(args.func(args, None))  # --plan reads no workspace

    config = str(ROOT / "configs" / "paligemma2-3b" / "448px_docvqa_lora.yaml")
    assert run("--gpu-memory", "24", "gradient_checkpointing=false") == 0
    table = capsys.readouterr().out
    assert "does NOT fit a 24 GiB GPU" in table
    assert re.search(r"gradient_checkpointing: true\s+\d+\.\d\s+\d+\n", table)  # enough alone: no "(not enough)"
    assert run("--json", "gradient_checkpointing=true") == 0
    record = json.loads(capsys.readouterr().out)
    assert record["fits"] and record["batch_size"] == 8 and record["seq_len"] == 1024 + 32 + 32
