"""The MLflow pyfunc model of a palitune adapter, logged as code (nothing is pickled).

Input: a DataFrame with columns ``image`` (file path, bytes or base64 text) and ``prompt``
(``answer en what colour is the circle?``). Output: the generated text, one per row.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow.pyfunc import PythonModel

from registry.serving import load_predictor


class PaliGemmaAdapterModel(PythonModel):
    def load_context(self, context):  # type: ignore[no-untyped-def]
        self.predictor = load_predictor(Path(context.artifacts["adapter"]), dict(context.model_config or {}))

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        frame = model_input
        return self.predictor.predict(list(frame["image"]), [str(p) for p in frame["prompt"]])


mlflow.models.set_model(PaliGemmaAdapterModel())
