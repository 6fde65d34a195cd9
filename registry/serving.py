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


def predict_registered(tracking_uri: str, model_uri: str, images: Sequence[str], prompts: Sequence[str]) -> list[str]:
    """Load ``model_uri`` (``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``runs:/...``)
    from the store at ``tracking_uri`` as MLflow pyfunc, as any consumer does, and answer
    ``prompts`` about ``images`` (one prompt per image).

    Raises:
        UnknownModelError: a ``models:/`` URI whose model, alias or version the store lacks.
    """
    import mlflow
    import pandas as pd

    from registry.models import global_tracking_uri, resolve_version
    from registry.tracking import client_for

    client = client_for(tracking_uri)
    if model_uri.startswith("models:/"):
        resolve_version(client, model_uri)  # an unknown name or alias, said plainly
    with global_tracking_uri(client):
        model = mlflow.pyfunc.load_model(model_uri)
    return list(model.predict(pd.DataFrame({"image": list(images), "prompt": list(prompts)})))


def export_version(tracking_uri: str, ref: str, models_dir: Path, out_dir: Path) -> Path:
    """The adapter of version ``ref`` (``NAME@ALIAS`` or ``NAME@VERSION``) merged into the base
    its tags name (``export_merged``), written to ``out_dir``.

    Raises:
        UnknownModelError: no such model, alias or version.
    """
    import tempfile

    from models.loading import resolve_base
    from registry.lineage import base_model_of
    from registry.models import download_adapter, resolve_version
    from registry.tracking import client_for

    client = client_for(tracking_uri)
    version = resolve_version(client, ref)
    with tempfile.TemporaryDirectory(prefix="palitune-export-") as scratch:
        adapter = download_adapter(client, version, Path(scratch))
        return export_merged(resolve_base(base_model_of(version.tags), models_dir), adapter, out_dir)
