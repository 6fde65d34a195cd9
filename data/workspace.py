"""Where everything palitune writes at run time lives.

One folder holds all generated state (models, datasets, the DVC cache and remote, the MLflow
database and artifacts, Dagster's home), so a clean start is deleting it. It is
``./workspace`` unless ``PALITUNE_HOME`` names another folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "PALITUNE_HOME"


@dataclass(frozen=True)
class Workspace:
    """The layout of a palitune workspace folder."""

    root: Path

    @classmethod
    def from_env(cls) -> Workspace:
        """The workspace named by ``PALITUNE_HOME``, else ``./workspace``."""
        return cls(Path(os.environ.get(HOME_ENV) or "workspace").resolve())

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def dvc_remote(self) -> Path:
        return self.root / "dvc-remote"

    @property
    def runs(self) -> Path:
        """Training outputs: one folder per run, holding checkpoints and the adapter."""
        return self.root / "runs"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow" / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlflow" / "artifacts"

    @property
    def mlflow_tracking_uri(self) -> str:
        return f"sqlite:///{self.mlflow_db}"

    @property
    def tracking_uri(self) -> str:
        """The MLflow store every command uses: ``MLFLOW_TRACKING_URI`` when set, else the
        workspace's SQLite database."""
        return os.environ.get("MLFLOW_TRACKING_URI") or self.mlflow_tracking_uri

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    def resolve(self, path: str | Path) -> Path:
        """A path from a config: absolute as given, relative to the workspace otherwise."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else self.root / path
