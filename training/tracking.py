"""MLflow tracking of a run through Accelerate's MLflow tracker: the store, the run (new, or
one someone else opened, or the one a resumed run started), its params, tags and end.

Metrics are logged with ``accelerator.log``; only the main process talks to MLflow.
"""

from __future__ import annotations

import os
from pathlib import Path

from accelerate import Accelerator

from data.lineage_tags import BASE_MODEL_TAG, CONFIG_HASH_TAG, DATASET_TAG, METHOD_TAG, TASK_TAG, UNVERSIONED
from data.tasks import get_task
from training.config import RunConfig


def use_tracking_store(uri: str) -> None:
    """Point MLflow at ``uri``, creating the folder of a SQLite store."""
    import mlflow

    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    mlflow.set_tracking_uri(uri)


def start_tracking(
    accelerator: Accelerator,
    config: RunConfig,
    base_ref: str,
    data_hash: str | None,
    trainable_params: int,
    run_id: str | None,
) -> str | None:
    """Open the run's MLflow run (or continue ``run_id``), log its config and what it resolved, tag it.

    Args:
        base_ref: the resolved base model the run fine-tunes.
        data_hash: the dataset's DVC hash; ``None`` for an unversioned folder.
        trainable_params: parameters the run trains.
        run_id: an existing MLflow run to log into; ``None`` opens a new one.

    Returns:
        The MLflow run id on the main process; ``None`` on the others.
    """
    params = {
        **_flatten(config.model_dump(mode="json")),
        "base_model_path": base_ref,
        "dataset_hash": data_hash,
        "trainable_params": trainable_params,
        "processes": accelerator.num_processes,
        # the budget generation uses (the task's unless set), as the logged model's config says it
        "max_new_tokens": config.max_new_tokens or get_task(config.task).max_new_tokens,
    }
    run_name = f"{config.task}-{config.method.value}"
    accelerator.init_trackers(
        config.experiment, config=params, init_kwargs={"mlflow": {"run_id": run_id, "run_name": run_name}}
    )
    active = _active_run_id(accelerator)
    if accelerator.is_main_process:
        import mlflow

        mlflow.set_tags(
            {
                TASK_TAG: config.task,
                BASE_MODEL_TAG: config.base_model,
                DATASET_TAG: data_hash or UNVERSIONED,
                CONFIG_HASH_TAG: config.fingerprint(),
                METHOD_TAG: config.method.value,
            }
        )
    return active


def end_failed_run(accelerator: Accelerator) -> None:
    """Mark the MLflow run FAILED (main process), so a crash does not read as still running."""
    if accelerator.is_main_process:
        import mlflow

        mlflow.end_run(status="FAILED")


def _active_run_id(accelerator: Accelerator) -> str | None:
    if not accelerator.is_main_process:
        return None
    tracker = accelerator.get_tracker("mlflow", unwrap=True)
    return tracker.info.run_id if tracker is not None and hasattr(tracker, "info") else None


def _flatten(values: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
