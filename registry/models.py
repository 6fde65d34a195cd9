"""Adapter versions in the MLflow model registry: one registered model per task."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

CHAMPION, CHALLENGER, PREVIOUS_CHAMPION = "champion", "challenger", "previous-champion"
ADAPTER_ARTIFACT = "adapter"


def model_name(task: str) -> str:
    return f"palitune-{task}"


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    source: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def register_adapter(
    client: MlflowClient, run_id: str, adapter_dir: Path, name: str, tags: dict[str, str]
) -> RegisteredVersion:
    """Upload the adapter folder to the run, register it as a new version, alias it
    ``challenger``.

    The files are uploaded before the version is created, so a failed upload never leaves
    a version without its artifacts.
    """
    client.log_artifacts(run_id, str(adapter_dir), artifact_path=ADAPTER_ARTIFACT)
    source = f"{client.get_run(run_id).info.artifact_uri}/{ADAPTER_ARTIFACT}"
    try:
        client.create_registered_model(name, description="palitune adapters; alias 'champion' serves.")
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(name, source, run_id=run_id, tags=tags)
    _await_ready(client, version)
    client.set_registered_model_alias(name, CHALLENGER, str(version.version))
    return RegisteredVersion(name, str(version.version), run_id, source)


def _await_ready(client: MlflowClient, version: ModelVersion, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while version.status != "READY":
        if version.status == "FAILED_REGISTRATION" or time.monotonic() > deadline:
            raise RuntimeError(f"{version.name} v{version.version}: registration {version.status}")
        time.sleep(0.2)
        version = client.get_model_version(version.name, str(version.version))


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version holding ``alias``, or ``None`` when no version holds it (or no model)."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def download_adapter(client: MlflowClient, version: ModelVersion, dest: Path) -> Path:
    """Fetch a version's adapter folder into ``dest``; returns the adapter's path."""
    dest.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(str(version.run_id), ADAPTER_ARTIFACT, str(dest)))
