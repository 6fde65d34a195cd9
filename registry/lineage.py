"""What a model version is traced to: code, data, base model and config.

Every tag palitune writes on a run or a model version is named once, in
``data.lineage_tags``, and re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from data.lineage_tags import (  # noqa: F401  (re-exported: the registry's tag vocabulary)
    BASE_MODEL_TAG,
    CONFIG_HASH_TAG,
    DAGSTER_RUN_TAG,
    DATASET_TAG,
    GIT_COMMIT_TAG,
    GIT_DIRTY_TAG,
    LAST_CHALLENGE_TAG,
    METHOD_TAG,
    METRIC_TAG_PREFIX,
    PROMOTION_REASON_TAG,
    PROMOTION_TAG_PREFIX,
    ROLLBACK_TAG,
    TAG_PREFIX,
    TASK_TAG,
    UNVERSIONED,
    git_state,
)

DEFAULT_BASE = "tiny"  # the base of a version whose tags name none


def lineage_tags(
    *,
    dataset_hash: str | None,
    base_model: str,
    config_hash: str,
    task: str,
    dagster_run_id: str | None = None,
    repo: Path | None = None,
) -> dict[str, str]:
    """Tags every run and model version carries."""
    commit, dirty = git_state(repo)
    tags = {
        TASK_TAG: task,
        DATASET_TAG: dataset_hash or UNVERSIONED,
        BASE_MODEL_TAG: base_model,
        CONFIG_HASH_TAG: config_hash,
        GIT_COMMIT_TAG: commit,
        GIT_DIRTY_TAG: str(dirty).lower(),
    }
    if dagster_run_id:
        tags[DAGSTER_RUN_TAG] = dagster_run_id
    return tags


def version_tags(run_tags: Mapping[str, str], metrics: Mapping[str, float]) -> dict[str, str]:
    """The tags a new model version carries: the palitune tags of the run that trained it
    (its lineage) and its metrics, as ``palitune.metric.<task>/<split>/<metric>``.

    Args:
        run_tags: every tag of the MLflow run; tags not written by palitune are left out.
        metrics: the fine-tuned model's metrics by name.
    """
    tags = {key: value for key, value in run_tags.items() if key.startswith(TAG_PREFIX)}
    return {**tags, **{METRIC_TAG_PREFIX + key: f"{value:.6g}" for key, value in metrics.items()}}


def metric_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """The metrics recorded in a version's ``tags``, by metric name (the prefix removed)."""
    return {k.removeprefix(METRIC_TAG_PREFIX): v for k, v in tags.items() if k.startswith(METRIC_TAG_PREFIX)}


def base_model_of(tags: Mapping[str, str]) -> str:
    """The base model reference a version's ``tags`` name (``tiny`` when they name none)."""
    return tags.get(BASE_MODEL_TAG, DEFAULT_BASE)
