"""MLflow tracking: one client per tracking URI, experiments with a known artifact root,
evaluations logged with their dataset, and links into the MLflow UI.

The links point at ``PALITUNE_MLFLOW_UI`` when it is set (the UI a person opens, e.g. a
proxy in front of the tracking server, or ``make mlflow-ui`` on another port), else at the
tracking server itself, else, for a local store, at ``http://127.0.0.1:5000`` where
``make mlflow-ui`` serves it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from filelock import FileLock
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, RunStatus
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from data.lineage_tags import (
    DATASET_CONTEXT_TAG,
    EVALUATION_TAG,
    EXPERIMENT_KIND_TAG,
    PARENT_RUN_TAG,
    TAG_PREFIX,
    TRAINING_EXPERIMENT,
    dataset_name,
    dataset_source,
    split_context,
)
from evaluation.report import EvaluationReport

# The labels an evaluation of a run is logged under: the fine-tuned model (on the run), and
# the untrained base scored on the same split (on a run nested under it: ``log_evaluation``).
FINETUNED, UNTRAINED = "finetuned", "untrained"

# The client type of the tracking and registry store, for type hints outside this package
# (only ``registry`` imports MLflow's client module).
RegistryClient = MlflowClient

UI_ENV = "PALITUNE_MLFLOW_UI"  # the MLflow UI links point at, e.g. https://mlflow.example.org
LOCAL_UI = "http://127.0.0.1:5000"  # where ``make mlflow-ui`` serves a local store

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# palitune logs its models as code and loads none that pickles: refuse pickled models (a
# flavor that unpickles runs whatever the file says) unless a user deliberately allows them.
os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")


def client_for(tracking_uri: str) -> MlflowClient:
    """A client bound to ``tracking_uri`` (and registry URI), independent of globals."""
    if not tracking_uri.startswith("sqlite:///"):
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    # MLflow creates and migrates a SQLite store's schema when a client first opens it,
    # without a lock: two runs starting on a fresh store at once fail ("table latest_metrics
    # already exists", "duplicate column name: step"). So clients open it one at a time;
    # once created, SQLite's busy timeout (MLflow sets 20 s) serialises the writers.
    with FileLock(db.with_name(db.name + ".lock")):
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        client.search_registered_models(max_results=1)  # the registry store opens lazily
    return client


def ensure_experiment(client: MlflowClient, name: str, artifact_root: Path) -> str:
    """The id of experiment ``name``, created if new, marked as model training (its tag
    ``mlflow.experimentKind``) so MLflow's UI opens it on its runs, not the GenAI overview.

    Artifacts go under ``artifact_root`` on a local store (without an explicit location
    MLflow writes ``./mlruns`` in the current directory), where a tracking server says on a
    server (``http(s)://``: its ``--artifacts-destination``, proxied, so clients need no
    access to the object store).
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if EXPERIMENT_KIND_TAG not in experiment.tags:  # created by an older palitune, or by hand
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, TRAINING_EXPERIMENT)
        return str(experiment.experiment_id)
    served = str(client.tracking_uri).startswith(("http://", "https://"))
    location = None if served else (Path(artifact_root) / name).resolve().as_uri()
    try:
        return str(
            client.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: TRAINING_EXPERIMENT})
        )
    except MlflowException as err:  # another run created it since the lookup
        experiment = client.get_experiment_by_name(name)
        if err.error_code != "RESOURCE_ALREADY_EXISTS" or experiment is None:
            raise
        return str(experiment.experiment_id)


def open_run(client: MlflowClient, experiment: str, artifact_root: Path, *, run_name: str, tags: dict[str, str]) -> str:
    """Create a run that training, evaluation and registration all log into; returns its id.
    Training keeps ``run_name``: it logs into the run without renaming it."""
    experiment_id = ensure_experiment(client, experiment, artifact_root)
    return str(client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id)


def evaluation_dataset(report: EvaluationReport, dataset_dir: Path | None = None) -> DatasetInput:
    """The dataset a report was scored on, as an MLflow run input: named ``<task>-<split>``,
    its digest the version's DVC hash, its context the split's (``test``, ``eval``).

    Its source is the folder when ``dataset_dir`` is given (MLflow's ``local`` source), else
    the DVC version, which ``palitune data checkout HASH`` restores.

    Raises:
        ValueError: the report names no dataset hash (MLflow needs a digest to link metrics).
    """
    if not report.dataset_hash:
        raise ValueError(f"evaluation of {report.model}: the report has no dataset_hash to log as the digest")
    source_type, source = dataset_source(report.dataset_hash, dataset_dir)
    dataset = Dataset(
        name=dataset_name(report.task, report.split),
        digest=report.dataset_hash,
        source_type=source_type,
        source=source,
        profile=json.dumps({"examples": len(report.predictions)}),
    )
    return DatasetInput(dataset, tags=[InputTag(DATASET_CONTEXT_TAG, split_context(report.split))])


