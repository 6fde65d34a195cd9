"""MLflow tracking: one client per tracking URI, experiments with a known artifact root."""

from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from evaluation.report import EvaluationReport

# The labels an evaluation of a run is logged under: the fine-tuned model, and the untrained
# base scored on the same split (``log_evaluation``).
FINETUNED, UNTRAINED = "finetuned", "untrained"

# The client type of the tracking and registry store, for type hints outside this package
# (only ``registry`` imports MLflow's client module).
RegistryClient = MlflowClient

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
    """The id of experiment ``name``, created if new: with artifacts under ``artifact_root`` on
    a local store (without an explicit location MLflow writes ``./mlruns`` in the current
    directory), where a tracking server says on a server (``http(s)://``: its
    ``--artifacts-destination``, proxied, so clients need no access to the object store).
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    served = str(client.tracking_uri).startswith(("http://", "https://"))
    location = None if served else (Path(artifact_root) / name).resolve().as_uri()
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except MlflowException as err:  # another run created it since the lookup
        experiment = client.get_experiment_by_name(name)
        if err.error_code != "RESOURCE_ALREADY_EXISTS" or experiment is None:
            raise
        return str(experiment.experiment_id)


def open_run(client: MlflowClient, experiment: str, artifact_root: Path, *, run_name: str, tags: dict[str, str]) -> str:
    """Create a run that training, evaluation and registration all log into; returns its id."""
    experiment_id = ensure_experiment(client, experiment, artifact_root)
    return str(client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id)


def log_evaluation(client: MlflowClient, run_id: str, report: EvaluationReport, folder: Path, *, label: str) -> None:
    """Log a report's metrics (``<label>/<task>/<split>/<metric>``) and its files."""
    metrics = [Metric(f"{label}/{key}", value, 0, 0) for key, value in report.metrics.items()]
    client.log_batch(run_id, metrics=metrics)
    client.log_artifacts(run_id, str(report.write(folder)), artifact_path=f"evaluation/{label}")


def run_tags(client: MlflowClient, run_id: str) -> dict[str, str]:
    """Every tag of run ``run_id``."""
    return dict(client.get_run(run_id).data.tags)


def logged_evaluation(client: MlflowClient, run_id: str, *, label: str) -> dict[str, float]:
    """The metrics ``log_evaluation`` logged on run ``run_id`` under ``label``, by
    ``<task>/<split>/<metric>`` (the label removed)."""
    metrics = client.get_run(run_id).data.metrics
    return {k.removeprefix(f"{label}/"): v for k, v in metrics.items() if k.startswith(f"{label}/")}


def run_url(tracking_uri: str, run_id: str, experiment_id: str) -> str:
    """Where the run shows in an MLflow UI: the tracking server itself, or, for a local
    store, the UI ``make mlflow-ui`` starts on it (``http://127.0.0.1:5000``)."""
    ui = tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    return f"{ui}/#/experiments/{experiment_id}/runs/{run_id}"


def run_link(client: MlflowClient, run_id: str) -> str:
    """The page of run ``run_id`` in the MLflow UI of ``client``'s store (``run_url``)."""
    experiment_id = client.get_run(run_id).info.experiment_id
    return run_url(str(client.tracking_uri), run_id, str(experiment_id))
