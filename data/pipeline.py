"""The synthetic datasets as a DVC pipeline of the project: ``params.yaml`` sizes them,
``dvc.yaml`` renders them, ``dvc.lock`` records which parameters and code made which bytes.

In the repository all three are committed at its top level, so ``dvc repro``, ``dvc status``,
``dvc params diff`` and ``dvc exp run -S synthetic.vqa.train=500`` work as DVC users expect,
and a fresh clone renders the bytes ``dvc.lock`` pins. A workspace used outside any project
gets the same pipeline written into it (see ``ensure_pipeline``). One ``foreach`` stage,
``synthesize@<task>``, renders ``dvc-data/synthetic/<task>`` with ``palitune data synth``; it
depends on its parameters and on the generator code (``CODE_DEPS``). The stage output is a
dataset folder like any other: its hash in ``dvc.lock`` is its version (see
``data.versioning``), pushed to the same remote.

Datasets a user brings (``palitune data ingest``) are not stage outputs; they are versioned
with ``dvc add`` beside them, a ``.dvc`` file to commit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock

from data.synthetic import GENERATORS, SplitSizes
from data.tasks import get_task

PARAMS_FILE = "params.yaml"
PIPELINE_FILE = "dvc.yaml"
LOCK_FILE = "dvc.lock"
STAGE = "synthesize"
OUTPUT_DIR = "dvc-data/synthetic"
# The code that decides a render's bytes: the generators and what they import (a test checks
# that this covers their import closure). A change to any of it makes `dvc repro` render again.
CODE_DEPS = (
    "data/synthetic",
    "data/mask_codec",
    "data/atomic.py",
    "data/example.py",
    "data/loc_tokens.py",
    "data/masks.py",
    "data/schema.py",
    "data/seg_tokens.py",
    "data/segment_target.py",
    "data/tasks.py",
)


def pipeline_text(code_deps: tuple[str, ...] = CODE_DEPS) -> str:
    """``dvc.yaml`` of the synthetic datasets, depending on ``code_deps`` (paths in the project).

    The repository's own ``dvc.yaml`` is this text (a test checks it). A workspace that is a
    DVC repository of its own, holding no code, gets it with no code dependencies.
    """
    deps = "".join(f"\n        - {dep}" for dep in code_deps)
    return f"""\
# The synthetic datasets, one per task, sized by params.yaml (synthetic.<task>).
#   dvc repro                          re-render every task whose parameters or code changed
#   dvc repro {STAGE}@ocr           one task
#   dvc exp run -S synthetic.vqa.train=500
stages:
  {STAGE}:
    foreach: ${{synthetic}}
    do:
      cmd: >-
        palitune data synth --task ${{key}} --out {OUTPUT_DIR}/${{key}} --seed ${{item.seed}}
        --image-size ${{item.image_size}} --train ${{item.train}} --val ${{item.val}} --test ${{item.test}}
      params:
        - synthetic.${{key}}{"" if not deps else chr(10) + "      deps:" + deps}
      outs:
        - {OUTPUT_DIR}/${{key}}
"""


PARAMS_HEADER = "# Parameters of the DVC pipeline in dvc.yaml: seed, image size and split sizes per task.\n"
DEFAULT_PARAMS = {"seed": 0, "image_size": 64, "val": 100, "test": 200}  # train: the task table's


REPO_LOCK_FILE = ".dvc-palitune.lock"


class PipelineError(RuntimeError):
    """``dvc repro`` of the synthetic pipeline failed."""


@contextmanager
def repository_lock(root: Path) -> Iterator[None]:
    """Hold the workspace's DVC repository for one palitune operation, waiting for others.

    Two runs (two task partitions) share one repository. DVC's own lock fails at once
    ("Unable to acquire lock") instead of waiting, and it covers one DVC command, not
    palitune's read-modify-write of ``params.yaml`` or the ``dvc.lock`` journal kept across
    a commit and its push (``data.versioning``). So each such operation holds this lock,
    a file beside ``.dvc/``. It is an OS lock (``flock``), released when its process dies,
    so a killed run leaves nothing stale; it is reentrant within a thread, so an operation
    may call another that locks too.
    """
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(root / REPO_LOCK_FILE, is_singleton=True):
        yield


def task_defaults(task: str) -> dict[str, int]:
    """A task's parameters in ``params.yaml`` as first written."""
    return {**DEFAULT_PARAMS, "train": get_task(task).synthetic_train}


