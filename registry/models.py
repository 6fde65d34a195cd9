"""Adapter versions in the MLflow model registry: one registered model per task."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import io
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from PIL import Image

from registry.errors import RegistryError, UnknownModelError
from registry.lineage import base_model_of

CHAMPION, CHALLENGER, PREVIOUS_CHAMPION = "champion", "challenger", "previous-champion"
ADAPTER_ARTIFACT = "adapter"
PYFUNC_NAME = "model"


def model_name(task: str, prefix: str | None = None) -> str:
    """The registered model of ``task``: ``<prefix>-<task>``, the prefix from
    ``PALITUNE_MODEL_PREFIX`` unless given, else ``palitune``."""
    return f"{prefix or os.environ.get('PALITUNE_MODEL_PREFIX') or 'palitune'}-{task}"


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    source: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def log_pyfunc(
    client: MlflowClient, run_id: str, adapter_dir: Path, *, base_model: str, prompt: str, max_new_tokens: int = 32
) -> tuple[str, str]:
    """Log the adapter as an MLflow pyfunc model of ``run_id``; returns its ``models:/`` URI and
    the logged model's id.

    The model is code (``registry/pyfunc_model.py``), its artifact the adapter folder (with
    processor and run config), its config the base model reference and generation budget:
    the base is resolved when the model loads, never stored or pickled. The signature and an
    input example (a grey image, ``prompt``) go with it.
    """
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (128, 128, 128)).save(buffer, format="PNG")
    example = pd.DataFrame({"image": [base64.b64encode(buffer.getvalue()).decode()], "prompt": [prompt]})
    signature = ModelSignature(
        inputs=Schema([ColSpec("string", "image"), ColSpec("string", "prompt")]), outputs=Schema([ColSpec("string")])
    )
    with global_tracking_uri(client), mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name=PYFUNC_NAME,
            python_model=str(Path(__file__).with_name("pyfunc_model.py")),
            artifacts={ADAPTER_ARTIFACT: str(adapter_dir)},
            model_config={"base_model": base_model, "max_new_tokens": max_new_tokens},
            signature=signature,
            input_example=example,
            pip_requirements=[f"mlflow=={mlflow.__version__}", "torch", "transformers", "peft", "pillow"],
        )
    return str(info.model_uri), str(info.model_id)


@contextlib.contextmanager
def global_tracking_uri(client: MlflowClient) -> Iterator[None]:
    """Point MLflow's global tracking URI at ``client``'s store for the duration: fluent
    logging, and the registry resolving a ``models:/m-...`` source, both read the global."""
    import mlflow

    # set_tracking_uri also exports MLFLOW_TRACKING_URI: put the environment back exactly.
    previous, previous_env = mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(client.tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)
        if previous_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous_env


def register_adapter(
    client: MlflowClient,
    run_id: str,
    adapter_dir: Path,
    name: str,
    tags: dict[str, str],
    *,
    prompt: str = "caption en",
    max_new_tokens: int = 32,
) -> RegisteredVersion:
    """Upload the adapter folder to the run and log it as a pyfunc model, then register that
    model as a new version and alias it ``challenger``.

    The files are uploaded before the version is created, so a failed upload never leaves
    a version without its artifacts; registration never moves ``champion``.

    Raises:
        RegistryError: the store failed or could not be reached (a server is retried as
            ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` and ``MLFLOW_HTTP_REQUEST_TIMEOUT`` say); the
            message says whether a version was created.
    """
    with _registry_step(client, name, "uploading the adapter"):
        client.log_artifacts(run_id, str(adapter_dir), artifact_path=ADAPTER_ARTIFACT)
    base_model = base_model_of(tags)
    with _registry_step(client, name, "logging the pyfunc model"):
        source, model_id = log_pyfunc(
            client, run_id, adapter_dir, base_model=base_model, prompt=prompt, max_new_tokens=max_new_tokens
        )
    with model_lock(client, name), global_tracking_uri(client):
        with _registry_step(client, name, "creating the version"):
            try:
                client.create_registered_model(name, description="palitune adapters; alias 'champion' serves.")
            except MlflowException as err:
                if err.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            # model_id names the logged model the models:/m-... source is: a tracking server
            # refuses the version without it (a SQLite store resolves it itself)
            version = client.create_model_version(name, source, run_id=run_id, tags=tags, model_id=model_id)
        created = f"version {version.version} exists with its artifacts, but"
        with _registry_step(client, name, f"aliasing version {version.version} {CHALLENGER!r}", created=created):
            _await_ready(client, version)
            client.set_registered_model_alias(name, CHALLENGER, str(version.version))
    return RegisteredVersion(name, str(version.version), run_id, source)


@contextlib.contextmanager
def _registry_step(
    client: MlflowClient, name: str, step: str, *, created: str = "no version was created and"
) -> Iterator[None]:
    """Turn a failure of the store into a ``RegistryError`` that says what is left behind."""
    import requests

    try:
        yield
    except (MlflowException, requests.RequestException, OSError) as err:
        retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7 (MLflow's default)")
        raise RegistryError(
            f"{client.tracking_uri}: {name}: {step} failed: {err}. {created.capitalize()} no alias moved "
            f"(champion included). Against a server, each request was retried {retries} times "
            "(MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT); register again once the store answers."
        ) from err


def _await_ready(client: MlflowClient, version: ModelVersion, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while version.status != "READY":
        if version.status == "FAILED_REGISTRATION" or time.monotonic() > deadline:
            raise RuntimeError(f"{version.name} v{version.version}: registration {version.status}")
        time.sleep(0.2)
        version = client.get_model_version(version.name, str(version.version))


@contextlib.contextmanager
def model_lock(client: MlflowClient, name: str) -> Iterator[None]:
    """Serialise changes to ``name``'s versions and aliases across processes.

    MLflow has no compare-and-set on aliases, so two promotions racing could each replace
    the champion they read, and one would lose ``previous-champion``; registrations racing
    collide on version numbers and alias rows. Against a SQLite store (one machine), an
    exclusive lock on a file beside the database serialises them. Against an MLflow server,
    run registration and promotion from one place (the Dagster assets, whose runs can share
    a concurrency pool).
    """
    uri = str(client.tracking_uri)
    if not uri.startswith("sqlite:///"):
        yield
        return
    lock_path = Path(uri.removeprefix("sqlite:///") + f".{name}.lock")
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version holding ``alias``, or ``None`` when no version holds it (or no model)."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def registered_model(client: MlflowClient, name: str) -> RegisteredModel:
    """The registered model ``name``.

    Raises:
        UnknownModelError: there is none; the message lists the registered models there are.
    """
    try:
        return client.get_registered_model(name)
    except MlflowException as err:
        if err.error_code not in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            raise
    known = ", ".join(sorted(m.name for m in client.search_registered_models())) or "none"
    raise UnknownModelError(f"{client.tracking_uri}: registered model {name!r} does not exist (registered: {known})")


def resolve_version(client: MlflowClient, ref: str) -> ModelVersion:
    """The version ``ref`` names: ``NAME@ALIAS``, ``NAME@VERSION``, or ``models:/NAME@ALIAS``
    and ``models:/NAME/VERSION``.

    Raises:
        UnknownModelError: no such registered model (the message lists those there are),
            alias (it lists the model's aliases) or version.
    """
    body = ref.removeprefix("models:/")
    name, sep, label = body.partition("@") if "@" in body else body.partition("/")
    if not name or not label:
        raise UnknownModelError(f"{ref!r}: expected NAME@ALIAS or NAME@VERSION, e.g. palitune-vqa@{CHAMPION}")
    model = registered_model(client, name)
    if sep == "@" and not label.isdigit():
        if label not in model.aliases:
            held = ", ".join(sorted(model.aliases)) or "none"
            raise UnknownModelError(
                f"{client.tracking_uri}: {name}: no version holds alias {label!r} (aliases: {held})"
            )
        label = str(model.aliases[label])
    try:
        return client.get_model_version(name, label)
    except MlflowException:
        raise UnknownModelError(f"{client.tracking_uri}: {name}: no version {label}") from None


def download_adapter(client: MlflowClient, version: ModelVersion, dest: Path) -> Path:
    """Fetch a version's adapter folder into ``dest``; returns the adapter's path."""
    dest.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(str(version.run_id), ADAPTER_ARTIFACT, str(dest)))
