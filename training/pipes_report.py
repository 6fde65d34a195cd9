"""Reports to the orchestrator that launched this training process, if one did.

An orchestrator using Dagster Pipes (``PipesSubprocessClient`` locally, a Kubernetes or
Databricks Pipes client elsewhere) sets ``DAGSTER_PIPES_CONTEXT`` in the environment. Then,
and on rank 0 only, training reports over that channel: progress as log lines, the preflight
check as an asset check, and the adapter's location and final metrics as the asset's
materialization. Without it nothing here does anything, and training never needs Dagster:
``dagster_pipes`` is the protocol's small dependency-free library, imported only then.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

PREFLIGHT_CHECK = "preflight"


def launched_by_pipes() -> bool:
    return "DAGSTER_PIPES_CONTEXT" in os.environ


def is_rank_zero() -> bool:
    """Rank 0 of the launch (``RANK`` as torchrun and ``accelerate launch`` set it; none: one process)."""
    return os.environ.get("RANK", "0") == "0"


class PipesReporter:
    """What one training run tells the orchestrator; see the module docstring."""

    def __init__(self, pipes: Any):
        self._pipes = pipes
        self._preflight_reported = False

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        """A ``training.train`` progress callback: a log line per logged step. The first one
        also means the first batch passed preflight."""
        if not self._preflight_reported:
            self.preflight(passed=True, detail="the first batch has suffix labels, token types and image tokens")
        shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))
        self._pipes.log.info(f"step {step}: {shown}")

    def preflight(self, *, passed: bool, detail: str) -> None:
        if self._preflight_reported:
            return
        self._preflight_reported = True
        self._pipes.report_asset_check(
            check_name=PREFLIGHT_CHECK, passed=passed, severity="ERROR", metadata={"detail": detail}
        )

    def bad_input(self, err: Exception) -> None:
        """The run cannot succeed as configured; retrying it would fail the same way."""
        self._pipes.report_custom_message({"bad_input": f"{type(err).__name__}: {err}"})

    def finished(self, result: Any, info: dict[str, Any]) -> None:
        """Report the adapter; ``info`` is what training wrote beside it."""
        self.preflight(passed=True, detail="training ran to the end")
        self._pipes.report_asset_materialization(
            metadata={
                "adapter": {"raw_value": str(result.adapter_dir), "type": "path"},
                "final_loss": {"raw_value": float(result.final_loss), "type": "float"},
                "steps": {"raw_value": int(result.steps), "type": "int"},
                "trainable_params": {"raw_value": int(result.trainable_params), "type": "int"},
                "resumed_from_step": {"raw_value": int(result.resumed_from_step), "type": "int"},
                "mlflow_run_id": {"raw_value": str(result.mlflow_run_id or ""), "type": "text"},
                "run_info": {"raw_value": info, "type": "json"},
            }
        )


@contextlib.contextmanager
def pipes_reporter() -> Iterator[PipesReporter | None]:
    """A reporter when launched by Pipes and on rank 0, else ``None``."""
    if not (launched_by_pipes() and is_rank_zero()):
        yield None
        return
    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        yield PipesReporter(pipes)
