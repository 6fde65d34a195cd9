"""Adapter versions in the MLflow model registry: one registered model per task."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import io
import os
import sys
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
ADAPTER_ARTIFACT, BASE_ARTIFACT = "adapter", "base"  # as registry/pyfunc_model.py reads them
BASE_MODEL_KEY, MAX_NEW_TOKENS_KEY = "serving.base_model", "serving.max_new_tokens"
PYFUNC_NAME = "model"
PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")
# The packages of palitune the pyfunc's imports are followed into (registry imports no others).
PROJECT_PACKAGES = frozenset({"data", "models", "evaluation", "registry"})


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
    client: MlflowClient,
    run_id: str,
    adapter_dir: Path,
    *,
    base_model: str,
    prompt: str,
    max_new_tokens: int = 32,
    models_dir: Path | None = None,
) -> tuple[str, str]:
    """Log the adapter as an MLflow pyfunc model of ``run_id``; returns its ``models:/`` URI and
    the logged model's id.

    The model is code (``registry/pyfunc_model.py``) and loads where palitune is not
    installed: the palitune modules it imports travel as its ``code/`` folder
    (``code_closure``), its requirements are the installed versions of what they import
    (``pinned_requirements``). Its artifacts are the adapter folder (with processor and run
    config) and, when the base is a local folder (the tiny preset is built locally, so it
    always is), that base: a consumer cannot download it. A base named by hub id stays a
    reference in the model config, resolved from the consumer's Hugging Face cache. The
    signature and an input example (a grey image, ``prompt``) go with it.

    Args:
        models_dir: where the tiny preset is built; the workspace's ``models/`` by default.
    """
    import tempfile

    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from data.workspace import Workspace
    from models.loading import resolve_base

    base_ref = resolve_base(base_model, models_dir if models_dir is not None else Workspace.from_env().models)
    artifacts = {ADAPTER_ARTIFACT: str(adapter_dir)}
    if Path(base_ref).is_dir():  # the rule from_pretrained follows: an existing folder is local
        artifacts[BASE_ARTIFACT] = base_ref
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (128, 128, 128)).save(buffer, format="PNG")
    example = pd.DataFrame({"image": [base64.b64encode(buffer.getvalue()).decode()], "prompt": [prompt]})
    signature = ModelSignature(
        inputs=Schema([ColSpec("string", "image"), ColSpec("string", "prompt")]), outputs=Schema([ColSpec("string")])
    )
    # Namespaced keys: MLflow logs the model config as params of the run, where the training
    # config's ``max_new_tokens`` (its validation budget) already is.
    model_config: dict[str, str | int] = {BASE_MODEL_KEY: base_model, MAX_NEW_TOKENS_KEY: max_new_tokens}
    with tempfile.TemporaryDirectory(prefix="palitune-code-") as staging:
        code_paths = stage_code(Path(staging))
        with global_tracking_uri(client), mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name=PYFUNC_NAME,
                python_model=str(PYFUNC_FILE),
                artifacts=artifacts,
                code_paths=[str(p) for p in code_paths],
                model_config=model_config,
                signature=signature,
                input_example=example,
                pip_requirements=pinned_requirements(),
            )
    return str(info.model_uri), str(info.model_id)


def code_closure(entry: Path = PYFUNC_FILE) -> dict[str, Path]:
    """The palitune modules ``entry`` imports, directly or not, at module level or inside a
    function, with the packages that hold them: what a consumer must have to load the model.
    Maps each module's name to its source file.

    Read from the source (``ast``), so nothing is imported to find them; only absolute
    imports of palitune's packages are followed (the project uses no relative ones).
    """
    closure: dict[str, Path] = {}
    pending = sorted(n for n in _imports_of(entry) if n.split(".")[0] in PROJECT_PACKAGES)
    while pending:
        name = pending.pop()
        source = None if name in closure else _module_file(name)
        if source is None:  # seen, or ``from package import name`` where ``name`` is not a module
            continue
        closure[name] = source
        parts = name.split(".")
        pending += [".".join(parts[:i]) for i in range(1, len(parts))]
        pending += sorted(n for n in _imports_of(source) if n.split(".")[0] in PROJECT_PACKAGES)
    return dict(sorted(closure.items()))


def _imports_of(source: Path) -> set[str]:
    """Every absolute import in ``source``, module level or not: ``a.b`` and, for
    ``from a.b import c``, also ``a.b.c`` (which may be a module)."""
    import ast

    found: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _module_file(name: str) -> Path | None:
    """The source file of palitune module ``name`` (a package's ``__init__.py``), found on
    disk from its top-level package's folder without importing anything of it."""
    import importlib.util

    top, *rest = name.split(".")
    spec = importlib.util.find_spec(top)  # a top-level name is looked up, not imported
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))).joinpath(*rest)
    if (folder / "__init__.py").is_file():
        return folder / "__init__.py"
    module = folder.with_suffix(".py")
    return module if rest and module.is_file() else None