def default_params() -> dict[str, Any]:
    """``params.yaml`` as first written: every task with its defaults."""
    return {"synthetic": {task: task_defaults(task) for task in sorted(GENERATORS)}}


def ensure_pipeline(root: Path) -> None:
    """Give the project ``root`` its ``dvc.yaml`` and ``params.yaml`` where they are missing.

    A project under git owns both files: they are written only when absent, never changed.
    In a workspace that is its own DVC repository (no git, no code) palitune owns
    ``dvc.yaml`` and keeps it current; ``params.yaml`` is written only when absent.
    """
    with repository_lock(root):
        _write_pipeline(Path(root))


def _in_git(root: Path) -> bool:
    return any((p / ".git").exists() for p in (root, *root.parents))


def _write_pipeline(root: Path) -> None:
    pipeline = root / PIPELINE_FILE
    owned = not (pipeline.is_file() and _in_git(root.resolve()))  # else the project's own file
    text = pipeline_text(tuple(dep for dep in CODE_DEPS if (root / dep).exists())) if owned else ""
    if owned and (not pipeline.is_file() or pipeline.read_text() != text):
        _replace_text(pipeline, text)
    params = root / PARAMS_FILE
    if not params.is_file():
        _replace_text(params, PARAMS_HEADER + yaml.safe_dump(default_params(), sort_keys=True))


def _replace_text(path: Path, text: str) -> None:
    """Write through a temporary file and rename it over ``path``: a reader that does not
    take the repository lock (``read_params``, another run's ``dvc``) sees the old file or
    the new one, never half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_params(root: Path) -> dict[str, dict[str, int]]:
    """``synthetic`` of the workspace's ``params.yaml``: task -> its parameters."""
    data = yaml.safe_load((Path(root) / PARAMS_FILE).read_text()) or {}
    return dict(data.get("synthetic") or {})


def set_params(root: Path, task: str, *, seed: int, sizes: SplitSizes, image_size: int) -> None:
    """Set one task's parameters in ``params.yaml``, as ``dvc exp run -S`` would; others stay.

    Holds the repository lock: another run setting its task at the same time would
    otherwise write back the file as it read it, dropping this task's change.
    """
    if task not in GENERATORS:
        raise KeyError(f"no synthetic generator for task {task!r}; there are: {', '.join(GENERATORS)}")
    with repository_lock(root):
        _write_params(Path(root), task, seed=seed, sizes=sizes, image_size=image_size)


def _write_params(root: Path, task: str, *, seed: int, sizes: SplitSizes, image_size: int) -> None:
    _write_pipeline(root)
    path = root / PARAMS_FILE
    data = yaml.safe_load(path.read_text()) or {}
    data.setdefault("synthetic", {})[task] = {
        "seed": seed,
        "image_size": image_size,
        "train": sizes.train,
        "val": sizes.val,
        "test": sizes.test,
    }
    new = PARAMS_HEADER + yaml.safe_dump(data, sort_keys=True)
    if path.read_text() != new:
        _replace_text(path, new)


def run_dvc(root: Path, *args: str) -> str:
    """Run ``dvc ARGS`` in its own process in ``root`` (a stage resolves paths from there).

    The folder of the running interpreter goes first on ``PATH``, so a stage's ``palitune``
    is this installation's.

    Raises:
        PipelineError: DVC exited non-zero; its output is in the message.
    """
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    # --wait-for-lock: a dvc command run by hand in the workspace makes this one wait, not fail
    # ("Unable to acquire lock"); palitune's own operations already queue on repository_lock.
    command = [sys.executable, "-m", "dvc", "--wait-for-lock", *args]
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        raise PipelineError(f"{Path(root) / PIPELINE_FILE}: dvc {' '.join(args)} failed:\n{output}")
    return result.stdout


