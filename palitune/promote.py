"""``palitune registry promote``: judge the challenger against the champion, by hand.

Both are scored again on the challenger's dataset version, restored by its hash when the
folder is not in the workspace, so the comparison is paired example by example whatever
the champion was trained and scored on.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from data.schema import DataError
from data.versioning import ensure_repo, restore_dataset, verify_dataset
from data.workspace import Workspace
from evaluation.report import EvaluationReport
from evaluation.run import evaluate
from models.loading import resolve_base
from registry.models import CHALLENGER, download_adapter, version_by_alias
from registry.promotion import Decision, PromotionPolicy, run_promotion

DATASET_TAG, BASE_TAG = "palitune.dataset_hash", "palitune.base_model"


def score_version(
    client: MlflowClient, version: ModelVersion, dataset_dir: Path, models_dir: Path, scratch: Path
) -> EvaluationReport:
    """The version's adapter, fetched into ``scratch``, on its base, scored on the test split."""
    base = resolve_base(version.tags.get(BASE_TAG, "tiny"), models_dir)
    return evaluate(base, dataset_dir, adapter_dir=download_adapter(client, version, scratch))


def dataset_for(ws: Workspace, digest: str) -> Path:
    """A folder holding dataset version ``digest``: restored from the DVC remote once, then reused."""
    dest = ws.root / "restored" / digest
    if dest.is_dir():
        try:
            if verify_dataset(dest, ws.root) == digest:
                return dest
        except DataError:
            pass  # edited or half-restored: fetch it again
    ensure_repo(ws.root, ws.dvc_remote)
    return restore_dataset(ws.root, digest, dest).path


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
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, version)
    except MlflowException as err:
        raise ValueError(f"{name}: no version {version}") from err


def promote(
    ws: Workspace, client: MlflowClient, name: str, *, version: str | None = None, policy: PromotionPolicy
) -> tuple[Decision, str | None, Path]:
    """Score the challenger (and the champion, or the untrained base when there is none) on
    the challenger's test set and move ``champion`` as the policy says.

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
        return evaluate(resolve_base(challenger.tags.get(BASE_TAG, "tiny"), ws.models), dataset_dir)

    decision, holder = run_promotion(
        client,
        name,
        str(challenger.version),
        challenger_report,
        untrained,
        lambda champion, tmp: score_version(client, champion, dataset_dir, ws.models, tmp),
        policy=policy,
    )
    return decision, holder, dataset_dir
