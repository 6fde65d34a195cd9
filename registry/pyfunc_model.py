"""The MLflow pyfunc model of a palitune adapter, logged as code (nothing is pickled).

Input: a DataFrame with columns ``image`` (file path, bytes or base64 text) and ``prompt``
(``answer en what colour is the circle?``). Output: the generated text, one per row.

A logged version is self-contained: palitune's modules it imports travel as the model's
``code/`` folder, its requirements are pinned, and a base that cannot be downloaded (the
locally built tiny base, any local folder) travels as the ``base`` artifact. Only a base named
by hub id is fetched by the consumer (from its own Hugging Face cache or the hub). So loading
needs no checkout, no ``PALITUNE_HOME`` and writes nothing to the current folder.

The artifact names and model-config keys below are the ones ``registry.models.log_pyfunc``
writes; they are spelled here too because this file must import nothing of the registry's
logging side (it runs in the consumer's process).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from models.presets import preset_for
from registry.serving import AdapterPredictor

ADAPTER_ARTIFACT, BASE_ARTIFACT = "adapter", "base"
BASE_MODEL_KEY, MAX_NEW_TOKENS_KEY = "serving.base_model", "serving.max_new_tokens"
# Versions logged before the keys were namespaced (they collided with the run's params).
LEGACY_BASE_MODEL_KEY, LEGACY_MAX_NEW_TOKENS_KEY = "base_model", "max_new_tokens"
TINY_PRESET = "tiny"


class PaliGemmaAdapterModel(PythonModel):
    """A base with the version's adapter applied, answering one prompt per image greedily."""

    def load_context(self, context: PythonModelContext) -> None:
        config: dict[str, Any] = dict(context.model_config or {})
        budget = int(config.get(MAX_NEW_TOKENS_KEY, config.get(LEGACY_MAX_NEW_TOKENS_KEY, 32)))
        adapter = Path(context.artifacts[ADAPTER_ARTIFACT])
        self.predictor = AdapterPredictor(_base_ref(context, config), adapter, max_new_tokens=budget)

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> list[str]:
        """The answer to each row's ``prompt`` about its ``image``.

        Raises:
            ValueError: a column is missing (the message names the columns there are).
        """
        missing = [c for c in ("image", "prompt") if c not in model_input.columns]
        if missing:
            raise ValueError(
                f"model input: missing column(s) {', '.join(missing)}; expected image and prompt, "
                f"found {', '.join(map(str, model_input.columns)) or 'none'}"
            )
        return self.predictor.predict(list(model_input["image"]), [str(p) for p in model_input["prompt"]])


def _base_ref(context: PythonModelContext, config: dict[str, Any]) -> str:
    """The ``from_pretrained`` reference of the version's base.

    The ``base`` artifact when the version carries one; otherwise the hub id (or preset) its
    config names. A version logged before the tiny base travelled with it can only be
    rebuilt in a palitune workspace, so that is asked for by name rather than done silently
    in the current folder.

    Raises:
        RuntimeError: a tiny-base version without its base and no ``PALITUNE_HOME``.
    """
    if BASE_ARTIFACT in context.artifacts:
        return str(context.artifacts[BASE_ARTIFACT])
    ref = str(config.get(BASE_MODEL_KEY, config.get(LEGACY_BASE_MODEL_KEY, TINY_PRESET)))
    if ref == TINY_PRESET:
        if not os.environ.get("PALITUNE_HOME"):
            raise RuntimeError(
                f"model config {BASE_MODEL_KEY}: {TINY_PRESET!r}: this version was logged without its tiny base "
                "(artifact 'base'); set PALITUNE_HOME to the palitune workspace whose models/ holds it, "
                "or register the adapter again"
            )
        from data.workspace import Workspace
        from models.loading import resolve_base

        return resolve_base(ref, Workspace.from_env().models)
    preset = preset_for(ref)
    return preset.ref if preset is not None else ref


mlflow.models.set_model(PaliGemmaAdapterModel())
