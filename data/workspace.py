"""Where everything palitune writes at run time lives.

Two places. The **workspace** holds generated state that git never sees (models, runs and
adapters, the MLflow database and artifacts, Dagster's home, caches): ``./workspace`` unless
``PALITUNE_HOME`` names another folder, so a clean start is deleting it. The **project** is
the DVC repository whose ``dvc.yaml``, ``params.yaml``, ``dvc.lock`` and ``.dvc`` files say
which data is which: ``PALITUNE_PROJECT`` when set, else the DVC repository holding the
workspace (the checkout, for the default ``./workspace``), else the workspace itself, which
then becomes a DVC repository of its own without git.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "PALITUNE_HOME"
PROJECT_ENV = "PALITUNE_PROJECT"


def enclosing_dvc_repo(path: Path) -> Path | None:
    """The DVC repository holding ``path``: ``path`` itself or its nearest parent with ``.dvc/``."""
    path = Path(path).resolve()
    return next((p for p in (path, *path.parents) if (p / ".dvc").is_dir()), None)


@dataclass(frozen=True)
class Workspace:
    """The layout of a palitune workspace folder."""

    root: Path

    @classmethod
    def from_env(cls) -> Workspace:
        """The workspace named by ``PALITUNE_HOME``, else ``./workspace``."""
        return cls(Path(os.environ.get(HOME_ENV) or "workspace").resolve())

    @property
    def project(self) -> Path:
        """The DVC repository datasets are versioned in (see the module's docstring)."""
        named = os.environ.get(PROJECT_ENV)
        if named:
            return Path(named).expanduser().resolve()
        return enclosing_dvc_repo(self.root) or self.root

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def datasets(self) -> Path:
        """Datasets of the project: ingested ones (``dvc-data/<name>`` beside their ``.dvc``
        file) and the pipeline's renders (``dvc-data/synthetic/<task>``)."""
        return self.project / "dvc-data"

    @property
    def dvc_remote(self) -> Path:
        """The remote a workspace without a project of its own starts with."""
        return self.root / "dvc-remote"

    @property
    def restore_repo(self) -> Path:
        """Where versions are restored by hash alone: the project itself when it is the
        workspace's own DVC repository, else a DVC repository in the workspace, so a restore
        writes nothing into the project's git tree."""
        project = self.project
        return project if project == self.root else self.root / "restored"

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

    def resolve_dataset(self, path: str | Path) -> Path:
        """A dataset folder from a config: absolute as given, relative to the project otherwise
        (``dvc-data/synthetic/vqa``, ``dvc-data/docvqa``)."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else self.project / path

    def resolve(self, path: str | Path) -> Path:
        """A path from a config: absolute as given, relative to the workspace otherwise."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else self.root / path
