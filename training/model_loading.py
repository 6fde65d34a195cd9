"""Load a PaliGemma base: the tiny local preset, a local folder or a hub id, one code path.

``tiny`` is built on first use under the workspace's ``models/`` folder; every other
reference goes straight to ``from_pretrained`` (safetensors only, no remote code).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoProcessor, PaliGemmaForConditionalGeneration, PaliGemmaProcessor

from training.presets import preset_for
from training.tiny_base import build_tiny_base, tiny_base_is_current

TINY_PRESET = "tiny"
TINY_DIR_NAME = "tiny-paligemma"


def resolve_base(ref: str, models_dir: Path) -> str:
    """The ``from_pretrained`` reference for ``ref`` (a preset name, a hub id or a folder);
    builds the tiny base when asked for it."""
    if ref != TINY_PRESET:
        preset = preset_for(ref)
        return preset.ref if preset is not None else ref
    path = Path(models_dir) / TINY_DIR_NAME
    if not tiny_base_is_current(path):
        build_tiny_base(path)
    return str(path)


def load_processor(ref: str) -> PaliGemmaProcessor:
    """The processor of a resolved base reference (or of an adapter folder that holds one)."""
    processor = AutoProcessor.from_pretrained(ref, trust_remote_code=False)
    if not isinstance(processor, PaliGemmaProcessor):
        raise TypeError(f"{ref}: expected a PaliGemmaProcessor, found {type(processor).__name__}")
    return processor


Loaded = tuple[PaliGemmaForConditionalGeneration, PaliGemmaProcessor]


def load_base(ref: str, *, dtype: torch.dtype = torch.float32, quantize_4bit: bool = False) -> Loaded:
    """Model and processor of a resolved base reference (a folder or a hub id).

    Args:
        quantize_4bit: load the weights in 4-bit nf4 with bf16 compute (QLoRA; bitsandbytes
            on a CUDA GPU).
    """
    kwargs: dict[str, Any] = {}
    if quantize_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        kwargs["device_map"] = {"": torch.cuda.current_device()}
        dtype = torch.bfloat16
    model = PaliGemmaForConditionalGeneration.from_pretrained(
        ref, dtype=dtype, use_safetensors=True, trust_remote_code=False, **kwargs
    )
    return model, load_processor(ref)


def load_for_inference(base_ref: str, adapter_dir: Path | None = None) -> tuple[Any, PaliGemmaProcessor]:
    """The base alone, the base with a LoRA adapter applied, or a fully fine-tuned folder."""
    if adapter_dir is None:
        return load_base(base_ref)
    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        return load_base(str(adapter_dir))
    from peft import PeftModel

    base, _ = load_base(base_ref)
    model = PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=False)
    return model.eval(), load_processor(str(adapter_dir))
