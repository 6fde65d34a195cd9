"""DVC at the repository's top level, used the way DVC users use it.

The repository's ``dvc.yaml``, ``params.yaml``, ``dvc.lock`` and ``.dvc/config`` are
committed. These tests read them as they are in the checkout, render from a fresh clone, and
run what a DVC user types (``dvc repro``, ``status``, ``params diff``, ``exp run -S``,
``push``/``pull``, ``git checkout REV && dvc pull``, ``dvc.api.open(rev=...)``) beside
palitune's own commands in one small project built from the checkout's files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from data.pipeline import CODE_DEPS, LOCK_FILE, PARAMS_HEADER, default_params, pipeline_text

REPO = Path(__file__).resolve().parents[2]
BIN = str(Path(sys.executable).parent)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PALITUNE_", "DVC_")) or k == "DVC_NO_ANALYTICS"}
    return {**env, "PATH": BIN + os.pathsep + env.get("PATH", ""), **extra}


def _run(cwd: Path, *command: str, env: dict[str, str] | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env or _env(), capture_output=True, text=True, timeout=600)
    if ok:
        assert result.returncode == 0, f"{' '.join(command)}: {result.stdout}{result.stderr}"
    return result


def _dvc(cwd: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    return _run(cwd, sys.executable, "-m", "dvc", *args, ok=ok)


def _git(cwd: Path, *args: str) -> str:
    return _run(cwd, "git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args).stdout


def _palitune(cwd: Path, ws: Path, project: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = _env(PALITUNE_HOME=str(ws), PALITUNE_PROJECT=str(project), **env)
    return _run(cwd, sys.executable, "-m", "palitune.cli", *args, env=environment, ok=False)


def test_the_committed_pipeline_is_the_generated_one() -> None:
    assert (REPO / "dvc.yaml").read_text() == pipeline_text()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert params == default_params(), "params.yaml holds every task at its defaults"
    assert (REPO / "params.yaml").read_text() == PARAMS_HEADER + yaml.safe_dump(default_params(), sort_keys=True)
    config = (REPO / ".dvc" / "config").read_text()
    assert "remote = local" in config and "url = ../workspace/dvc-remote" in config
    ignored = (REPO / ".dvcignore").read_text().split()
    assert "__pycache__/" in ignored and "/workspace/" in ignored and "/.venv/" in ignored


def test_code_deps_cover_what_the_generators_import(tmp_path: Path) -> None:
    """Render every task in a fresh interpreter and list the project files it imported: each is
    under a dependency of the stage, so editing it makes ``dvc repro`` render again."""
    script = (
        "import sys, json; from pathlib import Path\n"
        "from data.synthetic import GENERATORS, SplitSizes, write_synthetic\n"
        f"[write_synthetic(t, Path({str(tmp_path)!r}) / t, sizes=SplitSizes(2, 1, 1)) for t in GENERATORS]\n"
        "print(json.dumps(sorted(m.__file__ for m in list(sys.modules.values()) if getattr(m, '__file__', None))))"
    )
    files = json.loads(_run(REPO, sys.executable, "-c", script).stdout)
    ours = [Path(f).resolve().relative_to(REPO) for f in files if Path(f).resolve().is_relative_to(REPO / "data")]
    ours = [f for f in ours if f.name != "__init__.py" or f.parent != Path("data")]
    assert ours, "the generators import project code"
    uncovered = [str(f) for f in ours if not any(f == Path(dep) or f.is_relative_to(dep) for dep in CODE_DEPS)]
    assert not uncovered, f"imported by the generators but not a dependency in dvc.yaml: {uncovered}"


def test_the_committed_lock_matches_the_code_and_params() -> None:
    """``dvc status`` at the top level: a stage may lack its output (a fresh clone has none),
    but none has code or parameters other than what dvc.lock recorded."""
    status = json.loads(_dvc(REPO, "status", "--json").stdout or "{}")
    stale = {
        stage: [entry for entry in changes if not (isinstance(entry, dict) and set(entry) == {"changed outs"})]
        for stage, changes in status.items()
    }
    assert not {stage: entries for stage, entries in stale.items() if entries}, (
        "dvc.lock is behind the generator code or params.yaml; re-render and commit it: dvc repro && git add dvc.lock"
    )
    locked = yaml.safe_load((REPO / LOCK_FILE).read_text())["stages"]
    assert sorted(locked) == sorted(f"synthesize@{task}" for task in default_params()["synthetic"])


@pytest.mark.slow
def test_a_fresh_clone_renders_the_locked_bytes(tmp_path: Path) -> None:
    """What ``make demo`` renders on a fresh clone (the vqa stage) is what dvc.lock pins,
    so the clone's git status stays clean."""
    clone = tmp_path / "clone"
    _run(tmp_path, "git", "clone", "--quiet", str(REPO), str(clone))
    _dvc(clone, "repro", "synthesize@vqa")
    assert _git(clone, "status", "--porcelain") == ""
    assert json.loads(_dvc(clone, "status", "--json", "synthesize@vqa").stdout or "{}") == {}