def log_evaluation(
    client: MlflowClient,
    run_id: str,
    report: EvaluationReport,
    folder: Path,
    *,
    label: str,
    dataset_dir: Path | None = None,
) -> str:
    """Log a report's metrics (``<label>/<task>/<split>/<metric>``), its dataset and its files;
    returns the run they went into.

    The fine-tuned model's evaluation goes into run ``run_id``, timestamped now, at the step
    its training reached (the run's ``steps`` parameter; 0 for a run without one), where it
    plots beside the training curves. ``link_evaluation`` links it, with its dataset, to the
    model the run logs: here to one logged already, else after registration. The untrained
    base's evaluation goes into a run nested under ``run_id`` (``<run name>-untrained-base``),
    so its scores never become metrics of the fine-tuned model.
    """
    target = run_id if label == FINETUNED else _nested_run(client, run_id, label)
    # a folder DVC does not track has no digest: its metrics are linked to no dataset
    if report.dataset_hash:
        client.log_inputs(target, datasets=[evaluation_dataset(report, dataset_dir)])
    run = client.get_run(target)
    step = int(run.data.params.get("steps", 0)) if label == FINETUNED else 0
    now = int(time.time() * 1000)
    client.log_batch(target, metrics=[Metric(f"{label}/{k}", v, now, step) for k, v in report.metrics.items()])
    client.log_artifacts(target, str(report.write(folder)), artifact_path=f"evaluation/{label}")
    if target != run_id:
        client.set_terminated(target, RunStatus.to_string(RunStatus.FINISHED))
    else:
        for output in run.outputs.model_outputs if run.outputs else []:
            link_evaluation(client, run_id, output.model_id)
    return target


def link_evaluation(client: MlflowClient, run_id: str, model_id: str) -> int:
    """Log the fine-tuned evaluation of run ``run_id`` as metrics of its logged model
    ``model_id`` (MLflow 3), each linked to the dataset it was scored on (the run's input
    ``<task>-<split>``); returns how many were linked. Safe to repeat: the same metric is
    stored once.

    MLflow links only a run's metrics at the step the model is logged at (0) by itself, and
    without their dataset; the evaluation is logged at the trained step, so only this links it.
    """
    run = client.get_run(run_id)
    digests = {i.dataset.name: i.dataset.digest for i in (run.inputs.dataset_inputs if run.inputs else [])}
    metrics = []
    for key in sorted(run.data.metrics):
        parts = key.split("/")
        if parts[0] != FINETUNED or len(parts) < 4:
            continue
        name = dataset_name(parts[1], parts[2])
        digest = digests.get(name)
        metrics += [
            Metric(key, m.value, m.timestamp, m.step, model_id, name if digest else None, digest, run_id)
            for m in client.get_metric_history(run_id, key)
        ]
    if metrics:
        client.log_batch(run_id, metrics=metrics)
    return len(metrics)


def logged_model_id(version: ModelVersion) -> str | None:
    """The id of the logged model a model version is (``m-...``): its ``model_id``, or read
    from its ``models:/m-...`` source (a SQLite store's versions may carry none)."""
    found = getattr(version, "model_id", None)
    source = str(version.source or "")
    return found or (source.removeprefix("models:/") if source.startswith("models:/m-") else None)


def _nested_run(client: MlflowClient, parent_id: str, label: str) -> str:
    """A new run under ``parent_id`` for the evaluation ``label``, with the parent's palitune tags."""
    parent = client.get_run(parent_id)
    tags = {k: v for k, v in parent.data.tags.items() if k.startswith(TAG_PREFIX)}
    tags |= {PARENT_RUN_TAG: parent_id, EVALUATION_TAG: label}
    name = f"{parent.info.run_name or parent_id[:8]}-{label}-base"
    return str(client.create_run(parent.info.experiment_id, run_name=name, tags=tags).info.run_id)


def evaluation_run(client: MlflowClient, run_id: str, *, label: str) -> str | None:
    """The run ``log_evaluation`` logged evaluation ``label`` of run ``run_id`` into: the run
    itself for the fine-tuned model, the nested run for another label (``None`` if none)."""
    if label == FINETUNED:
        return run_id
    experiment_id = client.get_run(run_id).info.experiment_id
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{PARENT_RUN_TAG}` = '{run_id}' and tags.`{EVALUATION_TAG}` = '{label}'",
        max_results=1,
    )
    return str(found[0].info.run_id) if found else None


def run_tags(client: MlflowClient, run_id: str) -> dict[str, str]:
    """Every tag of run ``run_id``."""
    return dict(client.get_run(run_id).data.tags)


def logged_evaluation(client: MlflowClient, run_id: str, *, label: str) -> dict[str, float]:
    """The metrics ``log_evaluation`` logged for run ``run_id`` under ``label``, by
    ``<task>/<split>/<metric>`` (the label removed); empty when there are none. A run logged
    before evaluations had runs of their own holds them all itself."""
    target = evaluation_run(client, run_id, label=label) or run_id
    metrics = client.get_run(target).data.metrics
    return {k.removeprefix(f"{label}/"): v for k, v in metrics.items() if k.startswith(f"{label}/")}


def ui_url(tracking_uri: str) -> str:
    """The MLflow UI of ``tracking_uri``: ``PALITUNE_MLFLOW_UI`` when set, else the tracking
    server itself, else (a local store) ``http://127.0.0.1:5000``, where ``make mlflow-ui``
    serves it."""
    chosen = os.environ.get(UI_ENV, "").strip()
    if chosen:
        return chosen.rstrip("/")
    return tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else LOCAL_UI


def run_url(tracking_uri: str, run_id: str, experiment_id: str) -> str:
    """Where the run shows in the MLflow UI of ``tracking_uri`` (``ui_url``)."""
    return f"{ui_url(tracking_uri)}/#/experiments/{experiment_id}/runs/{run_id}"


def version_url(tracking_uri: str, name: str, version: str | int) -> str:
    """Where version ``version`` of registered model ``name`` shows in the MLflow UI of
    ``tracking_uri`` (``ui_url``)."""
    return f"{ui_url(tracking_uri)}/#/models/{name}/versions/{version}"


def run_link(client: MlflowClient, run_id: str) -> str:
    """The page of run ``run_id`` in the MLflow UI of ``client``'s store (``run_url``)."""
    experiment_id = client.get_run(run_id).info.experiment_id
    return run_url(str(client.tracking_uri), run_id, str(experiment_id))
