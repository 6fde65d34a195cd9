"""PaliGemma 2 3B at its real size, random weights: training samples/s, MFU, peak memory,
batched generation tokens/s. No download: the architecture comes from a config in the repo.

    .venv/bin/python -m benchmarks.gpu_scale                  # 3B at 448 and 224 px, on the GPU (~5 min on an H100)
    .venv/bin/python -m benchmarks.gpu_scale --shape small    # the same code on a shrunk model, on a CPU (a test)

``configs/gpu_scale/paligemma2-3b-pt-448.json`` is the published architecture of
``google/paligemma2-3b-pt-448`` (SigLIP So400m/14: hidden 1152, MLP 4304, 27 layers, 16
heads; Gemma 2 2B: hidden 2304, MLP 9216, 26 layers, 8 heads, 4 KV heads, head dim 256,
vocabulary 257,216; projector 1152 -> 2304): 3.03 B parameters, 1,024 image tokens at 448 px,
256 at 224 px. Weights are random, so shapes, memory and speed are the real model's; what
it says is not.

Per image size, measured in this process:
- ``lora``: palitune's default method (``training.peft_setup.prepare_model``: LoRA r16 on the
  language model's attention and MLP, projector trained, SigLIP frozen) and ``full``
  (everything trains), both as ``precision: bf16`` trains them: fp32 weights under bf16
  autocast, AdamW. Samples/s and tokens/s over timed steps after warm-up; MFU = FLOPs of
  one step (torch's FlopCounterMode: the matmuls and attention executed, forward and
  backward) / step time / peak bf16 FLOP/s, against both the GPU's published dense peak
  (where known) and the matmul peak measured here; peak memory from the CUDA allocator.
  A batch that runs out of memory is halved and retried, and the table says so.
- generation: greedy decoding of ``--new-tokens`` tokens for a batch of prompts vs one
  prompt, KV cache on (bf16 weights), tokens/s and the ratio.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration

from benchmarks.common import Section, matmul_peak, training_flops
from training.config import Method, RunConfig
from training.peft_setup import prepare_model

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "gpu_scale" / "paligemma2-3b-pt-448.json"
PROMPT_TOKENS, ANSWER_TOKENS = 32, 32  # text around the image tokens: a question and its answer
# Dense bf16 tensor-core peaks from the vendors' data sheets, by device-name fragment.
PUBLISHED_BF16_PEAK = {"H100 SXM": 989e12, "H100 80GB HBM3": 989e12, "H100 PCIe": 756e12, "H100 NVL": 835e12,
                       "H200": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12}  # fmt: skip


def paligemma_config(shape: str, image_size: int) -> PaliGemmaConfig:
    """The shipped 3B config at ``image_size``; ``small`` shrinks every width and depth, keeping the layout."""
    data = json.loads(CONFIG.read_text())
    data["vision_config"]["image_size"] = image_size
    tokens = (image_size // data["vision_config"]["patch_size"]) ** 2
    data["vision_config"]["num_image_tokens"] = data["text_config"]["num_image_tokens"] = tokens
    if shape == "small":
        data["vision_config"].update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
        data["text_config"].update(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            head_dim=16, query_pre_attn_scalar=16, vocab_size=2048,
        )  # fmt: skip
        data.update(projection_dim=64, image_token_index=2000)
        data["vision_config"]["projection_dim"] = 64
    return PaliGemmaConfig.from_dict(data)


def build_model(config: PaliGemmaConfig, device: torch.device, dtype: torch.dtype) -> PaliGemmaForConditionalGeneration:
    """Random weights, initialised directly on ``device`` in ``dtype`` (seconds for 3 B on a GPU)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        torch.manual_seed(0)
        with device:
            model = PaliGemmaForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    return model


def synthetic_batch(config: PaliGemmaConfig, batch: int, device: torch.device, answer: bool = True) -> dict[str, Any]:
    """What the collator makes of ``batch`` examples: image tokens, <bos>, prompt, answer + <eos>."""
    image_tokens = config.text_config.num_image_tokens  # type: ignore[union-attr]
    vocab = min(config.text_config.vocab_size, config.image_token_id)  # type: ignore[union-attr]
    generator = torch.Generator().manual_seed(batch)
    prompt = torch.randint(3, vocab, (batch, PROMPT_TOKENS), generator=generator)
    parts = [torch.full((batch, image_tokens), config.image_token_id), torch.full((batch, 1), 2), prompt]
    if answer:
        parts += [torch.randint(3, vocab, (batch, ANSWER_TOKENS - 1), generator=generator), torch.ones(batch, 1).long()]
    input_ids = torch.cat(parts, dim=1)
    types = torch.zeros_like(input_ids)
    if answer:
        types[:, -ANSWER_TOKENS:] = 1
    size = config.vision_config.image_size  # type: ignore[union-attr]
    inputs = {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "token_type_ids": types,
        "pixel_values": torch.randn(batch, 3, size, size, generator=generator),
    }
    if answer:
        inputs["labels"] = input_ids.masked_fill(types == 0, -100)
    return {k: v.to(device) for k, v in inputs.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class TrainResult:
    batch: int
    seconds: float  # per step
    flops: int  # per step
    peak_memory_gb: float
    halved: int  # times the batch was halved after running out of memory


def measure_training(
    config: PaliGemmaConfig, method: Method, batch: int, steps: int, device: torch.device
) -> TrainResult:
    """Train ``steps`` timed steps (after 2 warm-up steps) as ``precision: bf16`` would."""
    halved = 0
    while True:
        try:
            return _train(config, method, batch, steps, device, halved)
        except torch.OutOfMemoryError:
            if batch == 1:
                raise
            batch, halved = batch // 2, halved + 1
            if device.type == "cuda":
                torch.cuda.empty_cache()  # the failed attempt's model and activations are gone with its frame


def _train(
    config: PaliGemmaConfig, method: Method, batch: int, steps: int, device: torch.device, halved: int
) -> TrainResult:
    model, _ = prepare_model(build_model(config, device, torch.float32), RunConfig(method=method,
                             freeze_vision=method is not Method.FULL))  # fmt: skip
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    inputs = synthetic_batch(config, batch, device)

    def forward_backward() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(**inputs).loss
        loss.backward()

    def step() -> None:
        forward_backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    flops = training_flops(forward_backward)
    optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    seconds = (time.perf_counter() - start) / steps
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return TrainResult(batch, seconds, flops, peak, halved)


@torch.inference_mode()
def measure_generation(
    config: PaliGemmaConfig, batches: tuple[int, int], new_tokens: int, device: torch.device
) -> dict[int, float]:
    """Seconds to greedy-decode ``new_tokens`` for each batch size (bf16 weights, KV cache)."""
    model = build_model(config, device, torch.bfloat16).eval()
    seconds = {}
    for batch in batches:
        inputs = synthetic_batch(config, batch, device, answer=False)
        inputs["pixel_values"] = inputs["pixel_values"].to(torch.bfloat16)
        for timed in (False, True):  # a warm-up, then the timed run
            _sync(device)
            start = time.perf_counter()
            model.generate(
                **inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, use_cache=True
            )
            _sync(device)
            if timed:
                seconds[batch] = time.perf_counter() - start
    return seconds


def published_peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PUBLISHED_BF16_PEAK.items() if key in name), None)


