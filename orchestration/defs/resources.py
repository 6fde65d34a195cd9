"""External systems as resources, configured from the environment, with embedded defaults."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource, EnvVar
from mlflow.tracking import MlflowClient

from data.workspace import HOME_ENV, Workspace
from registry.tracking import client_for


class WorkspaceResource(ConfigurableResource):
    """The folder holding models, datasets, runs and the local stores."""

    root: str = ""  # empty: PALITUNE_HOME, else ./workspace

    @property
    def layout(self) -> Workspace:
        return Workspace(Path(self.root).resolve()) if self.root else Workspace.from_env()


class DvcResource(ConfigurableResource):
    """Where dataset versions are pushed; empty means the workspace's local folder remote."""

    remote_url: str = ""

    def remote(self, workspace: Workspace) -> Path:
        return Path(self.remote_url) if self.remote_url else workspace.dvc_remote


class MlflowResource(ConfigurableResource):
    """Tracking and registry store; empty means SQLite under the workspace."""

    tracking_uri: str = ""
    experiment: str = "palitune"
    registered_model_prefix: str = "palitune"

    def uri(self, workspace: Workspace) -> str:
        return self.tracking_uri or workspace.mlflow_tracking_uri

    def client(self, workspace: Workspace) -> MlflowClient:
        return client_for(self.uri(workspace))

    def model_name(self, task: str) -> str:
        return f"{self.registered_model_prefix}-{task}"


def defaults() -> dict[str, ConfigurableResource]:
    """Resources as ``dagster dev`` and ``make demo`` use them, overridable from the env."""
    return {
        "workspace": WorkspaceResource(root=EnvVar(HOME_ENV).get_value("") or ""),
        "dvc": DvcResource(remote_url=EnvVar("PALITUNE_DVC_REMOTE").get_value("") or ""),
        "mlflow": MlflowResource(tracking_uri=EnvVar("MLFLOW_TRACKING_URI").get_value("") or ""),
    }