SMALL = {"image_size": 32, "seed": 0, "train": 8, "val": 2, "test": 2}


def _project(tmp_path: Path) -> Path:
    """A git repository holding the checkout's pipeline files and generator code, with two
    small tasks and a folder remote."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, project / name)
    (project / ".dvc").mkdir()
    for name in ("config", ".gitignore"):
        shutil.copy(REPO / ".dvc" / name, project / ".dvc" / name)
    shutil.copytree(REPO / "data", project / "data", ignore=shutil.ignore_patterns("__pycache__"))
    params = {"synthetic": {"ocr": dict(SMALL), "vqa": dict(SMALL)}}
    (project / "params.yaml").write_text(PARAMS_HEADER + yaml.safe_dump(params, sort_keys=True))
    _git(project, "init", "--quiet")
    _dvc(project, "remote", "modify", "local", "url", str(tmp_path / "remote"))
    _git(project, "add", "-A")
    _git(project, "commit", "--quiet", "-m", "the pipeline")
    return project


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


@pytest.mark.slow
def test_what_dvc_users_type_works_beside_palitune(tmp_path: Path) -> None:
    project, ws = _project(tmp_path), tmp_path / "ws"
    train = project / "dvc-data" / "synthetic" / "vqa" / "train.jsonl"
    _dvc(project, "remote", "modify", "--local", "local", "jobs", "3")  # a user's own option
    config, local = (project / ".dvc" / "config").read_bytes(), (project / ".dvc" / "config.local").read_bytes()

    _dvc(project, "repro")
    assert "up to date" in _dvc(project, "status").stdout
    versioned = _palitune(project, ws, project, "data", "version", "dvc-data/synthetic/vqa")
    assert versioned.returncode == 0, versioned.stderr
    first = json.loads(versioned.stdout)["hash"]
    locked = yaml.safe_load((project / LOCK_FILE).read_text())["stages"]["synthesize@vqa"]["outs"][0]["md5"]
    assert locked == f"{first}.dir"
    _git(project, "add", "-A")
    _git(project, "commit", "--quiet", "-m", "vqa at 8")
    rev1 = _git(project, "rev-parse", "HEAD").strip()
    assert _git(project, "status", "--porcelain") == ""

    _dvc(project, "exp", "run", "-S", "synthetic.vqa.train=12")
    assert _lines(train) == 12
    diff = _dvc(project, "params", "diff").stdout
    assert "synthetic.vqa.train" in diff and "8" in diff and "12" in diff
    _dvc(project, "push")
    _git(project, "add", "-A")
    _git(project, "commit", "--quiet", "-m", "vqa at 12")
    rev2 = _git(project, "rev-parse", "HEAD").strip()

    clone = tmp_path / "clone"  # another machine: no cache, no data, only git and the remote
    _run(tmp_path, "git", "clone", "--quiet", str(project), str(clone))
    _git(clone, "checkout", "--quiet", rev1)
    _dvc(clone, "pull")
    assert _lines(clone / train.relative_to(project)) == 8
    import dvc.api

    with dvc.api.open("dvc-data/synthetic/vqa/train.jsonl", repo=str(clone), rev=rev2) as f:
        assert len(f.read().splitlines()) == 12

    # palitune restores by hash alone into the workspace; the project's git tree is untouched.
    restored = _palitune(tmp_path, ws, project, "data", "checkout", first)
    assert restored.returncode == 0, restored.stderr
    assert Path(restored.stdout.strip()) == ws / "restored" / first
    assert (ws / "restored" / first / "train.jsonl").read_bytes() == (clone / train.relative_to(project)).read_bytes()
    from dvc.repo import Repo

    with Repo(str(ws / "restored")) as restore, Repo(str(project)) as own:
        assert restore.cache.local.path == own.cache.local.path, "restores share the project's cache"
    missing = _palitune(tmp_path, ws, project, "data", "checkout", "0" * 32)
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0, missing.stderr
    assert "0" * 32 in missing.stderr and str(tmp_path / "remote") in missing.stderr

    # An ingested dataset is a .dvc file to commit, the DVC way; PALITUNE_DVC_REMOTE redirects one push.
    mine = project / "dvc-data" / "mine"
    shutil.copytree(project / "dvc-data" / "synthetic" / "ocr", mine)
    other = tmp_path / "other-remote"
    done = _palitune(project, ws, project, "data", "version", str(mine), PALITUNE_DVC_REMOTE=str(other))
    assert done.returncode == 0, done.stderr
    assert (project / "dvc-data" / "mine.dvc").is_file()
    assert "/mine" in (project / "dvc-data" / ".gitignore").read_text()
    assert any((other / "files").rglob("*.dir")), "pushed where PALITUNE_DVC_REMOTE said"
    assert _git(project, "status", "--porcelain").split() == ["??", "dvc-data/"]

    assert (project / ".dvc" / "config").read_bytes() == config, "palitune left the DVC config as the user had it"
    assert (project / ".dvc" / "config.local").read_bytes() == local