def measure(shape: str = "3b", image_sizes: tuple[int, ...] = (448, 224), steps: int = 10,
            batches: dict[Method, int] | None = None, new_tokens: int = 32, generation_batch: int = 16,
            device: str | None = None) -> Section:  # fmt: skip
    batches = batches or {Method.LORA: 16, Method.FULL: 4}
    where = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    measured_peak = matmul_peak(torch.bfloat16, where.type)
    published = published_peak(where)
    rows = [["model", "method", "batch", "samples/s", "tokens/s", "TFLOP/s", "MFU (published peak)",
             "MFU (measured peak)", "peak memory GiB"]]  # fmt: skip
    ratios, notes = {}, []
    for size in image_sizes:
        config = paligemma_config(shape, size)
        name = f"PaliGemma 2 {'3B' if shape == '3b' else 'small'}-{size}"
        tokens_per_example = config.text_config.num_image_tokens + 1 + PROMPT_TOKENS + ANSWER_TOKENS  # type: ignore[union-attr]
        speed = {}
        for method in (Method.LORA, Method.FULL):
            result = measure_training(config, method, batches[method], steps, where)
            achieved = result.flops / result.seconds
            speed[method] = result.batch / result.seconds
            mfu_published = f"{100 * achieved / published:.1f} %" if published else "n/a"
            rows.append([name, method.value, f"{result.batch}" + (" (halved: out of memory)" * bool(result.halved)),
                         f"{speed[method]:.2f}", f"{speed[method] * tokens_per_example:.0f}",
                         f"{achieved / 1e12:.1f}", mfu_published, f"{100 * achieved / measured_peak:.1f} %",
                         "n/a" if where.type != "cuda" else f"{result.peak_memory_gb:.1f}"])  # fmt: skip
        ratios[f"{name}: LoRA vs full fine-tune samples/s"] = f"{speed[Method.LORA] / speed[Method.FULL]:.2f}x"
        gen = measure_generation(config, (1, generation_batch), new_tokens, where)
        per_token = {b: b * new_tokens / s for b, s in gen.items()}
        ratios[f"{name}: generation batch {generation_batch} vs 1"] = (
            f"{per_token[generation_batch]:.0f} vs {per_token[1]:.0f} new tokens/s "
            f"({per_token[generation_batch] / per_token[1]:.1f}x)"
        )
    device_name = torch.cuda.get_device_name(where) if where.type == "cuda" else "CPU"
    notes.append(
        f"Device: {device_name}; bf16 matmul peak measured here {measured_peak / 1e12:.1f} TFLOP/s"
        + (f", published dense peak {published / 1e12:.0f} TFLOP/s." if published else ".")
        + f" Sequence: image tokens + <bos> + {PROMPT_TOKENS} prompt + {ANSWER_TOKENS} answer tokens;"
        f" {steps} timed steps after 2 warm-up; fp32 weights, bf16 autocast, AdamW."
    )
    return Section(
        title=f"GPU scale: PaliGemma 2 {shape}, random weights",
        command=f"python -m benchmarks.gpu_scale --shape {shape}",
        table=rows,
        ratios=ratios,
        notes=notes,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["3b", "small"], default="3b")
    parser.add_argument("--image-sizes", type=int, nargs="+", default=[448, 224])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16, help="LoRA training batch (halved on out-of-memory)")
    parser.add_argument("--full-batch", type=int, default=4, help="full fine-tune batch (halved on out-of-memory)")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--generation-batch", type=int, default=16)
    parser.add_argument("--device", help="cuda or cpu (default: cuda when there is one)")
    args = parser.parse_args()
    if args.shape == "3b" and not torch.cuda.is_available() and args.device != "cpu":
        parser.error("the 3B shape needs a GPU; use --shape small on a CPU")
    batches = {Method.LORA: args.batch, Method.FULL: args.full_batch}
    measure(args.shape, tuple(args.image_sizes), args.steps, batches, args.new_tokens, args.generation_batch,
            args.device).print()  # fmt: skip


if __name__ == "__main__":
    main()
