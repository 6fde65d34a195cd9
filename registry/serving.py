"""Serve a registered adapter: decode images, batch prompts, generate text.

This is what the logged MLflow pyfunc model (``registry/pyfunc_model.py``) runs and what
``palitune predict`` runs, so a consumer of ``models:/palitune-<task>@champion`` gets the
same text as the command line. The base model is resolved from the version's model config
(``base_model``: the tiny preset, a hub id or a local folder) at load time; only the adapter
folder (with its processor and run config) travels as an artifact.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

IMAGE_TOKEN = "<image>"


def decode_image(value: Any) -> Image.Image:
    """An image from a file path, raw bytes, or base64 text (a ``data:`` URI prefix is allowed).

    Raises:
        ValueError: the value is none of those, or not an image.
    """
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    data: bytes
    if isinstance(value, bytes | bytearray):
        data = bytes(value)
    elif isinstance(value, str) and len(value) < 4096 and Path(value).is_file():
        data = Path(value).read_bytes()
    elif isinstance(value, str):
        text = value.split(",", 1)[1] if value.startswith("data:") else value
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("image: expected a file path, bytes or base64 text") from None
    else:
        raise ValueError(f"image: expected a file path, bytes or base64 text, got {type(value).__name__}")
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except OSError as err:
        raise ValueError(f"image: not a readable image ({err})") from None


class AdapterPredictor:
    """A base model with an adapter applied, answering prompts about images greedily."""

    def __init__(self, base_ref: str, adapter_dir: Path, *, max_new_tokens: int = 32, batch_size: int = 16):
        from training.model_loading import load_for_inference

        self.model, self.processor = load_for_inference(base_ref, Path(adapter_dir))
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size

    @torch.inference_mode()
    def predict(self, images: Sequence[Any], prompts: Sequence[str]) -> list[str]:
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
        outputs: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = slice(start, start + self.batch_size)
            batch = self.processor(
                text=[IMAGE_TOKEN + p for p in prompts[chunk]],
                images=[decode_image(i) for i in images[chunk]],
                return_tensors="pt",
                padding="longest",
            )
            generated = self.model.generate(**batch, max_new_tokens=self.max_new_tokens, do_sample=False)
            new_tokens = generated[:, batch["input_ids"].shape[1] :]
            outputs += [t.strip() for t in self.processor.batch_decode(new_tokens, skip_special_tokens=True)]
        return outputs


def load_predictor(adapter_dir: Path, model_config: dict[str, Any]) -> AdapterPredictor:
    """The predictor a logged model describes: its adapter folder and its model config."""
    from data.workspace import Workspace
    from training.model_loading import resolve_base

    base_ref = resolve_base(str(model_config["base_model"]), Workspace.from_env().models)
    return AdapterPredictor(base_ref, adapter_dir, max_new_tokens=int(model_config.get("max_new_tokens", 32)))


def export_merged(base_ref: str, adapter_dir: Path, out_dir: Path) -> Path:
    """Merge a LoRA adapter into its base and save one model (safetensors) with its processor.

    For serving stacks that want a single checkpoint: the result loads with
    ``PaliGemmaForConditionalGeneration.from_pretrained(out_dir)``. Written beside ``out_dir``
    and moved into place when complete. A fully fine-tuned folder is saved as it is.
    """
    from data.atomic import staged_dir
    from training.model_loading import load_for_inference

    model, processor = load_for_inference(base_ref, Path(adapter_dir))
    merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    with staged_dir(Path(out_dir)) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
    return Path(out_dir)
