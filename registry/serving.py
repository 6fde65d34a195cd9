"""Serve a registered adapter: decode images, batch prompts, generate text.

This is what the logged MLflow pyfunc model (``registry/pyfunc_model.py``) runs and what
``palitune predict`` runs, so a consumer of ``models:/palitune-<task>@champion`` gets the
same text as the command line. The base model is resolved from the version's model config
(``base_model``: the tiny preset, a hub id or a local folder) at load time; only the adapter
folder (with its processor and run config) travels as an artifact.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.generation import greedy_generate
from models.images import decode_image


class AdapterPredictor:
    """A base model with an adapter applied, answering prompts about images greedily."""

    def __init__(self, base_ref: str, adapter_dir: Path, *, max_new_tokens: int = 32, batch_size: int = 16):
        from models.loading import load_for_inference

        self.model, self.processor = load_for_inference(base_ref, Path(adapter_dir))
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size

    def predict(self, images: Sequence[Any], prompts: Sequence[str]) -> list[str]:
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
        outputs: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = slice(start, start + self.batch_size)
            pictures = [decode_image(i) for i in images[chunk]]
            outputs += greedy_generate(
                self.model, self.processor, pictures, prompts[chunk], max_new_tokens=self.max_new_tokens
            )
        return outputs


def load_predictor(adapter_dir: Path, model_config: dict[str, Any]) -> AdapterPredictor:
    """The predictor a logged model describes: its adapter folder and its model config."""
    from data.workspace import Workspace
    from models.loading import resolve_base

    base_ref = resolve_base(str(model_config["base_model"]), Workspace.from_env().models)
    return AdapterPredictor(base_ref, adapter_dir, max_new_tokens=int(model_config.get("max_new_tokens", 32)))


def export_merged(base_ref: str, adapter_dir: Path, out_dir: Path) -> Path:
    """Merge a LoRA adapter into its base and save one model (safetensors) with its processor.

    For serving stacks that want a single checkpoint: the result loads with
    ``PaliGemmaForConditionalGeneration.from_pretrained(out_dir)``. Written beside ``out_dir``
    and moved into place when complete. A fully fine-tuned folder is saved as it is.
    """
    from data.atomic import staged_dir
    from models.loading import load_for_inference

    model, processor = load_for_inference(base_ref, Path(adapter_dir))
    merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    with staged_dir(Path(out_dir)) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
    return Path(out_dir)
