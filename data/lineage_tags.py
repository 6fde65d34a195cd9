"""The MLflow tag keys palitune writes on a run, an experiment or a model version, named once,
and the names it gives runs and datasets there.

Here, at the bottom of the import graph, so that training (which logs a run's tags) and the
registry (which reads and extends them) spell them the same way; ``registry.lineage`` says
what a version is traced to with them. Nothing here imports MLflow.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

TAG_PREFIX = "palitune."
TASK_TAG = "palitune.task"
DATASET_TAG = "palitune.dataset_hash"
BASE_MODEL_TAG = "palitune.base_model"
CONFIG_HASH_TAG = "palitune.config_hash"
METHOD_TAG = "palitune.method"
GIT_COMMIT_TAG = "palitune.git_commit"
GIT_DIRTY_TAG = "palitune.git_dirty"
DAGSTER_RUN_TAG = "palitune.dagster_run_id"
METRIC_TAG_PREFIX = "palitune.metric."
PROMOTION_TAG_PREFIX = "palitune.promotion."
LAST_CHALLENGE_TAG = PROMOTION_TAG_PREFIX + "last_challenge"
PROMOTION_REASON_TAG = PROMOTION_TAG_PREFIX + "reason"
ROLLBACK_TAG = "palitune.rollback"
EVALUATION_TAG = "palitune.evaluation"  # on an evaluation run: what it scored (``untrained``)
UNVERSIONED = "unversioned"  # the dataset tag of a run trained on a folder DVC does not track

# MLflow's own keys (``mlflow.utils.mlflow_tags``), which its UI reads: the run's source
# (shown as "Source" with the commit), the parent of a nested run, and the kind of an
# experiment, which decides whether the UI opens it on the runs table of model training
# ("custom_model_development") or on the GenAI traces overview.
SOURCE_NAME_TAG = "mlflow.source.name"
SOURCE_TYPE_TAG = "mlflow.source.type"
SOURCE_COMMIT_TAG = "mlflow.source.git.commit"
PARENT_RUN_TAG = "mlflow.parentRunId"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_EXPERIMENT = "custom_model_development"

# MLflow's input tag saying what a dataset was used for; palitune's contexts by split.
DATASET_CONTEXT_TAG = "mlflow.data.context"
SPLIT_CONTEXTS = {"train": "train", "val": "eval", "test": "test"}


def run_name(task: str, method: str, dataset_hash: str | None, when: datetime | None = None) -> str:
    """The name of a run palitune opens itself: task, method, dataset and start time,
    ``vqa-lora-3f2a9c1e-20261202-0507`` (``unversioned`` for a folder DVC does not track),
    so runs of one task still tell apart in the runs table."""
    stamp = (when or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{task}-{method}-{(dataset_hash or UNVERSIONED)[:8]}-{stamp}"


def dataset_name(task: str, split: str) -> str:
    """The name of split ``split`` of a ``task`` dataset in MLflow (``vqa-test``); with the
    version's DVC hash as its digest, the pair is what MLflow identifies a dataset by."""
    return f"{task}-{split}"


def dataset_source(dataset_hash: str | None, folder: Path | None) -> tuple[str, str]:
    """The source of a dataset as MLflow records it (type, JSON): its folder, as MLflow's own
    ``local`` source reads, when known; else its DVC version, which ``palitune data checkout
    HASH`` restores."""
    if folder is not None:
        return "local", json.dumps({"uri": Path(folder).resolve().as_uri()})
    return "dvc", json.dumps({"dataset_hash": dataset_hash or UNVERSIONED})


def split_context(split: str) -> str:
    """MLflow's context of a split: ``train``, ``eval`` (validation) or ``test``."""
    return SPLIT_CONTEXTS.get(split, split)


def git_state(repo: Path | None = None) -> tuple[str, bool]:
    """The commit checked out in ``repo`` (default: the current directory) and whether the
    working tree differs from it; ``("unknown", True)`` outside a git checkout."""
    cwd = str(repo or Path.cwd())
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True
    return commit, bool(status.strip())
