"""Shared fixtures: a tiny PaliGemma and a small synthetic dataset, built once per session.

Nothing here touches the network: the hub is switched off and every model and dataset is
built locally.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.pop("MLFLOW_TRACKING_URI", None)  # tests use their own stores, never a user's
os.environ.pop("MLFLOW_RUN_ID", None)
# A test that names no workspace gets a temporary one, never the checkout's (or a user's) own.
os.environ["PALITUNE_HOME"] = tempfile.mkdtemp(prefix="palitune-test-home-")

from pathlib import Path  # noqa: E402

import dvc  # noqa: E402, F401  (importing dvc binds its log handlers to the streams of that moment: not a test's capsys)
import pytest  # noqa: E402

from data.synthetic import SplitSizes, write_shapes_vqa  # noqa: E402
from models.tiny_base import build_tiny_base  # noqa: E402

SMALL = SplitSizes(train=64, val=8, test=16)


@pytest.fixture(autouse=True)
def _process_globals_restored() -> Iterator[None]:
    """Undo what an in-process run leaves in process-wide state, so no test sees another's:
    Accelerate's shared state (a bf16 run would refuse every later fp32 Accelerator) and
    MLflow's tracking URI (``set_tracking_uri`` also exports ``MLFLOW_TRACKING_URI``, which
    would point a later test's graph at an earlier test's store)."""
    yield
    if "accelerate" in sys.modules:
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state()
        GradientState._reset_state()
    if "mlflow" in sys.modules:
        import mlflow
        from mlflow.tracking._tracking_service import utils as tracking_utils

        while mlflow.active_run() is not None:
            mlflow.end_run()
        tracking_utils._tracking_uri = None
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("MLFLOW_RUN_ID", None)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny PaliGemma folder, as ``palitune base build`` writes it."""
    return build_tiny_base(tmp_path_factory.mktemp("models") / "tiny-paligemma")


@pytest.fixture(scope="session")
def small_vqa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic VQA dataset folder (64/8/16 examples). Treat as read-only."""
    return write_shapes_vqa(tmp_path_factory.mktemp("data") / "vqa", sizes=SMALL)
