"""What a model version is traced to: code, data, base model and config."""

from __future__ import annotations

import subprocess
from pathlib import Path


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
        "palitune.task": task,
        "palitune.dataset_hash": dataset_hash or "unversioned",
        "palitune.base_model": base_model,
        "palitune.config_hash": config_hash,
        "palitune.git_commit": commit,
        "palitune.git_dirty": str(dirty).lower(),
    }
    if dagster_run_id:
        tags["palitune.dagster_run_id"] = dagster_run_id
    return tags
