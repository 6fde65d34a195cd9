"""A challenge for ``champion``: the challenger and the champion both scored again on the
challenger's dataset version, then the promotion policy applied.

The dataset version is restored by its hash when the folder is not in the workspace, so the
comparison is paired example by example whatever the champion was trained and scored on.
``palitune registry promote`` runs ``challenge``; the Dagster ``champion`` asset, which has
the challenger's report already, runs ``run_promotion`` with ``champion_scorer``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from data.versioning import checkout_version, ensure_repo
from data.workspace import Workspace
from evaluation.report import EvaluationReport
from evaluation.run import evaluate
from models.loading import resolve_base
from registry.lineage import DATASET_TAG, base_model_of
from registry.models import CHALLENGER, download_adapter, version_by_alias
from registry.promotion import ChampionEvaluator, Decision, PromotionPolicy, run_promotion


@dataclass(frozen=True)
class Challenge:
    """The outcome of a challenge: the decision, ``champion`` afterwards, the data scored on."""

    decision: Decision
    champion: str | None
    dataset_dir: Path


def score_version(
    client: MlflowClient, version: ModelVersion, dataset_dir: Path, models_dir: Path, scratch: Path
) -> EvaluationReport:
    """The version's adapter, fetched into ``scratch``, on its base, scored on the test split."""
    base = resolve_base(base_model_of(version.tags), models_dir)
    return evaluate(base, dataset_dir, adapter_dir=download_adapter(client, version, scratch))


def champion_scorer(
    client: MlflowClient, dataset_dir: Path, models_dir: Path, *, announce: Callable[[str], None] | None = None
) -> ChampionEvaluator:
    """What ``run_promotion`` calls to re-score the champion on ``dataset_dir``; ``announce``
    (a logger, say) hears which version is scored before the work starts."""

    def score(champion: ModelVersion, scratch: Path) -> EvaluationReport:
        if announce is not None:
            announce(f"re-scoring champion v{champion.version} on {dataset_dir}")
        return score_version(client, champion, dataset_dir, models_dir, scratch)

    return score


def dataset_for(ws: Workspace, digest: str) -> Path:
    """A folder holding dataset version ``digest``: restored once from the DVC remote
    (``PALITUNE_DVC_REMOTE``, else the project's default), then reused."""
    ensure_repo(ws.project, ws.dvc_remote)
    return checkout_version(ws, digest).path


def resolve_challenger(client: MlflowClient, name: str, version: str | None) -> ModelVersion:
    """``version`` of ``name``, or the one holding alias ``challenger``.

    Raises:
        ValueError: no such model, version or alias.
    """
    if version is None:
        found = version_by_alias(client, name, CHALLENGER)
        if found is None:
            raise ValueError(f"{name}: no version holds alias {CHALLENGER!r} (is the model name right?)")
        return found
    try:
        return client.get_model_version(name, version)
    except MlflowException as err:
        raise ValueError(f"{name}: no version {version}") from err


def challenge(
    ws: Workspace, client: MlflowClient, name: str, *, version: str | None = None, policy: PromotionPolicy
) -> Challenge:
    """Score the challenger (and the champion, or the untrained base when there is none) on
    the challenger's test set and move ``champion`` as the policy says.

    Args:
        ws: the workspace: its models, and where the dataset version is restored.
        client: the tracking and registry store.
        name: the registered model (``palitune-vqa``).
        version: the version to judge; ``None`` means the one holding alias ``challenger``.
        policy: the promotion gates.

    Returns:
        The decision, the champion version afterwards and the dataset folder scored on.

    Raises:
        ValueError: the version is missing, or was not trained on a versioned dataset.
    """
    challenger = resolve_challenger(client, name, version)
    digest = challenger.tags.get(DATASET_TAG, "")
    if len(digest) != 32:
        raise ValueError(
            f"{name} v{challenger.version}: tag {DATASET_TAG} is {digest or 'missing'!r}; "
            "only a version trained on a DVC-versioned dataset can be judged on the same data"
        )
    dataset_dir = dataset_for(ws, digest)
    with tempfile.TemporaryDirectory(prefix="palitune-challenger-") as scratch:
        challenger_report = score_version(client, challenger, dataset_dir, ws.models, Path(scratch))

    def untrained() -> EvaluationReport:
        return evaluate(resolve_base(base_model_of(challenger.tags), ws.models), dataset_dir)

    scorer = champion_scorer(client, dataset_dir, ws.models)
    decision, holder = run_promotion(
        client, name, str(challenger.version), challenger_report, untrained, scorer, policy=policy
    )
    return Challenge(decision, holder, dataset_dir)
