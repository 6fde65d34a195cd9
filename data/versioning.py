"""Dataset versions with DVC: the DVC hash of a dataset folder is the dataset's identity.

Versions live in the project's DVC repository (``Workspace.project``): the repository's top
level, with its committed ``.dvc/config``, or a workspace made a DVC repository of its own
without git. Which remote a command pushes to and pulls from is, first to last: the remote a
command names (``--remote``, the Dagster resource), ``PALITUNE_DVC_REMOTE``, the DVC
config's default (``dvc remote default``, ``config.local`` included). A name given there is a
configured remote; anything else is a URL or folder, used for that command only. palitune
never rewrites a remote a user configured. A version can be restored from its hash alone
(``restore_dataset``), on any machine that reaches the remote. Every operation on the
repository holds ``data.pipeline.repository_lock``, so runs of several tasks at once share
one project.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import yaml

from data.pipeline import (
    LOCK_FILE,
    PIPELINE_FILE,
    PipelineError,
    commit_pipeline_output,
    locked_outputs,
    pipeline_stage_of,
    repository_lock,
)
from data.progress import Progress
from data.schema import MANIFEST_FILE, DataError, write_manifest
from data.validate import validate_dataset
from data.workspace import Workspace, enclosing_dvc_repo

REMOTE_NAME = "local"  # the remote a workspace without a project of its own starts with
REMOTE_ENV = "PALITUNE_DVC_REMOTE"
NAMED_REMOTE = "palitune-named"  # in memory only: a URL given by --remote or PALITUNE_DVC_REMOTE
LAST_PUSHED_SUFFIX = ".last-pushed"
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


class PushError(DataError):
    """The DVC remote refused or could not be reached; the version record is as it was."""


@dataclass(frozen=True)
class DatasetVersion:
    """A dataset folder as DVC versioned it."""

    path: Path
    hash: str  # md5 of the folder listing (DVC's ``.dir`` object), without the suffix
    dvc_file: Path
    files: int
    size: int


def ensure_repo(root: Path, remote: Path | str | None = None) -> None:
    """Make ``root`` a DVC repository without git if it is not a DVC repository, and give it
    ``remote`` as its default remote if it has no default yet: a
    local folder (created if missing) or a URL such as ``s3://bucket/prefix`` (the matching
    ``dvc[s3]``-style extra must be installed). A configured default is never changed."""
    from dvc.repo import Repo

    root = Path(root).resolve()
    # Locked: two runs starting on a fresh workspace would both init (the second fails on
    # the existing .dvc/), and a config being rewritten is unreadable to the other.
    with repository_lock(root):
        if not (root / ".dvc").is_dir():
            with _quiet_dvc():  # "Initialized DVC repository." on stdout is not a command's data
                Repo.init(str(root), no_scm=True)
            with Repo(str(root)) as repo, repo.config.edit() as conf:
                conf["core"]["analytics"] = False
        with Repo(str(root)) as repo:
            if remote is None or repo.config["core"].get("remote"):
                return
            with repo.config.edit() as conf:
                conf["core"]["remote"] = REMOTE_NAME
                conf["remote"][REMOTE_NAME] = {"url": _remote_url(remote)}


def _remote_url(remote: Path | str) -> str:
    """A URL as given; a local folder made absolute and created if missing."""
    if "://" in str(remote):
        return str(remote)
    folder = Path(remote).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


@contextmanager
def _quiet_dvc(below: int = logging.WARNING, names: tuple[str, ...] = ("dvc", "dvc_data")) -> Iterator[None]:
    """Messages of DVC's loggers ``names`` under level ``below`` held back for a moment (its
    log handler writes INFO to stdout, which is a command's data). DVC draws its progress bars
    (on a terminal) while the ``dvc`` logger shows INFO."""
    logs = [logging.getLogger(name) for name in names]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(below)
    try:
        yield
    finally:
        for log, level in zip(logs, levels, strict=True):
            log.setLevel(level)


def chosen_remote(remote: Path | str | None = None) -> str | None:
    """The remote a command uses: ``remote`` when given, else ``PALITUNE_DVC_REMOTE``, else
    ``None`` (the DVC config's default)."""
    return str(remote) if remote else os.environ.get(REMOTE_ENV) or None


def repo_config(root: Path, remote: Path | str | None = None) -> dict[str, object]:
    """The in-memory config that makes ``chosen_remote(remote)`` the default of ``root``'s
    repository for one operation; empty for the DVC config's own default."""
    from dvc.repo import Repo

    chosen = chosen_remote(remote)
    if chosen is None:
        return {}
    with Repo(str(root)) as repo:
        if chosen in repo.config["remote"]:
            return {"core": {"remote": chosen}}
    return {"core": {"remote": NAMED_REMOTE}, "remote": {NAMED_REMOTE: {"url": _remote_url(chosen)}}}


def open_repo(root: Path, remote: Path | str | None = None):  # type: ignore[no-untyped-def]
    """``dvc.repo.Repo`` of ``root`` with ``chosen_remote(remote)`` as its default remote;
    nothing is written to its config."""
    from dvc.repo import Repo

    return Repo(str(root), config=repo_config(root, remote) or None)


def remote_settings(root: Path, remote: Path | str | None = None) -> tuple[str, dict[str, object]]:
    """The name and settings (URL and every option, ``config.local`` included) of the remote
    ``root``'s operations use, with relative local URLs made absolute.

    Raises:
        DataError: no remote is configured and none is named.
    """
    with open_repo(root, remote) as repo:
        name = repo.config["core"].get("remote")
        if not name:
            raise DataError(
                Path(root) / ".dvc" / "config",
                None,
                "core.remote",
                "no DVC remote: set one (dvc remote add -d NAME URL), or PALITUNE_DVC_REMOTE, or --remote",
            )
        settings = dict(repo.config["remote"][name])
    if "://" not in str(settings.get("url", "")):
        settings["url"] = str(Path(str(settings["url"])).resolve())
    return str(name), settings


def read_dvc_file(dvc_file: Path) -> tuple[str, int, int]:
    """The hash, file count and size recorded in a ``.dvc`` file of a folder."""
    out = yaml.safe_load(Path(dvc_file).read_text())["outs"][0]
    md5 = str(out["md5"])
    if not md5.endswith(".dir"):
        raise ValueError(f"{dvc_file}: outs[0].md5: {md5!r} is not a folder hash")
    return md5.removesuffix(".dir"), int(out.get("nfiles", 0)), int(out.get("size", 0))


def recorded_hash(dataset_dir: Path) -> str | None:
    """The hash in the ``.dvc`` file beside ``dataset_dir``, or in ``dvc.lock`` for an output
    of the workspace's pipeline; ``None`` if it was never versioned.

    Raises:
        DataError: the folder's versioning was interrupted (killed) after DVC wrote a new
            record but before its push completed; ``palitune data version`` finishes it.
    """
    dataset_dir = Path(dataset_dir).resolve()
    root = find_repo_root(dataset_dir)
    # Locked: another run versioning a dataset at the same moment has its journal out and
    # DVC rewriting dvc.lock in place; read the records between two such operations.
    with repository_lock(root) if root is not None else nullcontext():
        return _recorded_hash(root, dataset_dir)


def _recorded_hash(root: Path | None, dataset_dir: Path) -> str | None:
    dvc_file = dataset_dir.with_name(dataset_dir.name + ".dvc")
    journal = _journal(dvc_file)
    if dvc_file.is_file() or journal.exists():
        current = dvc_file.read_bytes() if dvc_file.is_file() else b""
        if journal.exists() and current != journal.read_bytes():
            raise _unpushed(dvc_file, dataset_dir)
        return read_dvc_file(dvc_file)[0] if current else None
    if root is None or pipeline_stage_of(root, dataset_dir) is None:
        return None
    relative = str(dataset_dir.relative_to(root))
    locked = locked_outputs(root).get(relative)
    journal = _journal(root / LOCK_FILE)
    if journal.exists() and locked_outputs(root, journal.name).get(relative) != locked:
        raise _unpushed(root / LOCK_FILE, dataset_dir)
    return locked[1] if locked else None


def _journal(record: Path) -> Path:
    """Where the last pushed version record is kept while a new one is added and pushed."""
    return record.with_name(record.name + LAST_PUSHED_SUFFIX)


def _unpushed(record: Path, dataset_dir: Path) -> DataError:
    return DataError(
        record,
        None,
        None,
        f"versioning of {dataset_dir} was interrupted before its push completed, so this record names a "
        f"version that may not be on the remote (the last pushed record is kept in {_journal(record).name}); "
        f"finish it: palitune data version {dataset_dir}",
    )


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@contextmanager
def _recorded_once_pushed(record: Path) -> Iterator[None]:
    """A new version record (``.dvc`` file or ``dvc.lock``) counts only once its push succeeded.

    DVC writes the record when it adds, before the push. For the duration the last pushed
    record is kept beside it (``<record>.last-pushed``; empty when there was none): any error
    puts it back, and a kill leaves the journal, through which ``recorded_hash`` refuses the
    unpushed version until a rerun completes.
    """
    journal = _journal(record)
    if not journal.exists():  # else an interrupted attempt already kept the last pushed record
        _write_atomic(journal, record.read_bytes() if record.is_file() else b"")
    try:
        yield
    except BaseException:
        previous = journal.read_bytes()
        if previous:
            _write_atomic(record, previous)
        else:
            record.unlink(missing_ok=True)
        journal.unlink()
        raise
    journal.unlink()


def _push(push: Callable[[], object], root: Path, dataset_dir: Path, record: Path, remote: Path | str | None) -> None:
    """Run ``push``; any failure becomes a ``PushError`` saying what is left as it was."""
    from dvc.exceptions import DvcException

    try:
        push()
    except (OSError, PipelineError, DvcException) as err:
        raise PushError(
            remote_url(root, remote),
            None,
            None,
            f"pushing {dataset_dir.name} failed ({type(err).__name__}: {err}); {record.name} is left as it was "
            "and no new version is recorded. Make the remote reachable and writable, then run "
            f"palitune data version {dataset_dir} again",
        ) from err


def remote_url(root: Path, remote: Path | str | None = None) -> str:
    """The URL of the remote ``root``'s operations use (see ``chosen_remote``)."""
    with open_repo(root, remote) as repo:
        name = repo.config["core"].get("remote", "")
        return str(repo.config["remote"].get(name, {}).get("url", name or "(no remote)"))


def version_dataset(
    root: Path,
    dataset_dir: Path,
    *,
    push: bool = True,
    remote: Path | str | None = None,
    progress: Progress | None = None,
) -> DatasetVersion:
    """Validate the dataset folder, refresh its manifest, ``dvc add`` it and push it to the
    remote (``chosen_remote(remote)``).

    The same bytes always give the same hash; re-versioning an unchanged folder is cheap.
    An output of the workspace's pipeline (``synthetic/<task>``, see ``data.pipeline``) is
    committed to ``dvc.lock`` instead, with the parameters that made it.

    ``progress`` reports validation's lines; DVC draws its own bars for adding and pushing
    on a terminal.

    A new record (the ``.dvc`` file, or ``dvc.lock``) counts only once pushed: if the push
    fails it is put back as it was, and if the process is killed on the way,
    ``recorded_hash`` refuses the folder until this is run again.

    Raises:
        InvalidDatasetError: listing every problem; nothing is written and no version made.
        PushError: the remote is unreachable or refused the files; the record is as it was.
        dvc.exceptions.DvcException: adding failed; the record is as it was
            (``data.pipeline.PipelineError`` for a pipeline output).
    """
    root, dataset_dir = Path(root).resolve(), Path(dataset_dir).resolve()
    validate_dataset(dataset_dir, progress=progress).raise_if_invalid()
    _refresh_manifest(dataset_dir)
    # Locked from add to push: dvc.lock is shared by every task's stage, so its journal
    # (_recorded_once_pushed) must not interleave with another run's.
    with repository_lock(root):
        return _add_and_push(root, dataset_dir, push, remote)


def _add_and_push(root: Path, dataset_dir: Path, push: bool, remote: Path | str | None) -> DatasetVersion:
    stage = pipeline_stage_of(root, dataset_dir)
    if stage is None:
        dvc_file = dataset_dir.with_name(dataset_dir.name + ".dvc")
        with _recorded_once_pushed(dvc_file), open_repo(root, remote) as repo:
            repo.add(str(dataset_dir))
            if push:
                _push(lambda: repo.push(targets=[str(dvc_file)]), root, dataset_dir, dvc_file, remote)
        digest, files, size = read_dvc_file(dvc_file)
    else:  # a pipeline output: dvc.lock holds its version; record what is there now
        dvc_file = root / LOCK_FILE
        with _recorded_once_pushed(dvc_file):
            commit_pipeline_output(root, stage)
            if push:
                _push(lambda: _push_stage(root, stage, remote), root, dataset_dir, dvc_file, remote)
        return _on_disk(dataset_dir, locked_outputs(root)[str(dataset_dir.relative_to(root))][1], dvc_file)
    return DatasetVersion(path=dataset_dir, hash=digest, dvc_file=dvc_file, files=files, size=size)


def _push_stage(root: Path, stage: str, remote: Path | str | None) -> None:
    # The stage as a path: a bare stage name would be looked up in the dvc.yaml of the
    # current folder, whatever repository that is.
    with open_repo(root, remote) as repo:
        repo.push(targets=[f"{root / PIPELINE_FILE}:{stage}"])


def _refresh_manifest(dataset_dir: Path) -> None:
    """Recount the manifest, keeping what it says of the source; unchanged bytes if current."""
    path = dataset_dir / MANIFEST_FILE
    old = json.loads(path.read_text()) if path.is_file() else {}
    write_manifest(dataset_dir, **({"source": old["source"]} if "source" in old else {}))


def restore_dataset(root: Path, digest: str, dest: Path, *, remote: Path | str | None = None) -> DatasetVersion:
    """Materialise the dataset version ``digest`` at ``dest`` (inside the DVC repository
    ``root``) from the remote (``chosen_remote(remote)``).

    Only the hash is needed: a ``.dvc`` file naming it is written beside ``dest`` and pulled.

    Raises:
        DataError: the remote does not hold that version (one line naming hash and remote);
            ``dest`` and its ``.dvc`` file are left as they were.
    """
    from dvc.exceptions import DvcException

    root, dest = Path(root).resolve(), Path(dest).resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    dvc_file = dest.with_name(dest.name + ".dvc")
    previous = dvc_file.read_bytes() if dvc_file.is_file() else None
    dvc_file.write_text(yaml.safe_dump({"outs": [{"md5": f"{digest}.dir", "path": dest.name, "hash": "md5"}]}))
    with repository_lock(root), open_repo(root, remote) as repo:
        try:
            # dvc_data's warning of missing files is the error below, in one line; dvc's own
            # logger stays as it is, so its progress bars still show on a terminal.
            with _quiet_dvc(logging.ERROR, names=("dvc_data",)):
                repo.pull(targets=[str(dvc_file)])
        except DvcException as err:
            if previous is None:
                dvc_file.unlink()
            else:
                dvc_file.write_bytes(previous)
            url = remote_url(root, remote)
            raise DataError(
                url, None, None, f"dataset version {digest} is not on the DVC remote {url} ({type(err).__name__})"
            ) from None
    verify_dataset(dest, root)
    return _on_disk(dest, digest, dvc_file)


def _on_disk(folder: Path, digest: str, dvc_file: Path) -> DatasetVersion:
    """Version ``digest`` as the files of ``folder`` hold it, counted and sized."""
    files = _files(folder)
    return DatasetVersion(folder, digest, dvc_file, files=len(files), size=sum(p.stat().st_size for p in files))


def checkout_version(ws: Workspace, digest: str, *, remote: Path | str | None = None) -> DatasetVersion:
    """Dataset version ``digest`` of the workspace's project, restored by its hash alone into
    ``<workspace>/restored/<digest>`` (reused while its files still match the version).

    It is pulled through ``ws.restore_repo``: the project itself when the project is the
    workspace, else a DVC repository of the workspace's own (created here) that pulls from the
    project's remote, with that remote's every option, into the project's cache, so a restore
    leaves the project's git tree untouched.

    Raises:
        DataError: the remote does not hold the version, or no remote is configured.
    """
    project, restore_repo = ws.project, ws.restore_repo
    dest = ws.root / "restored" / digest
    if restore_repo != project:
        name, settings = remote_settings(project, remote)
        with open_repo(project) as repo:
            cache = str(repo.cache.local_cache_dir)
        ensure_repo(restore_repo)
        with repository_lock(restore_repo), open_repo(restore_repo) as repo, repo.config.edit("local") as conf:
            conf["core"]["remote"] = name
            conf["remote"][name] = settings
            conf["cache"]["dir"] = cache
        (restore_repo / ".dvc" / "config.local").chmod(0o600)  # it may hold the remote's credentials
        remote = None  # the restore repository's own default is now the project's remote
    if dest.is_dir():
        try:
            if verify_dataset(dest, restore_repo) == digest:
                return _on_disk(dest, digest, dest.with_name(dest.name + ".dvc"))
        except DataError:
            pass  # edited or half-restored: fetch it again
    return restore_dataset(restore_repo, digest, dest, remote=remote)


def find_repo_root(path: Path) -> Path | None:
    """The DVC repository holding the dataset folder ``path``: its nearest parent with ``.dvc/``."""
    return enclosing_dvc_repo(Path(path).resolve().parent)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def version_listing(root: Path, digest: str) -> dict[str, str]:
    """Relative path -> md5 of every file of version ``digest``, from the DVC cache."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        listing = Path(repo.cache.local.oid_to_path(f"{digest}.dir"))
    if not listing.is_file():
        raise DataError(listing, None, None, f"dataset version {digest} is not in the DVC cache; pull it first")
    return {entry["relpath"]: entry["md5"] for entry in json.loads(listing.read_text())}


def verify_dataset(dataset_dir: Path, root: Path | None = None) -> str:
    """Check every file of ``dataset_dir`` against the md5s of the version it claims to be.

    Returns:
        The version's hash.

    Raises:
        DataError: listing every changed, missing or extra file, or when the folder was
            never versioned.
    """
    dataset_dir = Path(dataset_dir).resolve()
    digest = recorded_hash(dataset_dir)
    root = root or find_repo_root(dataset_dir)
    if digest is None or root is None:
        raise DataError(dataset_dir, None, None, "not a versioned dataset (run: palitune data version)")
    expected = version_listing(root, digest)
    actual = {str(p.relative_to(dataset_dir)): p for p in _files(dataset_dir)}
    problems = [f"{rel}: missing" for rel in sorted(expected.keys() - actual.keys())]
    problems += [f"{rel}: not part of the version" for rel in sorted(actual.keys() - expected.keys())]
    problems += [
        f"{rel}: md5 differs" for rel in sorted(expected.keys() & actual.keys()) if _md5(actual[rel]) != expected[rel]
    ]
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... {len(problems) - 20} more" if len(problems) > 20 else "")
        raise DataError(
            dataset_dir,
            None,
            None,
            f"does not match dataset version {digest} "
            f"(restore it: palitune data checkout {digest} --out DIR):\n  {shown}",
        )
    return digest
