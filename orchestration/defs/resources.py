"""External systems as resources, configured from the environment, with embedded defaults.

Each setting is an ``EnvVar`` when its variable is set (the UI then shows where the value
comes from, not the value), else the embedded default: the workspace under ``./workspace``,
its local DVC remote, MLflow on SQLite in it, and training launched as a local subprocess.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    ConfigurableResource,
    DagsterExecutionInterruptedError,
    EnvVar,
    Failure,
    PipesClientCompletedInvocation,
    PipesTempFileContextInjector,
    PipesTempFileMessageReader,
    open_pipes_session,
)

from data.versioning import ensure_repo
from data.workspace import HOME_ENV, Workspace
from registry.models import model_name
from registry.tracking import RegistryClient, client_for, run_link, version_url

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class WorkspaceResource(ConfigurableResource):
    """The folder holding models, datasets, runs and the local stores."""

    root: str = ""  # empty: PALITUNE_HOME, else ./workspace

    @property
    def layout(self) -> Workspace:
        return Workspace(Path(self.root).resolve()) if self.root else Workspace.from_env()


class DvcResource(ConfigurableResource):
    """Where dataset versions are pushed: a remote named in the project's DVC config, or a
    folder or URL (``s3://bucket/prefix``); empty means the DVC config's default remote (a
    workspace that is its own project starts with a folder remote inside it)."""

    remote_url: str = ""

    def remote(self) -> str | None:
        """The remote to name to ``data.versioning`` (``None``: the DVC config's default)."""
        return self.remote_url or None

    def prepare(self, workspace: Workspace) -> Path:
        """The workspace's project, made a DVC repository if it is not one yet."""
        ensure_repo(workspace.project, workspace.dvc_remote)
        return workspace.project


class MlflowResource(ConfigurableResource):
    """Tracking and registry store; empty means the workspace's (``Workspace.tracking_uri``:
    ``MLFLOW_TRACKING_URI``, else SQLite under the workspace).

    Registered models are named ``<registered_model_prefix>-<task>``.
    """

    tracking_uri: str = ""
    experiment: str = "palitune"
    registered_model_prefix: str = "palitune"

    def uri(self, workspace: Workspace) -> str:
        """The tracking URI this resource names, else the workspace's."""
        return self.tracking_uri or workspace.tracking_uri

    def client(self, workspace: Workspace) -> RegistryClient:
        """A client of the store (``registry.tracking.client_for``)."""
        return client_for(self.uri(workspace))

    def model_name(self, task: str) -> str:
        """The registered model of ``task``: ``<registered_model_prefix>-<task>``."""
        return model_name(task, self.registered_model_prefix)

    def run_url(self, workspace: Workspace, run_id: str) -> str:
        """The run's page: on the tracking server itself, or on ``make mlflow-ui`` for a local store."""
        return run_link(self.client(workspace), run_id)

    def model_version_url(self, workspace: Workspace, name: str, version: str) -> str:
        """The model version's page, in the MLflow UI that ``run_url``'s links open
        (``registry.tracking.version_url``): ``PALITUNE_MLFLOW_UI``, else the tracking server
        in use, else ``make mlflow-ui`` for a local store."""
        return version_url(self.uri(workspace), name, version)


class TrainingLauncher(ConfigurableResource):
    """Starts ``accelerate launch ... -m training.train`` as a Dagster Pipes subprocess.

    The training process reports progress, its preflight check and the adapter back over
    Pipes (rank 0 only), and marks bad input (config, data, preflight) so that it is not
    retried. This is ``PipesSubprocessClient`` plus that: the return code and the custom
    messages decide whether a failure is worth retrying. To train elsewhere (a Kubernetes
    pod, a Slurm job), give the graph a subclass whose ``launch`` hands the same command and
    environment to that Pipes client: ``training/`` does not change.

    Attributes:
        accelerate_config: ``accelerate launch --config_file``, relative to the project.
        python: the interpreter; empty means the one running Dagster.
    """

    accelerate_config: str = "configs/accelerate/cpu.yaml"
    python: str = ""

    def command(self, train_args: Sequence[str]) -> list[str]:
        config = Path(self.accelerate_config)
        config = config if config.is_absolute() else PROJECT_ROOT / config
        launch = [self.python or sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config)]
        return [*launch, "-m", "training.train", *train_args]

    def launch(
        self,
        context: AssetExecutionContext,
        train_args: Sequence[str],
        env: Mapping[str, str],
        extras: Mapping[str, Any] | None = None,
    ) -> PipesClientCompletedInvocation:
        """Run training to the end.

        Raises:
            Failure: training failed; ``allow_retries`` is false when it reported bad input.
        """
        with open_pipes_session(
            context=context,
            context_injector=PipesTempFileContextInjector(),
            message_reader=PipesTempFileMessageReader(),
            extras=dict(extras or {}),
        ) as session:
            command = self.command(train_args)
            context.log.info("launching: " + " ".join(command))
            process = subprocess.Popen(
                command, cwd=PROJECT_ROOT, env={**os.environ, **env, **session.get_bootstrap_env_vars()}
            )
            try:
                code = process.wait()
            except DagsterExecutionInterruptedError:  # run terminated: let training stop cleanly
                process.send_signal(signal.SIGINT)
                process.wait(timeout=60)
                raise
        if code != 0:
            bad = [m["bad_input"] for m in session.get_custom_messages() if isinstance(m, dict) and "bad_input" in m]
            if bad:
                raise Failure(description=f"training refused its input: {bad[0]}", allow_retries=False)
            raise Failure(description=f"training exited with code {code}; see the step's logs")
        return PipesClientCompletedInvocation(session)


def _env_or(name: str, default: str) -> str:
    """``EnvVar(name)`` when ``name`` is set, else ``default``."""
    return EnvVar(name) if os.environ.get(name) else default  # type: ignore[return-value]


def defaults() -> dict[str, ConfigurableResource]:
    """Resources as ``dagster dev`` and ``make demo`` use them, overridable from the env:
    ``PALITUNE_HOME``, ``PALITUNE_DVC_REMOTE``, ``MLFLOW_TRACKING_URI``,
    ``PALITUNE_MODEL_PREFIX`` and ``PALITUNE_ACCELERATE_CONFIG``."""
    return {
        "workspace": WorkspaceResource(root=_env_or(HOME_ENV, "")),
        "dvc": DvcResource(remote_url=_env_or("PALITUNE_DVC_REMOTE", "")),
        "mlflow": MlflowResource(
            tracking_uri=_env_or("MLFLOW_TRACKING_URI", ""),
            registered_model_prefix=_env_or("PALITUNE_MODEL_PREFIX", "palitune"),
        ),
        "launcher": TrainingLauncher(
            accelerate_config=_env_or("PALITUNE_ACCELERATE_CONFIG", "configs/accelerate/cpu.yaml")
        ),
    }
