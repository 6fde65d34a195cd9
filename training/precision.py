"""Which dtype each parameter is stored in, per method and precision, and TF32 on GPUs.

| precision | method | frozen base | trainable (and AdamW state) | matmuls |
|---|---|---|---|---|
| fp32 | any | fp32 | fp32 | fp32 |
| bf16 / fp16 | lora, qlora | bf16 / fp16 (qlora: nf4) | fp32: LoRA A/B, the projector if trained | autocast |
| bf16 / fp16 | full | bf16 / fp16 (what is frozen) | fp32 master weights | autocast |
| bf16-pure | full | bf16 | bf16 | bf16 |

Why the frozen base is stored in the compute dtype: an fp32 base under autocast keeps a bf16
copy of every weight in the graph until backward, about 6 bytes per frozen parameter at peak
instead of 2. Why trainable weights stay fp32: AdamW's small updates vanish when added to a
bf16 weight (8 mantissa bits), and peft upcasts only LoRA A/B, not ``modules_to_save`` such
as the projector. A LoRA base loads in the compute dtype directly (it is never updated, so
nothing is lost); a full fine-tune loads fp32 so its master weights are the checkpoint's,
and only what it freezes is cast down.
"""

from __future__ import annotations

import torch

from training.config import Method, Precision, RunConfig

_COMPUTE = {
    Precision.FP32: torch.float32,
    Precision.BF16: torch.bfloat16,
    Precision.FP16: torch.float16,
    Precision.BF16_PURE: torch.bfloat16,
}


def compute_dtype(precision: Precision) -> torch.dtype:
    """The dtype matmuls run in (under autocast for bf16 and fp16)."""
    return _COMPUTE[precision]


def load_dtype(config: RunConfig) -> torch.dtype:
    """The dtype the base's weights are loaded in for ``config``'s method and precision."""
    if config.precision is Precision.BF16_PURE or config.method in (Method.LORA, Method.QLORA):
        return compute_dtype(config.precision)
    return torch.float32  # full fine-tune: fp32 master weights from the checkpoint itself


def trainable_dtype(precision: Precision) -> torch.dtype:
    """The dtype of trainable parameters, their gradients and optimizer state."""
    return torch.bfloat16 if precision is Precision.BF16_PURE else torch.float32


def place_parameters(model: torch.nn.Module, precision: Precision) -> None:
    """Cast each parameter to its dtype in the table above, in place, once trainability is set.

    Quantized (4-bit) weights are left as they are. A tied pair (Gemma's ``lm_head`` and
    input embeddings) is one parameter, so it stays tied.
    """
    frozen, trained = compute_dtype(precision), trainable_dtype(precision)
    for param in model.parameters():
        if not param.is_floating_point():  # bitsandbytes' packed nf4 storage
            continue
        target = trained if param.requires_grad else frozen
        if param.dtype != target:
            param.data = param.data.to(target)


def enable_tf32(device: torch.device) -> None:
    """Let fp32 matmuls and convolutions use TF32 tensor cores on a CUDA GPU (Ampere and later).

    About 8x the fp32 matmul throughput for a 10-bit mantissa in the products, accumulated in
    fp32: what fp32 parts of a mixed-precision step (and fp32 runs) want on such GPUs. The
    CUDA-only switches are used so that CPU numerics (the fp32 demo) stay exactly fp32.
    """
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