def stage_code(dest: Path) -> list[Path]:
    """Copy the modules of ``code_closure`` into ``dest``, laid out as packages with their
    data files; returns the top-level package folders, MLflow's ``code_paths`` (each lands in
    the model's ``code/`` folder, which MLflow puts on ``sys.path`` when the model loads)."""
    import shutil

    tops: set[Path] = set()
    for name, source in code_closure().items():
        parts = name.split(".")
        if source.name == "__init__.py":
            target = dest.joinpath(*parts, "__init__.py")
        else:
            target = dest.joinpath(*parts[:-1], f"{parts[-1]}.py")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        if source.name == "__init__.py":  # a package's data files (the mask codec's weights)
            for data_file in source.parent.iterdir():
                if data_file.is_file() and data_file.suffix not in (".py", ".pyc"):
                    shutil.copyfile(data_file, target.parent / data_file.name)
        tops.add(dest / parts[0])
    return sorted(tops)


def pinned_requirements(closure: dict[str, Path] | None = None) -> list[str]:
    """``name==version`` of each distribution the modules of ``closure`` import (by default
    the pyfunc file and its ``code_closure``), as installed here: the logged model's
    requirements.

    Derived from the same source the code is, so a new import in the pyfunc's code cannot be
    forgotten. Local version labels are dropped (``torch==2.13.0`` for ``2.13.0+cpu``): ``==``
    without a label matches any build of that release, so a consumer's index picks its own
    wheel (the CPU one where that is what it serves).

    Raises:
        RegistryError: an imported module no installed distribution provides, or several do
            (the message names the module and the file importing it).
    """
    from importlib.metadata import packages_distributions, version

    from packaging.version import Version

    providers = packages_distributions()
    pins: set[str] = set()
    sources = list(closure.values()) if closure is not None else [PYFUNC_FILE, *code_closure().values()]
    for source in sources:
        for name in sorted(_imports_of(source)):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in PROJECT_PACKAGES or top == "__future__":
                continue
            candidates = providers.get(top, [])
            # ``mlflow`` is provided by mlflow, mlflow-skinny and mlflow-tracing: the one so named
            dist = top if top in candidates else (candidates[0] if len(set(candidates)) == 1 else None)
            if dist is None:
                found = ", ".join(sorted(set(candidates))) or "no installed distribution"
                raise RegistryError(f"{source}: import {top}: provided by {found}; the logged model cannot pin it")
            pins.add(f"{dist}=={Version(version(dist)).public}")
    return sorted(pins, key=str.lower)


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
    models_dir: Path | None = None,
) -> RegisteredVersion:
    """Log the adapter as a pyfunc model of the run (``log_pyfunc``), then register that model
    as a new version and alias it ``challenger``.

    The adapter is stored once, as an artifact of the logged model (``download_adapter``
    reads it there). The model is logged before the version is created, so a failed upload
    never leaves a version without its artifacts; registration never moves ``champion``.

    Args:
        models_dir: where the tiny preset is built; the workspace's ``models/`` by default.

    Raises:
        RegistryError: the store failed or could not be reached (a server is retried as
            ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` and ``MLFLOW_HTTP_REQUEST_TIMEOUT`` say); the
            message says whether a version was created.
    """
    base_model = base_model_of(tags)
    with _registry_step(client, name, "logging the pyfunc model with its adapter"):
        source, model_id = log_pyfunc(
            client,
            run_id,
            adapter_dir,
            base_model=base_model,
            prompt=prompt,
            max_new_tokens=max_new_tokens,
            models_dir=models_dir,
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
    """Fetch a version's adapter folder into ``dest``; returns the adapter's path.

    The adapter is an artifact of the version's logged model; a version registered before it
    was stored only there (its source a run's folder) has it under the run's ``adapter``.
    """
    import tempfile

    import mlflow
    from mlflow.models import Model
    from mlflow.models.model import MLMODEL_FILE_NAME

    dest.mkdir(parents=True, exist_ok=True)
    source = str(version.source or "")
    # the logged model's id: a SQLite store returns versions without ``model_id``, but their
    # source is ``models:/<model id>``
    model_id = getattr(version, "model_id", None) or (
        source.removeprefix("models:/") if source.startswith("models:/m-") else None
    )
    if not model_id:
        return Path(client.download_artifacts(str(version.run_id), ADAPTER_ARTIFACT, str(dest)))
    location = str(client.get_logged_model(model_id).artifact_location).rstrip("/")
    with global_tracking_uri(client), tempfile.TemporaryDirectory(prefix="palitune-mlmodel-") as scratch:
        # MLflow names an artifact's folder after its source folder, not its key: read where
        # the adapter is from the model's MLmodel file.
        mlmodel = Model.load(mlflow.artifacts.download_artifacts(f"{location}/{MLMODEL_FILE_NAME}", dst_path=scratch))
        relative = mlmodel.flavors["python_function"]["artifacts"][ADAPTER_ARTIFACT]["path"]
        return Path(mlflow.artifacts.download_artifacts(f"{location}/{relative}", dst_path=str(dest)))
