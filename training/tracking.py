"""MLflow tracking of a run through Accelerate's MLflow tracker: the store, the run (new, or
one someone else opened, or the one a resumed run started), its params, tags, source,
datasets and end.

Metrics are logged with ``accelerator.log``; only the main process talks to MLflow.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

from accelerate import Accelerator

from data.lineage_tags import (
    BASE_MODEL_TAG,
    CONFIG_HASH_TAG,
    DATASET_TAG,
    EXPERIMENT_KIND_TAG,
    GIT_COMMIT_TAG,
    GIT_DIRTY_TAG,
    METHOD_TAG,
    SOURCE_COMMIT_TAG,
    SOURCE_NAME_TAG,
    SOURCE_TYPE_TAG,
    TASK_TAG,
    TRAINING_EXPERIMENT,
    UNVERSIONED,
    dataset_name,
    git_state,
    run_name,
    split_context,
)
from data.tasks import get_task
from training.config import RunConfig
from training.pipes_report import launched_by_pipes

ENTRY_POINT = "training.train"  # the run's source in MLflow: ``python -m training.train``
CHECKOUT = Path(__file__).resolve().parents[1]  # the code that runs: its commit is the run's


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
    *,
    dataset_dir: Path | None = None,
) -> str | None:
    """Open the run's MLflow run (or continue ``run_id``), log its config and what it resolved,
    its source (entry point and git commit) and datasets, tag it.

    A run someone else opened (``run_id``, or ``MLFLOW_RUN_ID``, as Dagster passes it) keeps
    its name; a new one is named by task, method, dataset and start time (``run_name``).

    Args:
        base_ref: the resolved base model the run fine-tunes.
        data_hash: the dataset's DVC hash; ``None`` for an unversioned folder.
        trainable_params: parameters the run trains.
        run_id: an existing MLflow run to log into; ``None`` opens a new one.
        dataset_dir: the dataset's folder, the source of its logged splits (default: the
            config's ``dataset`` when absolute; a relative one logs no datasets).

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
    existing = run_id or os.environ.get("MLFLOW_RUN_ID")  # Accelerate's tracker reads it too
    # MLflow renames an existing run to any run_name passed with it: pass none then.
    name = None if existing else run_name(config.task, config.method.value, data_hash)
    accelerator.init_trackers(
        config.experiment, config=params, init_kwargs={"mlflow": {"run_id": run_id, "run_name": name}}
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
                **source_tags(),
            }
        )
        given = Path(config.dataset)  # an absolute folder (as Dagster passes it) is where the data is
        _log_datasets(config, data_hash, dataset_dir or (given if given.is_absolute() else None))
        _mark_training_experiment()
    return active


def source_tags(checkout: Path = CHECKOUT) -> dict[str, str]:
    """MLflow's source tags of a training run (the UI's "Source" and its commit) and palitune's
    git tags: the entry point, ``JOB`` when Dagster launched it, else ``LOCAL``, and the commit
    of ``checkout`` (left out when it is not a git checkout, an installed wheel say)."""
    commit, dirty = git_state(checkout)
    tags = {SOURCE_NAME_TAG: ENTRY_POINT, SOURCE_TYPE_TAG: "JOB" if launched_by_pipes() else "LOCAL"}
    if commit != "unknown":
        tags |= {SOURCE_COMMIT_TAG: commit, GIT_COMMIT_TAG: commit, GIT_DIRTY_TAG: str(dirty).lower()}
    return tags


def _log_datasets(config: RunConfig, data_hash: str | None, dataset_dir: Path | None) -> None:
    """Log the splits the run reads as its inputs (``mlflow.log_inputs``): ``train``, and
    ``val`` (context ``eval``) when it validates, each named ``<task>-<split>``, its source
    the folder and its digest the DVC hash. Nothing is logged without a folder to point at."""
    if dataset_dir is None:
        return
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    uri = Path(dataset_dir).resolve().as_uri()
    with warnings.catch_warnings():  # MLflow registers its local source for "" and "file" both
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")
        source = resolve_dataset_source(uri)
    # A folder DVC does not track has no hash; MLflow identifies a dataset by name and digest,
    # so its digest is one of where it lives (as MLflow's own metadata-only datasets do).
    digest = data_hash or hashlib.sha256(uri.encode()).hexdigest()[:8]
    splits = ["train", "val"] if config.eval_every else ["train"]
    datasets = [
        MetaDataset(source, name=dataset_name(config.task, split), digest=digest)  # type: ignore[abstract]
        for split in splits
    ]
    contexts = [split_context(split) for split in splits]
    mlflow.log_inputs(datasets=list(datasets), contexts=list(contexts), tags_list=[None] * len(splits))


def _mark_training_experiment() -> None:
    """Tag the run's experiment as model training (``mlflow.experimentKind``), so MLflow's UI
    opens it on its runs rather than the GenAI overview; a kind already set is kept."""
    import mlflow

    run = mlflow.active_run()
    if run is None:
        return
    experiment = mlflow.set_experiment(experiment_id=run.info.experiment_id)
    if EXPERIMENT_KIND_TAG not in experiment.tags:
        mlflow.set_experiment_tag(EXPERIMENT_KIND_TAG, TRAINING_EXPERIMENT)


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