def stage_name(task: str) -> str:
    return f"{STAGE}@{task}"


def output_dir(root: Path, task: str) -> Path:
    return Path(root) / OUTPUT_DIR / task


def reproduce(root: Path, tasks: list[str] | None = None) -> list[Path]:
    """``dvc repro`` the stages of ``tasks`` (all in ``params.yaml`` when ``None``).

    A stage whose parameters and output are unchanged is skipped, as ``dvc repro`` skips it.

    Raises:
        PipelineError: a task has no parameters in ``params.yaml``, or ``dvc repro`` failed
            (its output is in the message).

    Returns:
        The output folder of each task, in the order given.
    """
    root = Path(root).resolve()
    with repository_lock(root):  # one DVC command at a time in the repository (see repository_lock)
        _write_pipeline(root)
        tasks = tasks if tasks is not None else sorted(read_params(root))
        missing = [task for task in tasks if task not in read_params(root)]
        if missing:
            raise PipelineError(f"{root / PARAMS_FILE}: synthetic: no parameters for task(s) {', '.join(missing)}")
        if tasks:  # no target at all would make dvc repro every stage
            run_dvc(root, "repro", *(stage_name(task) for task in tasks))
    return [output_dir(root, task) for task in tasks]


def commit_pipeline_output(root: Path, stage: str) -> None:
    """Record the current bytes of ``stage``'s output in ``dvc.lock`` (``dvc commit``).

    An output edited by hand is recorded as it is now; but an output whose parameters or
    command changed since it was rendered is refused, since the lock would then credit
    bytes to parameters that did not make them.

    Raises:
        PipelineError: the stage is stale; the message says how to re-render it.
    """
    with repository_lock(root):  # status and commit must see the same dvc.lock
        status = json.loads(run_dvc(root, "status", "--json", stage) or "{}").get(stage, [])
        stale = [entry for entry in status if not (isinstance(entry, dict) and set(entry) == {"changed outs"})]
        if stale:
            task = stage.split("@", 1)[1]
            raise PipelineError(
                f"{Path(root) / PARAMS_FILE}: synthetic.{task}: changed since {OUTPUT_DIR}/{task} was rendered "
                f"({json.dumps(stale)}); re-render it first: palitune data repro --task {task}"
            )
        if status:
            run_dvc(root, "commit", "--force", stage)


def locked_outputs(root: Path, lock_file: str = LOCK_FILE) -> dict[str, tuple[str, str]]:
    """Output path (relative to ``root``) -> (stage, md5 without ``.dir``) from ``dvc.lock``
    (or from another lock file in ``root``, e.g. a saved copy)."""
    path = Path(root) / lock_file
    if not path.is_file():
        return {}
    stages = (yaml.safe_load(path.read_text()) or {}).get("stages") or {}
    found = {}
    for stage, entry in stages.items():
        for out in entry.get("outs") or []:
            md5 = str(out.get("md5", ""))
            if md5.endswith(".dir"):
                found[str(out["path"])] = (stage, md5.removesuffix(".dir"))
    return found


def pipeline_stage_of(root: Path, dataset_dir: Path) -> str | None:
    """The stage of ``dvc.yaml`` whose output is ``dataset_dir``; ``None`` when none is."""
    root, dataset_dir = Path(root).resolve(), Path(dataset_dir).resolve()
    if not (root / PIPELINE_FILE).is_file() or not dataset_dir.is_relative_to(root / OUTPUT_DIR):
        return None
    relative = dataset_dir.relative_to(root / OUTPUT_DIR)
    if len(relative.parts) != 1 or relative.name not in read_params(root):
        return None
    return stage_name(relative.name)
