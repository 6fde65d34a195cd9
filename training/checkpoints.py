"""Training checkpoints: the whole state (model, optimizer, scheduler, RNG, step) in
``<output_dir>/checkpoints/step-NNNNNNNN``, written beside and renamed into place, so a
crash leaves either the complete checkpoint or none.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "palitune_state.json"
_PREFIX = "step-"


class CheckpointError(OSError):
    """A checkpoint could not be written (disk full, no permission); the last whole one is kept."""


@dataclass(frozen=True)
class CheckpointState:
    """What the loop needs besides Accelerate's state to continue where it stopped."""

    step: int
    config_fingerprint: str
    mlflow_run_id: str | None


def checkpoint_dir(output_dir: Path, step: int) -> Path:
    return Path(output_dir) / CHECKPOINTS_DIR / f"{_PREFIX}{step:08d}"


def staging_dir(output_dir: Path, step: int) -> Path:
    final = checkpoint_dir(output_dir, step)
    return final.with_name(f".{final.name}.partial")


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (a partial one is never listed)."""
    folder = Path(output_dir) / CHECKPOINTS_DIR
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(_PREFIX) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(output_dir: Path) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def read_state(checkpoint: Path) -> CheckpointState:
    return CheckpointState(**json.loads((Path(checkpoint) / STATE_FILE).read_text()))


def finish_checkpoint(output_dir: Path, state: CheckpointState, keep: int) -> Path:
    """Mark the staged checkpoint of ``state.step`` complete, move it into place, prune old ones.

    The state file is written last and the folder renamed after it, so a checkpoint that is
    listed is whole.
    """
    staged, final = staging_dir(output_dir, state.step), checkpoint_dir(output_dir, state.step)
    (staged / STATE_FILE).write_text(json.dumps(asdict(state), indent=2) + "\n")
    if final.exists():
        shutil.rmtree(final)
    staged.rename(final)
    for old in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(old)
    return final


def abandon_checkpoint(output_dir: Path, step: int, err: BaseException) -> CheckpointError:
    """Remove the partial checkpoint of ``step`` (freeing what it took) and say what is kept."""
    shutil.rmtree(staging_dir(output_dir, step), ignore_errors=True)
    kept = latest_checkpoint(output_dir)
    keeps = f"{kept.name} is kept and the same command resumes from it" if kept else "there is no earlier checkpoint"
    return CheckpointError(
        f"{checkpoint_dir(output_dir, step)}: the checkpoint of step {step} could not be written "
        f"({type(err).__name__}: {err}); {keeps} once there is space and write permission"
    )
